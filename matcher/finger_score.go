package matcher

import (
	"math"
	"math/bits"
	"sync"
)

// Comparison parameters (MCC paper, table 2, bit-based variant, and the
// LSS-R consolidation of section 5).
const (
	// Cylinders whose central minutiae differ in direction by more than
	// this are not compared (δθ = π/2), in 1/angleSteps of a turn.
	mccDeltaTheta = angleSteps / 4
	// Two cylinders are compared only if they have this fraction of the
	// disc's cells valid in common (minME).
	mccMinME = 0.60
	// The global score averages the best nP pair scores, nP growing with
	// the smaller minutia count from minNP to maxNP along a sigmoid.
	mccMinNP = 4
	mccMaxNP = 12
	mccMuP   = 20
	mccTauP  = 0.4
	// Relaxation: rounds and the weight of a pair's own score.
	mccRelRounds = 5
	mccWR        = 0.5
	// Compatibility of two pairs: sigmoids on the difference of the
	// distances (μ1, τ1), of the directions (μ2, τ2) and of the directions
	// of the connecting segment (μ3, τ3).
	mccMu1, mccTau1 = 5.0, -1.6
	mccMu2, mccTau2 = math.Pi / 12, -30.0
	mccMu3, mccTau3 = math.Pi / 12, -30.0

	// Global consolidation (see global): minutiae pair after the rigid
	// alignment when within globalR0 px plus globalRK px per px of
	// distance from the anchors (distortion grows away from them) and
	// within globalDTheta of direction; a minutia counts as in the common
	// area within globalMargin px of the other's hull, and at least
	// globalMinOv minutiae a side are assumed in it (12, not 8: with
	// several alignments tried, impostors with small common areas found
	// one that paired 6 of 8 minutiae, and made the tail of the impostor
	// scores that sets the threshold at FMR 0.001).
	globalR0     = 12.0
	globalRK     = 0.10
	globalDTheta = angleSteps / 12
	globalMargin = 10.0
	globalMinOv  = 12.0
	// The score is LSS-R + globalW·g⁸ (at most 1), g the global pairing
	// score: the eighth power keeps the pairings of impostors, g about
	// 0.2–0.4, far below what they add to genuine comparisons with a
	// weak local score, g 0.6 and more.
	globalW = 0.5
	// globalAnchors: besides the least-squares alignment on the nP pairs,
	// the global stage tries the alignment that each of the first
	// globalAnchors of them (by relaxation efficiency) gives alone, and
	// keeps the best. One wrong pair among the nP
	// skews the least-squares fit; a single right pair does not, and its
	// tolerance grows away from it as distortion does.
	globalAnchors = 5
	// anchorMinAgree: an anchor's alignment is tried only when it maps at
	// least this many of the selected pairs (itself included) onto each
	// other. It skips most of the anchors of impostors (chance
	// look-alikes) and changed no EER on the shared sets by more than one
	// comparison.
	anchorMinAgree = 4

	// simBuckets quantises local similarities for the counting sort that
	// orders the candidate pairs; the scores themselves stay exact.
	simBuckets = 256
	// distSteps: distance differences are tabulated in 1/distSteps px.
	distSteps = 8
)

