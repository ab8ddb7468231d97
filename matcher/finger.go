package matcher

// Fingerprint templates for the Minutia Cylinder-Code (MCC) matcher of
// Cappelli, Ferrara and Maltoni ("Minutia Cylinder-Code: a new
// representation and matching technique for fingerprint recognition",
// IEEE TPAMI 32(12), 2010), in its bit-based variant.
//
// A cylinder describes the neighbourhood of one minutia, in the minutia's
// own frame (so it is invariant to translation and rotation): a 16×16 grid
// of cells over a disc of radius 70 px (at 500 dpi), times 6 slices of
// relative ridge direction. A cell's bit is set when neighbouring minutiae,
// at that place and with that direction relative to the central minutia,
// contribute enough (Gaussian in space and in angle). A validity mask says
// which cells lie inside the fingerprint (the convex hull of the minutiae,
// enlarged), so that two cylinders are compared only where both saw
// something. Everything a comparison needs is in fixed-size uint64 words,
// one cylinder after the other, so comparing two cylinders is 3×24
// popcounts.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// MCC parameters, in pixels at 500 dpi: coordinates are rescaled to
// 500 dpi before cylinders are built. The values are those of the MCC paper
// (table 2) for the bit-based variant.
const (
	mccR      = 70.0            // cylinder radius
	mccNS     = 16              // cells along a side of the grid
	mccND     = 6               // direction slices
	mccSigmaS = 28.0 / 3        // spatial Gaussian
	mccSigmaD = 2 * math.Pi / 9 // directional Gaussian
	mccMuPsi  = 0.01            // bit threshold of the summed contribution
	mccOmega  = 50.0            // convex hull enlargement
	mccMinVC  = 0.75            // min fraction of valid cells in a valid cylinder
	mccMinM   = 2               // min neighbouring minutiae of a valid cylinder
	mccDPI    = 500

	mccCells     = mccNS * mccNS        // spatial cells: 256
	mccCellWords = mccCells / 64        // words of one direction slice or of the mask: 4
	mccBitWords  = mccND * mccCellWords // value words: 24
	// cylWords is the size of one cylinder: the value bits of the ND slices,
	// then the spatial validity mask.
	cylWords = mccBitWords + mccCellWords

	// A coarse cylinder halves the grid (8×8 cells, each the OR of 2×2
	// cells, same slices), so that a slice and the mask are one word each.
	// Comparing coarse cylinders costs a quarter of a full comparison;
	// they rank cylinder pairs and candidates before full comparisons.
	coarseNS    = mccNS / 2
	coarseWords = mccND + 1

	// maxFingerMinutiae bounds the cylinders of a template, so minutia
	// numbers fit a byte in the matcher's buffers. Records hold at most 255.
	maxFingerMinutiae = 255

	// angleSteps quantises angles (a full turn) for the relaxation tables.
	angleSteps = 1024
	angleMask  = angleSteps - 1
)

// cellsInDisc is the number of cells whose centre lies within mccR of the
// centre: the most a cylinder can have valid.
var cellsInDisc = func() int {
	n := 0
	for i := range mccNS {
		for j := range mccNS {
			u, v := cellOffset(i), cellOffset(j)
			if u*u+v*v <= mccR*mccR {
				n++
			}
		}
	}
	return n
}()

// cellOffset is the coordinate of the centre of cell i along one axis,
// relative to the central minutia.
func cellOffset(i int) float64 {
	return (float64(i) - (mccNS-1)/2.0) * (2 * mccR / mccNS)
}

var (
	// ErrFingerTemplate: a serialised finger template is malformed.
	ErrFingerTemplate = errors.New("matcher: bad finger template")
	// ErrTooManyMinutiae: a view has more minutiae than a template holds.
	ErrTooManyMinutiae = errors.New("matcher: too many minutiae")
)

