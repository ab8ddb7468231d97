package matcher

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// GenuinePoint is a point of a genuine score distribution: the share of
// genuine comparisons that scored >= Score (1 - FNMR at that threshold).
type GenuinePoint struct {
	Score  float64 `json:"score"`
	Accept float64 `json:"accept"`
}

// genuinePoints bounds a table's genuine points: genuine sets are small
// (thousands), and the likelihood ratio is read from the ROC's convex hull,
// which a percentile grid already draws.
const genuinePoints = 200

// SetGenuine records the genuine comparison scores a table was measured
// with: GenuineCount and at most about 200 points evenly spaced in rank,
// the lowest and the highest distinct scores always kept. Failed
// comparisons (-Inf or NaN) count in GenuineCount and are never accepted.
func (c *Calibration) SetGenuine(genuine []float64) {
	c.GenuineCount = len(genuine)
	c.Genuine = nil
	s := make([]float64, 0, len(genuine))
	above := 0
	for _, v := range genuine {
		switch {
		case math.IsInf(v, 1):
			above++
		case !math.IsNaN(v) && !math.IsInf(v, -1):
			s = append(s, v)
		}
	}
	slices.Sort(s)
	n := float64(len(genuine))
	step := max(1, len(s)/genuinePoints)
	last := -step
	for i := 0; i < len(s); {
		v := s[i]
		j := i
		for j < len(s) && s[j] == v {
			j++
		}
		if i == 0 || j == len(s) || i-last >= step {
			c.Genuine = append(c.Genuine, GenuinePoint{Score: v, Accept: float64(len(s)-i+above) / n})
			last = i
		}
		i = j
	}
}

// validGenuine checks the genuine points (Validate).
func (c Calibration) validGenuine() error {
	if len(c.Genuine) == 0 {
		return nil
	}
	if c.GenuineCount <= 0 {
		return fmt.Errorf("genuine_count: %d with %d genuine points", c.GenuineCount, len(c.Genuine))
	}
	return validCurve("genuine", "accept", "genuine_count", c.GenuineCount, "it cannot rise with the score", len(c.Genuine),
		func(i int) (float64, float64) { return c.Genuine[i].Score, c.Genuine[i].Accept })
}

// acceptAt is the share of genuine comparisons at or above score,
// interpolated between points; 0 above the highest.
func (c Calibration) acceptAt(score float64) float64 {
	p := c.Genuine
	switch {
	case score <= p[0].Score:
		return p[0].Accept
	case score > p[len(p)-1].Score:
		return 0
	case score == p[len(p)-1].Score:
		return p[len(p)-1].Accept
	}
	i, _ := slices.BinarySearchFunc(p, score, func(q GenuinePoint, s float64) int { return cmp.Compare(q.Score, s) })
	a, b := p[i-1], p[i]
	return a.Accept + (score-a.Score)/(b.Score-a.Score)*(b.Accept-a.Accept)
}

// LikelihoodRatio maps a comparison's FMR (Calibration.FMRAt of its score)
// to the likelihood ratio of its score: how much likelier a genuine
// comparison is to score there than an impostor one. The zero value (a
// table without genuine points) answers 1, no evidence either way.
type LikelihoodRatio struct {
	// hull is the upper convex hull of the ROC (FMR, accept), ascending in
	// FMR, from (0, 0) to (1, 1).
	hull  []rocPoint
	floor float64
}

type rocPoint struct{ fmr, accept float64 }

// ErrNoGenuine: the table holds no genuine score distribution.
var ErrNoGenuine = errors.New("matcher: calibration has no genuine scores")

// LikelihoodRatio reads the table's likelihood ratios from the convex hull
// of its ROC curve (the impostor FMR against the genuine accept rate at
// every score of either distribution): the ratio at a score is the slope of
// the hull segment its FMR falls in. The hull's slopes fall as the FMR
// rises, so the ratio never falls as the score rises (a higher score is
// never weaker evidence), and the slope of a segment is the ratio of
// genuine to impostor comparisons in it, the ISO/IEC TR 24722 score-level
// likelihood ratio with the sampling noise of the density smoothed out.
// Above the highest impostor score it is the first segment's slope (the
// genuine share there over the smallest FMR measured), never more; it is
// never below 1/GenuineCount, the smallest share a genuine set measures.
func (c Calibration) LikelihoodRatio() (LikelihoodRatio, error) {
	if len(c.Genuine) == 0 || len(c.Points) == 0 {
		return LikelihoodRatio{}, ErrNoGenuine
	}
	pts := []rocPoint{{0, 0}, {1, 1}}
	for _, p := range c.Points {
		pts = append(pts, rocPoint{p.FMR, c.acceptAt(p.Score)})
	}
	for _, g := range c.Genuine {
		pts = append(pts, rocPoint{c.FMRAt(g.Score), g.Accept})
	}
	slices.SortFunc(pts, func(a, b rocPoint) int {
		if c := cmp.Compare(a.fmr, b.fmr); c != 0 {
			return c
		}
		return cmp.Compare(a.accept, b.accept)
	})
	// Andrew's monotone chain, upper half.
	var hull []rocPoint
	for _, p := range pts {
		for len(hull) >= 2 {
			a, b := hull[len(hull)-2], hull[len(hull)-1]
			if (b.fmr-a.fmr)*(p.accept-a.accept)-(b.accept-a.accept)*(p.fmr-a.fmr) >= 0 {
				hull = hull[:len(hull)-1] // b is on or under the chord a-p
				continue
			}
			break
		}
		hull = append(hull, p)
	}
	return LikelihoodRatio{hull: hull, floor: 1 / float64(c.GenuineCount)}, nil
}

// At returns the likelihood ratio of a comparison whose single-comparison
// FMR is fmr: the slope of the hull segment with fmr in (its start, its
// end]. 1 for the zero LikelihoodRatio or a NaN fmr.
func (l LikelihoodRatio) At(fmr float64) float64 {
	h := l.hull
	if len(h) < 2 || math.IsNaN(fmr) {
		return 1
	}
	i, _ := slices.BinarySearchFunc(h, fmr, func(p rocPoint, f float64) int { return cmp.Compare(p.fmr, f) })
	// h[i-1].fmr < fmr <= h[i].fmr
	i = min(max(i, 1), len(h)-1)
	a, b := h[i-1], h[i]
	if b.fmr <= a.fmr {
		return math.Max(l.floor, 1)
	}
	return math.Max(l.floor, (b.accept-a.accept)/(b.fmr-a.fmr))
}

// Known reports whether the ratio was measured (false for the zero value).
func (l LikelihoodRatio) Known() bool { return len(l.hull) >= 2 }