var (
	minCommonCells = int(math.Ceil(mccMinME * float64(cellsInDisc)))
	// coarseCellsInDisc: coarse cells holding a fine cell of the disc.
	coarseCellsInDisc = func() int {
		var seen [coarseNS * coarseNS]bool
		n := 0
		for i := range mccNS {
			for j := range mccNS {
				u, v := cellOffset(i), cellOffset(j)
				if c := (j/2)*coarseNS + i/2; u*u+v*v <= mccR*mccR && !seen[c] {
					seen[c], n = true, n+1
				}
			}
		}
		return n
	}()
	minCommonCoarse = int(math.Ceil(mccMinME * float64(coarseCellsInDisc)))
	// sqrtTab[k] is √k for every popcount a cylinder can have.
	sqrtTab = func() (t [mccBitWords*64 + 1]float32) {
		for i := range t {
			t[i] = float32(math.Sqrt(float64(i)))
		}
		return
	}()
	// rhoDist[q] is the distance sigmoid at q/distSteps px; beyond the
	// table it is below 1e-9 and counts as 0.
	rhoDist = func() (t [20 * distSteps]float32) {
		for i := range t {
			t[i] = float32(sigmoid(float64(i)/distSteps, mccMu1, mccTau1))
		}
		return
	}()
	// rhoAngle2, rhoAngle3 are the angle sigmoids over folded differences
	// 0..angleSteps/2.
	rhoAngle2, rhoAngle3 = angleTable(mccMu2, mccTau2), angleTable(mccMu3, mccTau3)
	// npFor[n] is nP for a smaller cylinder count n.
	npFor = func() (t [maxFingerMinutiae + 1]uint8) {
		for n := range t {
			t[n] = uint8(mccMinNP + math.Round(sigmoid(float64(n), mccMuP, mccTauP)*(mccMaxNP-mccMinNP)))
		}
		return
	}()
)

// qWeight weighs the pair of minutia a of p and b of c in the mean of
// LSS-R by their qualities: √(qa·qb / (q̄p·q̄c)), q̄ a template's mean
// quality, so the mean leans on the pairs of well-defined minutiae. It
// is 1 when either template has no qualities, and when all are equal.
func qWeight(p, c *FingerTemplate, a, b uint8) float32 {
	if p.qMean == 0 || c.qMean == 0 {
		return 1
	}
	return float32(math.Sqrt(float64(p.min[a].q) * float64(c.min[b].q) / float64(p.qMean*c.qMean)))
}

func sigmoid(v, mu, tau float64) float64 { return 1 / (1 + math.Exp(-tau*(v-mu))) }

func angleTable(mu, tau float64) (t [angleSteps/2 + 1]float32) {
	for i := range t {
		t[i] = float32(sigmoid(float64(i)*2*math.Pi/angleSteps, mu, tau))
	}
	return
}

// foldAngle maps a difference of quantised angles to its magnitude,
// 0..angleSteps/2.
func foldAngle(d uint16) uint16 {
	d &= angleMask
	if d > angleSteps/2 {
		d = angleSteps - d
	}
	return d
}

// FingerMatcher compares finger templates. The zero value is ready to use
// and safe for concurrent use: each comparison borrows a scratch buffer
// from a pool, so scoring allocates nothing once the pool is warm.
type FingerMatcher struct {
	pool sync.Pool // *fingerScratch
}

// fingerScratch is one comparison's working memory. Its slices grow to the
// largest templates seen and are then reused.
type fingerScratch struct {
	pairs   []simPair // compared cylinder pairs
	order   []simPair // pairs by decreasing similarity
	counts  [simBuckets + 1]int32
	usedA   [4]uint64 // minutiae of each side already in a selected pair
	usedB   [4]uint64
	sel     []simPair // the pairs the relaxation works on
	rho     []float32 // compatibility of selected pairs, nR×nR
	lam     []float32
	lam2    []float32
	eff     []float32
	rel     []float32 // the relaxed scores (s.lam or s.lam2)
	top     []int32   // the nP pairs of the relaxation's score, in s.sel
	gp      []gPair   // the global stage's candidate minutia pairs
	gOrder  []gPair   // the same, nearest first
	gCounts [gBuckets + 1]int32
	lanes   []uint64  // the probe's records in kernel blocks
	sims    []float32 // the coarseAll kernel's output
	// best: the first stage's per-probe-cylinder maxima (coarseScore).
	best [maxProbeBlocks * probeLanes]float32
}

// simPair is a pair of cylinders and their local similarity.
type simPair struct {
	lam  float32
	a, b uint8
}

func (m *FingerMatcher) scratch() *fingerScratch {
	if s, ok := m.pool.Get().(*fingerScratch); ok {
		return s
	}
	return &fingerScratch{}
}