// fingerMinutia is a minutia of a prepared template, in 500 dpi pixels with
// y pointing up, so that angles (counter-clockwise, as the records define
// them) are ordinary mathematical angles.
type fingerMinutia struct {
	x, y  float32
	angle uint16 // in 1/angleSteps of a turn
	q     uint8  // the record's minutia quality, 1..100, or 0: not reported
}

// FingerTemplate is a finger view prepared for matching: the cylinders of
// its valid minutiae, and the pairwise geometry and the hull the
// consolidation steps need. Immutable once built; safe to share between goroutines.
type FingerTemplate struct {
	min []fingerMinutia // one per cylinder, same order
	cyl []uint64        // len(min)*cylWords words
	// coarse holds a record of coarseRecWords per cylinder, derived from
	// cyl: the coarse cylinder (coarseWords) and the minutia's angle.
	coarse []uint64
	dist   []float32 // dist[i*n+k]: distance between minutiae i and k
	// dirTo[i*n+k]: the direction from minutia i to k, relative to i's
	// angle, in 1/angleSteps of a turn.
	dirTo []uint16
	// hull holds the edges of the convex hull of the minutiae, the area
	// the global consolidation counts minutiae in, as lines: (nx, ny, c)
	// with (nx, ny) the unit normal pointing inwards, a point (x, y) being
	// on the inner side when nx·x + ny·y ≥ c.
	hull []float32
	// byX lists the minutiae by increasing x, and xs their x in that
	// order, for the global stage's search of the minutiae near a point.
	byX []uint8
	xs  []float32
	// qMean is the mean quality of the minutiae, 0 when any is unreported:
	// quality then weighs nothing (see qWeight).
	qMean float32
}

// Cylinders is the number of valid cylinders: the minutiae that take part
// in matching. A template with fewer than two matches nothing.
func (t *FingerTemplate) Cylinders() int { return len(t.min) }

// PrepareFinger builds the cylinders of a view. Minutiae whose neighbourhood
// is too sparse or too close to the border for a reliable cylinder are
// left out; a view with fewer than two usable minutiae gives a template
// that scores 0 against everything, not an error.
func PrepareFinger(v minutiae.View) (*FingerTemplate, error) {
	if len(v.Minutiae) > maxFingerMinutiae {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyMinutiae, len(v.Minutiae), maxFingerMinutiae)
	}
	dpi := v.DPI
	if dpi <= 0 {
		dpi = mccDPI
	}
	scale := float64(mccDPI) / float64(dpi)
	n := len(v.Minutiae)
	xs, ys, th := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, m := range v.Minutiae {
		xs[i], ys[i] = float64(m.X)*scale, -float64(m.Y)*scale
		if math.IsNaN(m.Angle) || math.IsInf(m.Angle, 0) {
			return nil, fmt.Errorf("matcher: minutia %d: angle %v is not finite", i, m.Angle)
		}
		th[i] = minutiae.NormAngle(m.Angle)
	}
	hull := convexHull(xs, ys)

	t := &FingerTemplate{}
	var cyl [cylWords]uint64
	var cd [maxFingerMinutiae][mccND]float64 // directional contribution of each neighbour
	neigh := make([]int, 0, n)
	var validCells []int
	for i := range n {
		// Neighbours that can reach a cell of this cylinder.
		neigh = neigh[:0]
		reach := mccR + 3*mccSigmaS
		contributors := 0
		for k := range n {
			if k == i {
				continue
			}
			dx, dy := xs[k]-xs[i], ys[k]-ys[i]
			if d2 := dx*dx + dy*dy; d2 <= reach*reach {
				neigh = append(neigh, k)
				contributors++
				dth := angleDiff(th[i], th[k])
				for s := range mccND {
					phi := -math.Pi + (float64(s)+0.5)*(2*math.Pi/mccND)
					d := angleDiff(phi, dth)
					cd[k][s] = gaussArea(d)
				}
			}
		}
		if contributors < mccMinM {
			continue
		}
		clear(cyl[:])
		valid := 0
		sin, cos := math.Sincos(th[i])
		for cj := range mccNS {
			for ci := range mccNS {
				u, v := cellOffset(ci), cellOffset(cj)
				if u*u+v*v > mccR*mccR {
					continue
				}
				px := xs[i] + cos*u - sin*v
				py := ys[i] + sin*u + cos*v
				if !hull.near(px, py, mccOmega) {
					continue
				}
				c := cj*mccNS + ci
				cyl[mccBitWords+c>>6] |= 1 << (c & 63)
				valid++
				var sum [mccND]float64
				for _, k := range neigh {
					dx, dy := xs[k]-px, ys[k]-py
					d2 := dx*dx + dy*dy
					if d2 > 9*mccSigmaS*mccSigmaS {
						continue
					}
					cs := math.Exp(-d2/(2*mccSigmaS*mccSigmaS)) / (mccSigmaS * math.Sqrt(2*math.Pi))
					for s := range mccND {
						sum[s] += cs * cd[k][s]
					}
				}
				for s := range mccND {
					if sum[s] >= mccMuPsi {
						cyl[s*mccCellWords+c>>6] |= 1 << (c & 63)
					}
				}
			}
		}
		if float64(valid) < mccMinVC*float64(cellsInDisc) {
			continue
		}
		t.cyl = append(t.cyl, cyl[:]...)
		t.min = append(t.min, fingerMinutia{x: float32(xs[i]), y: float32(ys[i]), angle: quantAngle(th[i]), q: min(v.Minutiae[i].Quality, 100)})
		validCells = append(validCells, valid)
	}
	t.sortCylinders(validCells)
	t.fillDerived()
	return t, nil
}

