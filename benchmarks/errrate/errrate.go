// Package errrate computes verification and identification error rates as
// ISO/IEC 19795-1 and NIST FRTE define them: FMR and FNMR at a threshold,
// the DET curve, the equal error rate, FNMR at a target FMR, and CMC, FPIR
// and FNIR for 1:N searches. It imports nothing of Bordermatch, so the
// accuracy tests of every package and bmbench compute these the same way.
//
// Conventions shared by every function here:
//
//   - Scores are similarities: higher means more alike. A comparison is a
//     match at threshold t when its score is >= t.
//   - A comparison that could not be made (failure to enrol or to acquire)
//     is passed in as -Inf: it is a non-match at every threshold, so it
//     raises FNMR and never raises FMR, as 19795-1's generalised rates
//     require. -Inf is therefore never itself used as a threshold.
//   - NaN scores are treated exactly like -Inf (a failed comparison), never
//     dropped: a NaN means the comparison produced no score.
//   - A rate over an empty set is NaN: it is undefined, not zero. Callers
//     that write JSON must map NaN to null.
package errrate

import (
	"math"
	"slices"
)

// DETPoint is one operating point of a verification system.
type DETPoint struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
}

// failed reports whether s stands for a comparison that produced no score.
func failed(s float64) bool { return math.IsNaN(s) || math.IsInf(s, -1) }

// FMR is the share of impostor scores >= t (false matches). NaN when
// impostor is empty.
func FMR(impostor []float64, t float64) float64 {
	n := 0
	for _, s := range impostor {
		if s >= t && !failed(s) {
			n++
		}
	}
	return float64(n) / float64(len(impostor))
}

// FNMR is the share of genuine scores < t (false non-matches), failed
// comparisons (-Inf, NaN) included at every t. NaN when genuine is empty.
func FNMR(genuine []float64, t float64) float64 {
	n := 0
	for _, s := range genuine {
		if !(s >= t) || failed(s) {
			n++
		}
	}
	return float64(n) / float64(len(genuine))
}

// sortedScores returns an ascending copy of s with NaN replaced by -Inf.
func sortedScores(s []float64) []float64 {
	c := make([]float64, len(s))
	for i, v := range s {
		if math.IsNaN(v) {
			v = math.Inf(-1)
		}
		c[i] = v
	}
	slices.Sort(c)
	return c
}

// DET returns the exact error trade-off of a verifier: one point at every
// distinct score that occurs in either set (ascending threshold), where
// FMR = share of impostor scores >= threshold and FNMR = share of genuine
// scores < threshold. -Inf and NaN scores are not thresholds (see the
// package conventions).
//
// One point is added after the highest score, at the next float64 above
// it, where FMR = 0 and FNMR = 1: the threshold that rejects everything.
// It is omitted when the highest score is +Inf.
//
// FMR is non-increasing and FNMR non-decreasing along the result, and
// FNMR-FMR strictly increases from one point to the next. DET is nil when
// either set is empty or no score is finite. It sorts copies of the inputs:
// O(n log n) time, O(n) memory.
func DET(genuine, impostor []float64) []DETPoint {
	if len(genuine) == 0 || len(impostor) == 0 {
		return nil
	}
	return det(sortedScores(genuine), sortedScores(impostor))
}

// det computes DET on sorted scores; an empty set gives NaN rates.
func det(g, im []float64) []DETPoint {
	nG, nI := float64(len(g)), float64(len(im))
	negInf := math.Inf(-1)
	i, j := 0, 0 // g[:i] < t, im[:j] < t
	for i < len(g) && g[i] == negInf {
		i++
	}
	for j < len(im) && im[j] == negInf {
		j++
	}
	pts := make([]DETPoint, 0, len(g)-i+len(im)-j+1)
	for i < len(g) || j < len(im) {
		var t float64
		switch {
		case i == len(g):
			t = im[j]
		case j == len(im):
			t = g[i]
		default:
			t = min(g[i], im[j])
		}
		pts = append(pts, DETPoint{Threshold: t, FMR: float64(len(im)-j) / nI, FNMR: float64(i) / nG})
		for i < len(g) && g[i] == t {
			i++
		}
		for j < len(im) && im[j] == t {
			j++
		}
	}
	if n := len(pts); n > 0 && !math.IsInf(pts[n-1].Threshold, 1) {
		pts = append(pts, DETPoint{
			Threshold: math.Nextafter(pts[n-1].Threshold, math.Inf(1)),
			FMR:       0 / nI,
			FNMR:      nG / nG,
		})
	}
	return pts
}