// Score compares two templates: 0 (nothing in common) to 1. The score is
// MCC's LSS-R (the local similarities of all cylinder pairs, the best
// one-to-one pairs among them, relaxed by their geometric compatibility
// with each other, and the mean of the nP most consistent) with a global
// consolidation: the rigid alignments on those nP pairs (least squares on
// all of them, and each of the first globalAnchors alone), and the largest
// fraction of the minutiae in the common area that one of them pairs.
// Templates with fewer than two cylinders score 0.
func (m *FingerMatcher) Score(probe, candidate *FingerTemplate) float64 {
	if probe == nil || candidate == nil {
		return 0
	}
	s := m.scratch()
	v := s.score(probe, candidate)
	m.pool.Put(s)
	return float64(v)
}

func (s *fingerScratch) score(p, c *FingerTemplate) float32 {
	return s.compare(p, c, true)
}

// scoreLocal is score without the global stage: LSS-R alone, never above
// score. A search ranks its shortlist on it and gives its leaders the
// full score (FingerIndex.rank).
func (s *fingerScratch) scoreLocal(p, c *FingerTemplate) float32 {
	return s.compare(p, c, false)
}

func (s *fingerScratch) compare(p, c *FingerTemplate, global bool) float32 {
	if before(c, p) {
		// The relaxation's best pairs, and so the global alignment, can
		// depend on which side is the probe: comparing in one order
		// whatever the order of the arguments keeps the score symmetric.
		p, c = c, p
	}
	nA, nB := len(p.min), len(c.min)
	if nA < 2 || nB < 2 {
		return 0
	}
	s.coarseSimilarities(p, c)
	if len(s.pairs) < 2 {
		return 0
	}
	s.sortPairs()
	s.refine(p, c, refineFactor*min(nA, nB))
	if len(s.pairs) < 2 {
		return 0
	}
	s.sortPairs()
	s.selectPairs(min(nA, nB))
	if len(s.sel) < 2 {
		return 0
	}
	local := s.relax(p, c, int(npFor[min(nA, nB)]))
	var g float32
	if global {
		g = s.global(p, c)
	}
	g2 := g * g
	g4 := g2 * g2
	return min(1, local+globalW*g4*g4)
}

// before orders templates for score: fewer cylinders first, then by the
// minutiae.
func before(a, b *FingerTemplate) bool {
	if len(a.min) != len(b.min) {
		return len(a.min) < len(b.min)
	}
	for i, m := range a.min {
		o := b.min[i]
		if m.x != o.x {
			return m.x < o.x
		}
		if m.y != o.y {
			return m.y < o.y
		}
		if m.angle != o.angle {
			return m.angle < o.angle
		}
	}
	return false
}

// The first stage of a search (coarseScore) compares only the probe's
// first coarseProbeCylinders cylinders (those with the most valid cells,
// see sortCylinders), and only with candidate cylinders within
// coarseDeltaTheta of direction: a quarter of the pairs of a full
// comparison, enough to find nP good ones in a mate. At most
// maxProbeBlocks×probeLanes.
var (
	coarseProbeCylinders = 24
	coarseDeltaTheta     = uint16(angleSteps / 6)
)

// refineFactor × the smaller cylinder count is how many of the best
// coarse pairs get a full comparison; the relaxation keeps at most
// 1 × that count, so the rest is margin for the coarse ranking's errors.
var refineFactor = 3

// coarseSimilarities fills s.pairs with every matchable cylinder pair and
// its similarity on the coarse cylinders (see cylSim), probe cylinder by
// probe cylinder, computed by the coarseAll kernel.
func (s *fingerScratch) coarseSimilarities(p, c *FingerTemplate) {
	s.pairs = s.pairs[:0]
	nA, nB := len(p.min), len(c.min)
	s.lanes = transposeProbe(s.lanes, p)
	nblk := len(s.lanes) / probeBlockWords
	s.sims = grow(s.sims, nblk*nB*probeLanes)
	fingerKernel.coarseAll(c.coarse, s.lanes, uint64(minCommonCoarse), mccDeltaTheta, s.sims)
	for i := range nA {
		row := s.sims[(i/probeLanes)*nB*probeLanes+i%probeLanes:]
		for j := range nB {
			if lam := row[j*probeLanes]; lam > 0 {
				s.pairs = append(s.pairs, simPair{lam: lam, a: uint8(i), b: uint8(j)})
			}
		}
	}
}

