package benchmarks

import (
	"math"
	"slices"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// ThinDET returns at most max points of p that keep the curve's shape as
// it is drawn on log-log axes. Lengths are measured in (log10 FMR,
// log10 FNMR), zero rates counted at the smallest positive rate of the
// curve (where a plot clips them). Walking along p, a point is kept when
// the curve has travelled at least a distance d since the last kept point;
// d is the smallest distance (found by bisection) that keeps at most max
// points, the first and last point always included. The tail of a DET
// curve at low FMR is sparse but long on log axes, so its exact steps are
// kept while the dense middle is thinned, and no two kept points are
// further apart than d plus one step of p. The result is a subsequence of
// p (points are never interpolated); max < 2 is taken as 2. p is not
// modified. O(len(p)) memory, O(len(p)·32) time.
func ThinDET(p []errrate.DETPoint, max int) []errrate.DETPoint {
	if max < 2 {
		max = 2
	}
	if len(p) <= max {
		return slices.Clone(p)
	}
	floor := math.Inf(1)
	for _, q := range p {
		if q.FMR > 0 {
			floor = math.Min(floor, q.FMR)
		}
		if q.FNMR > 0 {
			floor = math.Min(floor, q.FNMR)
		}
	}
	if math.IsInf(floor, 1) {
		floor = 1
	}
	lg := func(v float64) float64 {
		if !(v > floor) { // zero and NaN too
			v = floor
		}
		return math.Log10(v)
	}
	// cum[k] = curve length from p[0] to p[k].
	cum := make([]float64, len(p))
	px, py := lg(p[0].FMR), lg(p[0].FNMR)
	for k := 1; k < len(p); k++ {
		x, y := lg(p[k].FMR), lg(p[k].FNMR)
		cum[k] = cum[k-1] + math.Hypot(x-px, y-py)
		px, py = x, y
	}
	// walk calls keep for each point kept at spacing d and returns how many.
	walk := func(d float64, keep func(int)) int {
		n, last := 1, 0
		keep(0)
		for k := 1; k < len(p)-1; k++ {
			if cum[k]-cum[last] >= d {
				n++
				last = k
				keep(k)
			}
		}
		keep(len(p) - 1)
		return n + 1
	}
	none := func(int) {}
	// walk(hi) keeps 2 points; 32 halvings find d to 2⁻³¹ of the curve's length.
	lo, hi := 0.0, 2*cum[len(cum)-1]+1
	for range 32 {
		mid := (lo + hi) / 2
		if walk(mid, none) <= max {
			hi = mid
		} else {
			lo = mid
		}
	}
	out := make([]errrate.DETPoint, 0, max)
	walk(hi, func(k int) { out = append(out, p[k]) })
	return out
}