// EER returns the equal error rate and its threshold.
//
// How: along the DET curve (ascending threshold) FNMR-FMR strictly
// increases. If it is zero at a point, that point's rate and threshold are
// the EER. Otherwise the crossing lies between the two consecutive points
// (t1, FMR1, FNMR1), (t2, FMR2, FNMR2) where it changes sign, and both
// rates are taken as linear in the threshold between them:
//
//	a   = (FMR1-FNMR1) / ((FMR1-FNMR1) - (FMR2-FNMR2))
//	EER = FMR1 + a·(FMR2-FMR1) = FNMR1 + a·(FNMR2-FNMR1)
//	threshold = t1 + a·(t2-t1)
//
// which is where the straight segment between the two operating points
// meets the line FMR = FNMR. It always lies between FVC's EERlow and
// EERhigh bounds (Maio et al., FVC2000), which bracket the same crossing.
// Perfectly separated sets give EER 0 at the lowest genuine score.
//
// ok is false (and eer, threshold NaN) when either set is empty or the
// rates never cross: when so many genuine comparisons failed that FNMR
// exceeds FMR at every threshold, or so many impostors scored +Inf that
// FMR exceeds FNMR at every threshold.
func EER(genuine, impostor []float64) (eer, threshold float64, ok bool) {
	return eerOf(DET(genuine, impostor))
}

func eerOf(p []DETPoint) (eer, threshold float64, ok bool) {
	for k, q := range p {
		d := q.FNMR - q.FMR
		if d == 0 {
			return q.FMR, q.Threshold, true
		}
		if d < 0 {
			continue
		}
		if k == 0 {
			break // FNMR > FMR everywhere
		}
		r := p[k-1]
		d1 := r.FMR - r.FNMR // > 0
		a := d1 / (d1 + d)
		eer = r.FMR + a*(q.FMR-r.FMR)
		threshold = r.Threshold + a*(q.Threshold-r.Threshold)
		return eer, threshold, true
	}
	return math.NaN(), math.NaN(), false
}

// OperatingPoint is the error rate at the threshold that meets a target
// false-match (or false-positive identification) rate.
type OperatingPoint struct {
	Target float64 `json:"target"`
	// Measurable is false when too few impostor comparisons (non-mated
	// searches) were made to tell the target from zero: by the rule of
	// three, with N of them and none wrong, the 95% upper confidence bound
	// on the true rate is 3/N, so only targets >= 3/N can be measured.
	// The other fields are still filled where they can be computed.
	Measurable bool    `json:"measurable"`
	Rate       float64 `json:"rate"`      // FNMR (verification) or FNIR (identification) at Threshold
	FMR        float64 `json:"fmr"`       // FMR or FPIR actually measured at Threshold, <= Target
	Threshold  float64 `json:"threshold"` // lowest threshold whose FMR/FPIR <= Target
}

// measurable applies the rule of three; the tolerance absorbs the rounding
// of targets such as 0.001 that have no exact binary form.
func measurable(n int, target float64) bool {
	return target > 0 && float64(n)*target >= 3*(1-1e-9)
}

// FNMRAtFMR returns FNMR at the lowest threshold whose FMR <= target. That
// threshold is a DET threshold: FMR only changes at impostor scores, and
// within a step the lowest threshold has the lowest FNMR. When no observed
// score meets the target it is the threshold above every score (FMR 0,
// FNMR 1). With no impostor scores every field but Target is NaN; with no
// genuine scores Rate is NaN; with no finite score at all Threshold is NaN.
// FMR exceeds Target only when it cannot be met: a negative or NaN target,
// or impostor scores of +Inf.
func FNMRAtFMR(genuine, impostor []float64, target float64) OperatingPoint {
	op := OperatingPoint{Target: target, Measurable: measurable(len(impostor), target),
		Rate: math.NaN(), FMR: math.NaN(), Threshold: math.NaN()}
	if len(impostor) == 0 {
		return op
	}
	return operatingPoint(op, det(sortedScores(genuine), sortedScores(impostor)), len(genuine))
}