// cylSim is MCC's bit-based similarity of two cylinders a and b,
//
//	λ = 1 − ‖a⊕b‖ / (‖a‖ + ‖b‖)
//
// over the cells valid in both, with ‖x‖ = √popcount(x), from na = |a∧mask(b)|,
// nb = |b∧mask(a)| and both = |a∧b|. Each cylinder's bits are already
// masked by its own validity, so masking by the other's gives the common
// cells, and ‖a⊕b‖² = na+nb−2·both: three popcounts a word.
func cylSim(na, nb, both int) float32 {
	if na+nb == 0 {
		return 0
	}
	return 1 - sqrtTab[na+nb-2*both]/(sqrtTab[na]+sqrtTab[nb])
}

// refine replaces s.pairs by the first n pairs of s.order, scored on the
// full cylinders.
func (s *fingerScratch) refine(p, c *FingerTemplate, n int) {
	s.pairs = s.pairs[:0]
	for _, pr := range s.order[:min(n, len(s.order))] {
		a := (*[cylWords]uint64)(p.cyl[int(pr.a)*cylWords:])
		b := (*[cylWords]uint64)(c.cyl[int(pr.b)*cylWords:])
		common := bits.OnesCount64(a[24]&b[24]) + bits.OnesCount64(a[25]&b[25]) +
			bits.OnesCount64(a[26]&b[26]) + bits.OnesCount64(a[27]&b[27])
		if common < minCommonCells {
			continue
		}
		ma := [4]uint64{a[24], a[25], a[26], a[27]}
		mb := [4]uint64{b[24], b[25], b[26], b[27]}
		var na, nb, both int
		for w := 0; w < mccBitWords; w += 4 {
			na += bits.OnesCount64(a[w]&mb[0]) + bits.OnesCount64(a[w+1]&mb[1]) +
				bits.OnesCount64(a[w+2]&mb[2]) + bits.OnesCount64(a[w+3]&mb[3])
			nb += bits.OnesCount64(b[w]&ma[0]) + bits.OnesCount64(b[w+1]&ma[1]) +
				bits.OnesCount64(b[w+2]&ma[2]) + bits.OnesCount64(b[w+3]&ma[3])
			both += bits.OnesCount64(a[w]&b[w]) + bits.OnesCount64(a[w+1]&b[w+1]) +
				bits.OnesCount64(a[w+2]&b[w+2]) + bits.OnesCount64(a[w+3]&b[w+3])
		}
		if lam := cylSim(na, nb, both); lam > 0 {
			s.pairs = append(s.pairs, simPair{lam: lam, a: pr.a, b: pr.b})
		}
	}
}

// sortPairs orders s.pairs by decreasing similarity into s.order, by a
// counting sort on quantised similarity: stable, and linear where a
// comparison sort of a few hundred pairs would cost more than the rest of
// the comparison.
func (s *fingerScratch) sortPairs() {
	clear(s.counts[:])
	for _, p := range s.pairs {
		s.counts[simBuckets-1-bucket(p.lam)+1]++
	}
	for i := 1; i <= simBuckets; i++ {
		s.counts[i] += s.counts[i-1]
	}
	if cap(s.order) < len(s.pairs) {
		s.order = make([]simPair, len(s.pairs), cap(s.pairs))
	}
	s.order = s.order[:len(s.pairs)]
	for _, p := range s.pairs {
		k := simBuckets - 1 - bucket(p.lam)
		s.order[s.counts[k]] = p
		s.counts[k]++
	}
}

func bucket(lam float32) int {
	return min(int(lam*simBuckets), simBuckets-1)
}