// sortCylinders puts the cylinders with the most valid cells first (the
// minutiae furthest from the border, with the most context): the first
// stage of a search compares only the first few of a probe's.
func (t *FingerTemplate) sortCylinders(valid []int) {
	order := make([]int, len(t.min))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return valid[order[a]] > valid[order[b]] })
	mins := make([]fingerMinutia, len(t.min))
	cyl := make([]uint64, len(t.cyl))
	for k, i := range order {
		mins[k] = t.min[i]
		copy(cyl[k*cylWords:], t.cyl[i*cylWords:(i+1)*cylWords])
	}
	t.min, t.cyl = mins, cyl
}

// fillDerived computes the coarse cylinders and the pairwise tables.
func (t *FingerTemplate) fillDerived() {
	n := len(t.min)
	t.qMean = 0
	for _, m := range t.min {
		if m.q == 0 {
			t.qMean = 0
			break
		}
		t.qMean += float32(m.q)
	}
	if n > 0 {
		t.qMean /= float32(n)
	}
	t.coarse = make([]uint64, n*coarseRecWords)
	for i := range n {
		fine := t.cyl[i*cylWords : (i+1)*cylWords]
		coarse := t.coarse[i*coarseRecWords : (i+1)*coarseRecWords]
		coarse[recAngle] = uint64(t.min[i].angle)
		for c := range mccCells {
			cc := (c/mccNS/2)*coarseNS + (c%mccNS)/2
			for s := range mccND + 1 { // the slices, then the mask
				if fine[s*mccCellWords+c>>6]&(1<<(c&63)) != 0 {
					coarse[s] |= 1 << cc
				}
			}
		}
	}

	xs, ys := make([]float64, n), make([]float64, n)
	for i, m := range t.min {
		xs[i], ys[i] = float64(m.x), float64(m.y)
	}
	h := convexHull(xs, ys)
	t.hull = nil
	if k := len(h.x); k >= 3 {
		t.hull = make([]float32, 0, 3*k)
		for i := range k {
			j := (i + 1) % k
			ex, ey := h.x[j]-h.x[i], h.y[j]-h.y[i]
			l := math.Hypot(ex, ey)
			nx, ny := -ey/l, ex/l
			t.hull = append(t.hull, float32(nx), float32(ny), float32(nx*h.x[i]+ny*h.y[i]))
		}
	}

	t.byX = make([]uint8, n)
	for i := range t.byX {
		t.byX[i] = uint8(i)
	}
	sort.SliceStable(t.byX, func(a, b int) bool { return t.min[t.byX[a]].x < t.min[t.byX[b]].x })
	t.xs = make([]float32, n)
	for k, i := range t.byX {
		t.xs[k] = t.min[i].x
	}

	t.dist = make([]float32, n*n)
	t.dirTo = make([]uint16, n*n)
	for i, a := range t.min {
		for k, b := range t.min {
			if i == k {
				continue
			}
			dx, dy := float64(b.x-a.x), float64(b.y-a.y)
			t.dist[i*n+k] = float32(math.Hypot(dx, dy))
			t.dirTo[i*n+k] = (quantAngle(math.Atan2(dy, dx)) - a.angle) & angleMask
		}
	}
}

