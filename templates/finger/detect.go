package finger

import (
	"cmp"
	"math"
	"slices"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// candidate is a minutia before filtering. Angles here are in image
// coordinates (y down, clockwise on screen); output converts them.
type candidate struct {
	x, y     int
	kind     minutiae.Kind
	branches []branch
	angle    float64
	period   float64
	quality  float64
	removed  bool
	why      uint8 // the rule that removed it (removal* constants)
}

// Reasons a candidate is removed, counted for tuning.
const (
	removalNone = iota
	removalIsolated
	removalShort  // spur, short ridge, bridge, lake
	removalBroken // two endings facing across a gap
	removalCluster
	removalBorder
	removalCount
)

func (m *candidate) remove(why uint8) {
	if !m.removed {
		m.removed, m.why = true, why
	}
}

// branch is one skeleton path traced from a minutia.
type branch struct {
	hit    int // index of the minutia the trace ran into, or -1
	steps  int // pixels walked (to the hit, the dead end or the limit)
	dx, dy int // offset of the point angleSteps along (or the last one)
}

// minutiae finds crossing-number minutiae on the skeleton, traces their
// ridges, removes false ones and returns the rest, best first, with the
// number removed.
func (p *pipeline) minutiae() ([]minutiae.Minutia, int) {
	w, h := p.w, p.h
	s := p.skel
	idx := make([]int32, w*h)
	var cs []candidate
	for y := 2; y < h-2; y++ {
		for x := 2; x < w-2; x++ {
			i := y*w + x
			if s[i] == 0 || !p.mask[i] {
				continue
			}
			kind := minutiae.KindOther
			switch crossing(s, w, i) {
			case 1:
				kind = minutiae.KindEnding
			case 3, 4:
				kind = minutiae.KindBifurcation
			default:
				continue
			}
			cs = append(cs, candidate{x: x, y: y, kind: kind})
			idx[i] = int32(len(cs))
		}
	}
	for c := range cs {
		m := &cs[c]
		m.period = float64(p.bilinear(p.period, m.x, m.y))
		p.trace(m, idx)
	}
	p.removeFalse(cs)

	margin := p.cfg.BorderMargin * p.scale
	removed := 0
	var out []minutiae.Minutia
	for c := range cs {
		m := &cs[c]
		d := float64(p.dist[m.y*w+m.x])
		if !m.removed && d < margin {
			m.remove(removalBorder)
		}
		if m.removed {
			removed++
			p.removedBy[m.why]++
			continue
		}
		m.quality = p.minutiaQuality(m.x, m.y, d, margin)
		q := m.quality
		out = append(out, minutiae.Minutia{
			X: m.x, Y: m.y, Kind: m.kind,
			Angle:   minutiae.NormAngle(-m.angle),
			Quality: uint8(min(max(math.Round(100*q), 1), 100)),
		})
	}
	slices.SortStableFunc(out, func(a, b minutiae.Minutia) int {
		return cmp.Or(cmp.Compare(b.Quality, a.Quality), cmp.Compare(a.Y, b.Y), cmp.Compare(a.X, b.X))
	})
	if len(out) > p.cfg.MaxMinutiae {
		removed += len(out) - p.cfg.MaxMinutiae
		out = out[:p.cfg.MaxMinutiae]
	}
	return out, removed
}

// minutiaQuality is the reliability of a minutia at (x, y), d pixels from
// the edge of the foreground, in [0, 1] (written ×100 into the record's
// per-minutia quality): the product of
//   - the consistency of the smoothed orientation field at its block (0–1:
//     1 where the ridges run parallel, low in noise and near cores and
//     deltas, where minutiae are also genuinely harder to place),
//   - the ridge clarity around it: the block's mean Gabor response
//     magnitude over the image's foreground mean, capped at 1 (low where
//     the print is faint, smudged, dry or wet and the binary ridges are
//     a guess),
//   - the distance to the foreground edge, d/(2·margin) capped at 1 (0.5
//     at the border margin, where ridges end because the print does).
func (p *pipeline) minutiaQuality(x, y int, d, margin float64) float64 {
	k := p.blockIndex(x, y)
	return float64(p.consist[k]) * min(1, float64(p.bclar[k])) * min(1, d/(2*margin))
}

func (p *pipeline) blockIndex(x, y int) int {
	return min(y/p.step, p.bh-1)*p.bw + min(x/p.step, p.bw-1)
}

// trace walks each ridge leaving minutia m along the skeleton, up to two
// ridge periods, and sets its angle: along the ridge for an ending, along
// the enclosed valley (between the two closest branches) for a bifurcation.
func (p *pipeline) trace(m *candidate, idx []int32) {
	w := p.w
	s := p.skel
	mi := m.y*w + m.x
	maxSteps := int(math.Ceil(2 * m.period))
	angleSteps := max(3, int(math.Round(0.8*m.period)))
	var nb [8]uint8
	for k := range 8 {
		nb[k] = s[mi+ndy[k]*w+ndx[k]]
	}
	// One branch per run of set neighbours, starting from its 4-neighbour
	// if it has one.
	for k := range 8 {
		if nb[k] == 0 || nb[(k+7)%8] == 1 {
			continue
		}
		start := k
		for j := k; nb[j%8] == 1 && j < k+8; j++ {
			if (j%8)%2 == 0 {
				start = j % 8
				break
			}
		}
		m.branches = append(m.branches, p.walk(m, mi, mi+ndy[start]*w+ndx[start], idx, maxSteps, angleSteps))
	}
	if len(m.branches) == 0 {
		m.remove(removalIsolated)
		return
	}
	switch {
	case m.kind == minutiae.KindEnding || len(m.branches) < 3:
		b := m.branches[0]
		m.angle = math.Atan2(float64(b.dy), float64(b.dx))
	default:
		// The pair of branches closest in direction encloses the valley.
		dirs := make([]float64, len(m.branches))
		for i, b := range m.branches {
			dirs[i] = math.Atan2(float64(b.dy), float64(b.dx))
		}
		best, bi, bj := math.Inf(1), 0, 1
		for i := range dirs {
			for j := i + 1; j < len(dirs); j++ {
				if d := angDiff(dirs[i], dirs[j]); d < best {
					best, bi, bj = d, i, j
				}
			}
		}
		m.angle = math.Atan2(math.Sin(dirs[bi])+math.Sin(dirs[bj]), math.Cos(dirs[bi])+math.Cos(dirs[bj]))
	}
	// The orientation field is smoother than a few skeleton pixels: take
	// its direction on the traced side when the two agree.
	t := p.ridgeAngle(m.x, m.y)
	if angDiff(t, m.angle) > math.Pi/2 {
		t += math.Pi
	}
	if angDiff(t, m.angle) < math.Pi/4 {
		m.angle = t
	}
}

func (p *pipeline) walk(m *candidate, mi, start int, idx []int32, maxSteps, angleSteps int) branch {
	w := p.w
	s := p.skel
	b := branch{hit: -1}
	prev, cur := mi, start
	px, py := m.x, m.y
	for step := 1; ; step++ {
		cx, cy := cur%w, cur/w
		if step <= angleSteps {
			b.dx, b.dy = cx-m.x, cy-m.y
		}
		b.steps = step
		if j := idx[cur]; j != 0 && cur != mi {
			b.hit = int(j - 1)
			return b
		}
		if step >= maxSteps || cx < 1 || cy < 1 || cx >= w-1 || cy >= p.h-1 {
			return b
		}
		next := -1
		for k := range 8 {
			n := cur + ndy[k]*w + ndx[k]
			if s[n] == 0 || n == prev || n == mi {
				continue
			}
			nx, ny := cx+ndx[k], cy+ndy[k]
			if abs(nx-px) <= 1 && abs(ny-py) <= 1 {
				continue // a corner of a triangle, already beside us
			}
			if next < 0 || k%2 == 0 {
				next = n
			}
		}
		if next < 0 {
			return b
		}
		prev, cur = cur, next
		px, py = cx, cy
	}
}

// removeFalse marks the classic false minutiae (Handbook §3.8; Ratha et al.
// 1995): spurs and short ridges (an ending reaching another minutia within
// about a ridge period), bridges and lakes (two bifurcations joined by a
// short ridge), broken ridges (two endings facing each other across a gap)
// and clusters.
func (p *pipeline) removeFalse(cs []candidate) {
	for c := range cs {
		m := &cs[c]
		for _, b := range m.branches {
			if b.hit < 0 {
				continue
			}
			o := &cs[b.hit]
			lim := 1.2 * m.period
			if m.kind == minutiae.KindBifurcation && o.kind == minutiae.KindBifurcation {
				lim = 1.0 * m.period
			}
			if float64(b.steps) <= lim {
				m.remove(removalShort)
				o.remove(removalShort)
			}
		}
	}
	// Broken ridges: endings within 1.5 periods pointing at each other.
	for i := range cs {
		a := &cs[i]
		if a.kind != minutiae.KindEnding {
			continue
		}
		for j := i + 1; j < len(cs); j++ {
			b := &cs[j]
			if b.kind != minutiae.KindEnding {
				continue
			}
			dx, dy := float64(b.x-a.x), float64(b.y-a.y)
			d := math.Hypot(dx, dy)
			if d > 1.5*a.period || d == 0 {
				continue
			}
			ab := math.Atan2(dy, dx)
			// a's ridge runs away from b: a points opposite to a→b.
			if angDiff(a.angle, ab+math.Pi) < math.Pi/4 && angDiff(b.angle, ab) < math.Pi/4 {
				a.remove(removalBroken)
				b.remove(removalBroken)
			}
		}
	}
	// Clusters: three or more candidates within one period of each other
	// are noise, not ridge structure.
	cnt := make([]int, len(cs))
	for i := range cs {
		for j := i + 1; j < len(cs); j++ {
			dx, dy := cs[i].x-cs[j].x, cs[i].y-cs[j].y
			r := 0.8 * cs[i].period
			if float64(dx*dx+dy*dy) <= r*r {
				cnt[i]++
				cnt[j]++
			}
		}
	}
	for i := range cs {
		if cnt[i] >= 2 {
			cs[i].remove(removalCluster)
		}
	}
}

func angDiff(a, b float64) float64 {
	d := math.Mod(math.Abs(a-b), 2*math.Pi)
	if d > math.Pi {
		d = 2*math.Pi - d
	}
	return d
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