func operatingPoint(op OperatingPoint, p []DETPoint, genuine int) OperatingPoint {
	for _, q := range p {
		if q.FMR <= op.Target {
			op.Rate, op.FMR, op.Threshold = q.FNMR, q.FMR, q.Threshold
			return op
		}
	}
	// No finite score, or the highest is +Inf and shared with impostors
	// beyond the target.
	op.FMR = 0
	if len(p) > 0 {
		op.FMR = p[len(p)-1].FMR
		op.Threshold = p[len(p)-1].Threshold
	}
	if genuine > 0 {
		op.Rate = 1
		if len(p) > 0 {
			op.Rate = p[len(p)-1].FNMR
		}
	}
	return op
}

// SearchOutcome is what one 1:N search returned, reduced to what the
// NIST FRTE identification metrics need.
type SearchOutcome struct {
	Mated bool // the searched identity is enrolled
	// MateRank is the 1-based rank of the mate in the candidate list; 0
	// when the mate was not returned or the search failed.
	MateRank  int
	MateScore float64
	// TopNonMateScore is the best score of a candidate that is not the
	// mate, -Inf if there is none (or the search failed).
	TopNonMateScore float64
}

// CMC returns the cumulative match characteristic: [r-1] is the share of
// mated searches whose mate is at rank 1..r. Failed mated searches count
// as misses. The rates are NaN when there are no mated searches; nil when
// maxRank < 1.
func CMC(s []SearchOutcome, maxRank int) []float64 {
	if maxRank < 1 {
		return nil
	}
	hits := make([]int, maxRank+1)
	mated := 0
	for _, o := range s {
		if !o.Mated {
			continue
		}
		mated++
		if o.MateRank > 0 && o.MateRank <= maxRank {
			hits[o.MateRank]++
		}
	}
	cmc := make([]float64, maxRank)
	n := 0
	for r := 1; r <= maxRank; r++ {
		n += hits[r]
		cmc[r-1] = float64(n) / float64(mated)
	}
	return cmc
}

// FPIR is the false positive identification rate: the share of non-mated
// searches whose best candidate scores >= t. NaN without non-mated searches.
func FPIR(s []SearchOutcome, t float64) float64 {
	n, fp := 0, 0
	for _, o := range s {
		if o.Mated {
			continue
		}
		n++
		if o.TopNonMateScore >= t && !failed(o.TopNonMateScore) {
			fp++
		}
	}
	return float64(fp) / float64(n)
}

// mateScore is the score a mated search counts with at threshold-rank
// rank: its mate's score when the mate is within rank, else a failure.
func mateScore(o SearchOutcome, rank int) float64 {
	if o.MateRank < 1 || (rank > 0 && o.MateRank > rank) {
		return math.Inf(-1)
	}
	return o.MateScore
}

// FNIR is the false negative identification rate: the share of mated
// searches whose mate is not returned at rank <= rank with score >= t.
// rank < 1 means any rank. NaN without mated searches.
func FNIR(s []SearchOutcome, t float64, rank int) float64 {
	n, fn := 0, 0
	for _, o := range s {
		if !o.Mated {
			continue
		}
		n++
		if m := mateScore(o, rank); !(m >= t) || failed(m) {
			fn++
		}
	}
	return float64(fn) / float64(n)
}

// FNIRAtFPIR returns FNIR (mate within rank; rank < 1: any rank) at the
// lowest threshold whose FPIR <= target, chosen as FNMRAtFMR chooses it,
// with non-mated searches' best scores as the impostor scores and mated
// searches' mate scores as the genuine ones. Measurable when there are at
// least 3/target non-mated searches.
func FNIRAtFPIR(s []SearchOutcome, target float64, rank int) OperatingPoint {
	mated, nonMated := searchScores(s, rank)
	return FNMRAtFMR(mated, nonMated, target)
}

// FNIRCurve is the open-set trade-off of 1:N searches, as DET is of 1:1
// comparisons: at every threshold, FPIR (in the points' FMR) and FNIR
// with the mate within rank (rank < 1: any rank; in the points' FNMR).
// Nil without mated or non-mated searches.
func FNIRCurve(s []SearchOutcome, rank int) []DETPoint {
	mated, nonMated := searchScores(s, rank)
	return DET(mated, nonMated)
}

// searchScores are the scores FNIR and FPIR count: each mated search's
// mate score within rank, each non-mated search's best score.
func searchScores(s []SearchOutcome, rank int) (mated, nonMated []float64) {
	for _, o := range s {
		if o.Mated {
			mated = append(mated, mateScore(o, rank))
		} else {
			nonMated = append(nonMated, o.TopNonMateScore)
		}
	}
	return mated, nonMated
}