// quantAngle maps radians to 1/angleSteps of a turn.
func quantAngle(a float64) uint16 {
	q := int(math.Round(minutiae.NormAngle(a) * angleSteps / (2 * math.Pi)))
	return uint16(q) & angleMask
}

// angleDiff is a-b wrapped into [-π, π).
func angleDiff(a, b float64) float64 {
	d := math.Mod(a-b+math.Pi, 2*math.Pi)
	if d < 0 {
		d += 2 * math.Pi
	}
	return d - math.Pi
}

// gaussArea is the directional contribution of MCC: the area under the
// directional Gaussian over a slice's width, centred d radians away.
func gaussArea(d float64) float64 {
	const half = math.Pi / mccND // half a slice
	k := 1 / (mccSigmaD * math.Sqrt2)
	return 0.5 * (math.Erf((d+half)*k) - math.Erf((d-half)*k))
}

// hull is a convex polygon, counter-clockwise.
type hull struct{ x, y []float64 }

// convexHull is Andrew's monotone chain.
func convexHull(xs, ys []float64) hull {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		i, j := idx[a], idx[b]
		if xs[i] != xs[j] {
			return xs[i] < xs[j]
		}
		return ys[i] < ys[j]
	})
	cross := func(o, a, b int) float64 {
		return (xs[a]-xs[o])*(ys[b]-ys[o]) - (ys[a]-ys[o])*(xs[b]-xs[o])
	}
	var h []int
	for _, p := range idx {
		for len(h) >= 2 && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	lower := len(h) + 1
	for i := len(idx) - 2; i >= 0; i-- {
		p := idx[i]
		for len(h) >= lower && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	if len(h) > 1 {
		h = h[:len(h)-1] // the last point repeats the first
	}
	var out hull
	for _, p := range h {
		out.x = append(out.x, xs[p])
		out.y = append(out.y, ys[p])
	}
	return out
}

// near reports whether (px, py) lies inside the hull or within margin of it.
func (h hull) near(px, py, margin float64) bool {
	n := len(h.x)
	if n == 0 {
		return false
	}
	inside := n >= 3
	for i := 0; inside && i < n; i++ {
		j := (i + 1) % n
		if (h.x[j]-h.x[i])*(py-h.y[i])-(h.y[j]-h.y[i])*(px-h.x[i]) < 0 {
			inside = false
		}
	}
	if inside {
		return true
	}
	for i := range n {
		j := (i + 1) % n
		if segDist2(px, py, h.x[i], h.y[i], h.x[j], h.y[j]) <= margin*margin {
			return true
		}
	}
	return false
}

// segDist2 is the squared distance from p to the segment ab.
func segDist2(px, py, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = max(0, min(1, ((px-ax)*dx+(py-ay)*dy)/l2))
	}
	ex, ey := ax+t*dx-px, ay+t*dy-py
	return ex*ex + ey*ey
}

// fingerTemplateVersion is the first byte of a serialised template. It
// names the cylinder layout and parameters too: a change of either needs a
// new version, and old templates must be rebuilt from their records.
const fingerTemplateVersion = 2