// selectPairs takes up to n pairs from s.order, best first, each minutia
// of either side in one pair at most.
func (s *fingerScratch) selectPairs(n int) {
	s.usedA, s.usedB = [4]uint64{}, [4]uint64{}
	s.sel = s.sel[:0]
	for _, p := range s.order {
		if s.usedA[p.a>>6]&(1<<(p.a&63)) != 0 || s.usedB[p.b>>6]&(1<<(p.b&63)) != 0 {
			continue
		}
		s.usedA[p.a>>6] |= 1 << (p.a & 63)
		s.usedB[p.b>>6] |= 1 << (p.b & 63)
		s.sel = append(s.sel, p)
		if len(s.sel) == n {
			break
		}
	}
}

// relax runs MCC's relaxation on the selected pairs: each pair's score is
// reinforced by the scores of the pairs geometrically compatible with it
// (same distance, same relative directions on both sides), so pairs that
// agree on one rigid alignment support each other and isolated look-alikes
// fade. It returns the mean relaxed score of the nP pairs that kept the
// most of their score, weighted by the minutiae's qualities (qWeight; a
// plain mean without them).
func (s *fingerScratch) relax(p, c *FingerTemplate, nP int) float32 {
	n := len(s.sel)
	s.rho = grow(s.rho, n*n)
	s.lam = grow(s.lam, n)
	s.lam2 = grow(s.lam2, n)
	s.eff = grow(s.eff, n)
	nA, nB := len(p.min), len(c.min)
	for t, pt := range s.sel {
		at, bt := int(pt.a), int(pt.b)
		row := s.rho[t*n : (t+1)*n]
		dA, dB := p.dist[at*nA:(at+1)*nA], c.dist[bt*nB:(bt+1)*nB]
		rA, rB := p.dirTo[at*nA:(at+1)*nA], c.dirTo[bt*nB:(bt+1)*nB]
		thA, thB := p.min[at].angle, c.min[bt].angle
		for k, pk := range s.sel {
			ak, bk := int(pk.a), int(pk.b)
			row[k] = 0
			if k == t {
				continue
			}
			q := int(math.Abs(float64(dA[ak]-dB[bk])) * distSteps)
			if q >= len(rhoDist) {
				continue
			}
			d2 := foldAngle((thA - p.min[ak].angle) - (thB - c.min[bk].angle))
			d3 := foldAngle(rA[ak] - rB[bk])
			row[k] = rhoDist[q] * rhoAngle2[d2] * rhoAngle3[d3]
		}
		s.lam[t] = pt.lam
	}
	cur, next := s.lam, s.lam2
	norm := (1 - mccWR) / float32(n-1)
	for range mccRelRounds {
		for t := range n {
			next[t] = mccWR*cur[t] + norm*dot32(s.rho[t*n:(t+1)*n], cur[:n])
		}
		cur, next = next, cur
	}
	for t := range n {
		s.eff[t] = cur[t] / s.sel[t].lam
	}
	// Mean of the nP pairs with the highest efficiency: a partial
	// selection, nP being small.
	nP = min(nP, n)
	s.top = s.top[:0]
	var total, wsum float32
	for range nP {
		best := 0
		for t := 1; t < n; t++ {
			if s.eff[t] > s.eff[best] {
				best = t
			}
		}
		w := qWeight(p, c, s.sel[best].a, s.sel[best].b)
		total += w * cur[best]
		wsum += w
		s.eff[best] = -1
		s.top = append(s.top, int32(best))
	}
	s.rel = cur
	return total / wsum
}

// gPair is a candidate pair of the global stage: minutiae a and b, and
// their distance after alignment over the tolerance, squared, in
// 1/gBuckets.
type gPair struct {
	q    uint8
	a, b uint8
}

// gBuckets quantises the candidate pairs' distances for the counting sort
// that pairs the nearest first.
const gBuckets = 16

