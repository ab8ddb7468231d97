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
	pairs  []simPair // compared cylinder pairs
	order  []simPair // pairs by decreasing similarity
	counts [simBuckets + 1]int32
	usedA  [4]uint64 // minutiae of each side already in a selected pair
	usedB  [4]uint64
	sel    []simPair // the pairs the relaxation works on
	rho    []float32 // compatibility of selected pairs, nR×nR
	lam    []float32
	lam2   []float32
	eff    []float32
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
// MCC's LSS-R: the local similarities of all cylinder pairs, the best
// one-to-one pairs among them, relaxed by their geometric compatibility
// with each other, and the mean of the nP most consistent. Templates with
// fewer than two cylinders score 0.
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
	return s.relax(p, c, int(npFor[min(nA, nB)]))
}

// The first stage compares only the probe's first coarseProbeCylinders
// cylinders (those with the most valid cells, see sortCylinders), and
// only with candidate cylinders within coarseDeltaTheta of direction: a
// quarter of the pairs of a full comparison, enough to find nP good ones
// in a mate.
var (
	coarseProbeCylinders = 16
	coarseDeltaTheta     = uint16(angleSteps / 8)
)

// coarseLSS is the cheap score of the 1:N search's first stage: MCC's LSS
// (the mean of the nP best cylinder-pair similarities, no consolidation)
// on the coarse cylinders. It only ranks candidates for the full score.
func (s *fingerScratch) coarseLSS(p, c *FingerTemplate) float32 {
	nA, nB := len(p.min), len(c.min)
	if nA < 2 || nB < 2 {
		return 0
	}
	nP := int(npFor[min(nA, nB)])
	var top [mccMaxNP]float32 // the best nP so far, decreasing
	for i := range min(nA, coarseProbeCylinders) {
		a := (*[coarseWords]uint64)(p.coarse[i*coarseWords:])
		ai := p.min[i].angle
		for j := range nB {
			if foldAngle(ai-c.min[j].angle) > coarseDeltaTheta {
				continue
			}
			b := (*[coarseWords]uint64)(c.coarse[j*coarseWords:])
			ma, mb := a[mccND], b[mccND]
			if bits.OnesCount64(ma&mb) < minCommonCoarse {
				continue
			}
			var na, nb, both int
			for w := range mccND {
				na += bits.OnesCount64(a[w] & mb)
				nb += bits.OnesCount64(b[w] & ma)
				both += bits.OnesCount64(a[w] & b[w])
			}
			lam := cylSim(na, nb, both)
			if lam <= top[nP-1] {
				continue
			}
			k := nP - 1
			for ; k > 0 && top[k-1] < lam; k-- {
				top[k] = top[k-1]
			}
			top[k] = lam
		}
	}
	var sum float32
	for _, v := range top[:nP] {
		sum += v
	}
	return sum / float32(nP)
}

// refineFactor × the smaller cylinder count is how many of the best
// coarse pairs get a full comparison; the relaxation keeps at most
// 1 × that count, so the rest is margin for the coarse ranking's errors.
var refineFactor = 3

// coarseSimilarities fills s.pairs with every matchable cylinder pair and
// its similarity on the coarse cylinders (see cylSim).
func (s *fingerScratch) coarseSimilarities(p, c *FingerTemplate) {
	s.pairs = s.pairs[:0]
	nB := len(c.min)
	for i := range p.min {
		a := (*[coarseWords]uint64)(p.coarse[i*coarseWords:])
		ai := p.min[i].angle
		for j := range nB {
			if foldAngle(ai-c.min[j].angle) > mccDeltaTheta {
				continue
			}
			b := (*[coarseWords]uint64)(c.coarse[j*coarseWords:])
			ma, mb := a[mccND], b[mccND]
			if bits.OnesCount64(ma&mb) < minCommonCoarse {
				continue
			}
			var na, nb, both int
			for w := range mccND {
				na += bits.OnesCount64(a[w] & mb)
				nb += bits.OnesCount64(b[w] & ma)
				both += bits.OnesCount64(a[w] & b[w])
			}
			if lam := cylSim(na, nb, both); lam > 0 {
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
// most of their score.
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
			row := s.rho[t*n : (t+1)*n]
			var sum float32
			for k, r := range row {
				sum += r * cur[k]
			}
			next[t] = mccWR*cur[t] + norm*sum
		}
		cur, next = next, cur
	}
	for t := range n {
		s.eff[t] = cur[t] / s.sel[t].lam
	}
	// Mean of the nP pairs with the highest efficiency: a partial
	// selection, nP being small.
	nP = min(nP, n)
	var total float32
	for range nP {
		best := 0
		for t := 1; t < n; t++ {
			if s.eff[t] > s.eff[best] {
				best = t
			}
		}
		total += cur[best]
		s.eff[best] = -1
	}
	return total / float32(nP)
}

// grow returns b resized to n, reusing its memory when it is big enough.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