// fingerHeader: version, cylinder words, minutia count.
const fingerHeader = 4

// fingerRecord is the size of one minutia's record: x, y, angle, quality,
// cylinder.
const fingerRecord = 11 + cylWords*8

// MarshalBinary serialises the template for the store: a version byte,
// the words per cylinder, the count, then per cylinder x, y (float32),
// angle (uint16), quality (a byte, 0..100) and the cylinder words, all
// little-endian. The pairwise
// tables are rebuilt on decoding.
func (t *FingerTemplate) MarshalBinary() ([]byte, error) {
	n := len(t.min)
	b := make([]byte, fingerHeader, fingerHeader+n*fingerRecord)
	b[0] = fingerTemplateVersion
	b[1] = cylWords
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	for i, m := range t.min {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(m.x))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(m.y))
		b = binary.LittleEndian.AppendUint16(b, m.angle)
		b = append(b, m.q)
		for _, w := range t.cyl[i*cylWords : (i+1)*cylWords] {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, refusing anything
// else with an error naming the field and its offset.
func (t *FingerTemplate) UnmarshalBinary(b []byte) error {
	if len(b) < fingerHeader {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrFingerTemplate, len(b), fingerHeader)
	}
	if b[0] != fingerTemplateVersion {
		return fmt.Errorf("%w: version %d at offset 0, want %d", ErrFingerTemplate, b[0], fingerTemplateVersion)
	}
	if b[1] != cylWords {
		return fmt.Errorf("%w: cylinder size %d words at offset 1, want %d", ErrFingerTemplate, b[1], cylWords)
	}
	n := int(binary.LittleEndian.Uint16(b[2:]))
	if n > maxFingerMinutiae {
		return fmt.Errorf("%w: minutia count %d at offset 2, at most %d", ErrFingerTemplate, n, maxFingerMinutiae)
	}
	const rec = fingerRecord
	if want := fingerHeader + n*rec; len(b) != want {
		return fmt.Errorf("%w: length %d, a count of %d needs %d", ErrFingerTemplate, len(b), n, want)
	}
	out := FingerTemplate{min: make([]fingerMinutia, n), cyl: make([]uint64, n*cylWords)}
	for i := range n {
		off := fingerHeader + i*rec
		m := fingerMinutia{
			x:     math.Float32frombits(binary.LittleEndian.Uint32(b[off:])),
			y:     math.Float32frombits(binary.LittleEndian.Uint32(b[off+4:])),
			angle: binary.LittleEndian.Uint16(b[off+8:]),
			q:     b[off+10],
		}
		if !finite32(m.x) || !finite32(m.y) || math.Abs(float64(m.x)) > 1<<20 || math.Abs(float64(m.y)) > 1<<20 {
			return fmt.Errorf("%w: minutia %d: coordinates (%v, %v) at offset %d out of range", ErrFingerTemplate, i, m.x, m.y, off)
		}
		if m.angle > angleMask {
			return fmt.Errorf("%w: minutia %d: angle %d at offset %d, at most %d", ErrFingerTemplate, i, m.angle, off+8, angleMask)
		}
		if m.q > 100 {
			return fmt.Errorf("%w: minutia %d: quality %d at offset %d, at most 100", ErrFingerTemplate, i, m.q, off+10)
		}
		out.min[i] = m
		c := out.cyl[i*cylWords : (i+1)*cylWords]
		for w := range c {
			c[w] = binary.LittleEndian.Uint64(b[off+11+8*w:])
		}
		// Value bits outside the validity mask would break the scoring
		// identity that lets a comparison skip masking one side.
		for w := range mccBitWords {
			if c[w]&^c[mccBitWords+w%mccCellWords] != 0 {
				return fmt.Errorf("%w: minutia %d: cylinder bits outside its mask at offset %d", ErrFingerTemplate, i, off+11+8*w)
			}
		}
	}
	out.fillDerived()
	*t = out
	return nil
}

func finite32(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}