// global is the second, global consolidation: the rigid transform that
// best maps the probe's minutiae of the relaxation's nP pairs onto the
// candidate's (weighted least squares on their positions and directions,
// weights their relaxed scores), the minutiae it pairs one to one
// (nearest first, within a tolerance that grows away from the anchors),
// and m²/(nA′·nB′) with m the pairs and nA′, nB′ the minutiae of each side
// in the other's area. Where the local scores of a genuine comparison are
// weak (noisy or dense minutiae change the cylinders), most minutiae
// still pair after the alignment. The score is the best over that
// alignment and the globalAnchors single-pair ones. Every minutia counts,
// whatever its reported quality: the extractor's qualities are too coarse
// to tell spurious minutiae apart, and dropping the low ones (below 40)
// left too few to pair (FVC2002 DB1_B from images: 6 of 35 a side paired
// in genuine comparisons against 21 with all of them).
func (s *fingerScratch) global(p, c *FingerTemplate) float32 {
	var sw, ax, ay, bx, by float32
	for _, t := range s.top {
		if w := s.rel[t]; w > 0 {
			a, b := p.min[s.sel[t].a], c.min[s.sel[t].b]
			sw += w
			ax, ay, bx, by = ax+w*a.x, ay+w*a.y, bx+w*b.x, by+w*b.y
		}
	}
	if sw == 0 {
		return 0
	}
	ax, ay, bx, by = ax/sw, ay/sw, bx/sw, by/sw
	// The rotation maximises Σw⟨R·(a−ā), b−b̄⟩, plus the directions as
	// unit vectors 30 px long.
	const dirWeight = 30 * 30
	var sxx, sxy float64
	for _, t := range s.top {
		w := float64(s.rel[t])
		if w <= 0 {
			continue
		}
		a, b := p.min[s.sel[t].a], c.min[s.sel[t].b]
		u, v := float64(a.x-ax), float64(a.y-ay)
		x, y := float64(b.x-bx), float64(b.y-by)
		sd, cd := math.Sincos(2 * math.Pi * float64((b.angle-a.angle)&angleMask) / angleSteps)
		sxx += w * (u*x + v*y + dirWeight*cd)
		sxy += w * (u*y - v*x + dirWeight*sd)
	}
	g := s.pairUp(p, c, newAlignment(ax, ay, bx, by, quantAngle(math.Atan2(sxy, sxx))))
	for _, t := range s.top[:min(globalAnchors, len(s.top))] {
		a, b := p.min[s.sel[t].a], c.min[s.sel[t].b]
		al := newAlignment(a.x, a.y, b.x, b.y, (b.angle-a.angle)&angleMask)
		if al.agree(p, c, s.sel) < anchorMinAgree {
			continue
		}
		g = max(g, s.pairUp(p, c, al))
	}
	return g
}

// pairUp is the global score of al: m²/(nA′·nB′), m the minutiae it
// pairs, nA′ and nB′ those of each side in the other's area.
func (s *fingerScratch) pairUp(p, c *FingerTemplate, al alignment) float32 {
	m := s.pairCount(p, c, al)
	if m == 0 {
		return 0
	}
	nAov, nBov := al.overlap(p, c)
	return m * m / (max(nAov, globalMinOv, m) * max(nBov, globalMinOv, m))
}

// agree counts the pairs that al maps onto each other, within the
// tolerances of pairCount.
func (al alignment) agree(p, c *FingerTemplate, pairs []simPair) int {
	if foldAngle(al.rot) > mccDeltaTheta {
		return 0
	}
	n := 0
	for _, pr := range pairs {
		a, b := p.min[pr.a], c.min[pr.b]
		x, y, r := al.place(a)
		if dx, dy := x-b.x, y-b.y; dx*dx+dy*dy <= r*r && foldAngle(b.angle-a.angle-al.rot) <= globalDTheta {
			n++
		}
	}
	return n
}

// alignment is a rigid transform of the probe's plane onto the
// candidate's: (ax, ay) goes to (bx, by), turned by rot (in 1/angleSteps
// of a turn; sin and cos its sine and cosine).
type alignment struct {
	ax, ay, bx, by float32
	sin, cos       float32
	rot            uint16
}

func newAlignment(ax, ay, bx, by float32, rot uint16) alignment {
	sn, cs := math.Sincos(2 * math.Pi * float64(rot) / angleSteps)
	return alignment{ax: ax, ay: ay, bx: bx, by: by, sin: float32(sn), cos: float32(cs), rot: rot}
}

// place maps a probe minutia to (x, y) in the candidate's plane and gives
// the distance r within which it pairs: globalR0 px plus globalRK px per px
// of distance from the anchor (ax, ay), as distortion grows away from it.
func (al alignment) place(a fingerMinutia) (x, y, r float32) {
	u, v := a.x-al.ax, a.y-al.ay
	return al.cos*u - al.sin*v + al.bx, al.sin*u + al.cos*v + al.by,
		globalR0 + globalRK*float32(math.Sqrt(float64(u*u+v*v)))
}

// pairCount counts the minutiae that al pairs one to one, nearest first,
// within globalR0 px plus globalRK px per px of distance from (ax, ay)
// and globalDTheta of direction.
func (s *fingerScratch) pairCount(p, c *FingerTemplate, al alignment) float32 {
	if foldAngle(al.rot) > mccDeltaTheta {
		return 0 // no cylinders are compared beyond δθ: nor minutiae paired
	}
	s.gp = s.gp[:0]
	clear(s.gCounts[:])
	for i, a := range p.min {
		x, y, r := al.place(a)
		r2 := r * r
		th := a.angle + al.rot
		// the candidate's minutiae with x within r, by binary search
		lo, hi := 0, len(c.xs)
		for lo < hi {
			if mid := (lo + hi) / 2; c.xs[mid] < x-r {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		for k := lo; k < len(c.xs) && c.xs[k] <= x+r; k++ {
			j := int(c.byX[k])
			b := c.min[j]
			dx, dy := b.x-x, b.y-y
			if d2 := dx*dx + dy*dy; d2 <= r2 && foldAngle(b.angle-th) <= globalDTheta {
				q := min(uint8(d2/r2*gBuckets), gBuckets-1)
				s.gp = append(s.gp, gPair{q: q, a: uint8(i), b: uint8(j)})
				s.gCounts[q+1]++
			}
		}
	}
	// Nearest first: a counting sort on the quantised distance.
	for k := 1; k <= gBuckets; k++ {
		s.gCounts[k] += s.gCounts[k-1]
	}
	s.gOrder = grow(s.gOrder, len(s.gp))
	for _, q := range s.gp {
		s.gOrder[s.gCounts[q.q]] = q
		s.gCounts[q.q]++
	}
	s.usedA, s.usedB = [4]uint64{}, [4]uint64{}
	var m float32
	for _, q := range s.gOrder {
		if s.usedA[q.a>>6]&(1<<(q.a&63)) != 0 || s.usedB[q.b>>6]&(1<<(q.b&63)) != 0 {
			continue
		}
		s.usedA[q.a>>6] |= 1 << (q.a & 63)
		s.usedB[q.b>>6] |= 1 << (q.b & 63)
		m++
	}
	return m
}

// overlap counts the minutiae of each side that al puts in the other's
// area.
func (al alignment) overlap(p, c *FingerTemplate) (nA, nB float32) {
	sin, cos := al.sin, al.cos
	for _, a := range p.min {
		u, v := a.x-al.ax, a.y-al.ay
		if inHull(c.hull, cos*u-sin*v+al.bx, sin*u+cos*v+al.by) {
			nA++
		}
	}
	for _, b := range c.min {
		x, y := b.x-al.bx, b.y-al.by
		if inHull(p.hull, cos*x+sin*y+al.ax, -sin*x+cos*y+al.ay) {
			nB++
		}
	}
	return nA, nB
}

// inHull reports whether (x, y) lies inside the hull (lines as in
// FingerTemplate.hull) or within globalMargin of it.
func inHull(hull []float32, x, y float32) bool {
	if len(hull) == 0 {
		return false
	}
	for k := 0; k+3 <= len(hull); k += 3 {
		if hull[k]*x+hull[k+1]*y < hull[k+2]-globalMargin {
			return false
		}
	}
	return true
}

// dot32 is Σ a[k]·b[k] over len(a) ≤ len(b). Four partial sums, so that
// the additions do not wait on each other: the relaxation's n² products
// per round are most of a comparison's time otherwise.
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// grow returns b resized to n, reusing its memory when it is big enough.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
