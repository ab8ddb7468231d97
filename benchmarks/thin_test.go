package benchmarks

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// curve makes DET points at thresholds 1, 2, … from (FMR, FNMR) pairs.
func curve(rates ...float64) []errrate.DETPoint {
	var p []errrate.DETPoint
	for i := 0; i+1 < len(rates); i += 2 {
		p = append(p, errrate.DETPoint{Threshold: float64(i/2 + 1), FMR: rates[i], FNMR: rates[i+1]})
	}
	return p
}

func TestThinDET(t *testing.T) {
	// Five points evenly spaced on log axes: three kept are the ends and the middle.
	p := curve(1, 0.5, 0.1, 0.5, 0.01, 0.5, 0.001, 0.5, 0.0001, 0.5)
	if got, want := ThinDET(p, 3), []errrate.DETPoint{p[0], p[2], p[4]}; !slices.Equal(got, want) {
		t.Errorf("ThinDET(5 log-spaced, 3) = %v, want %v", got, want)
	}
	if got := ThinDET(p, 1); !slices.Equal(got, []errrate.DETPoint{p[0], p[4]}) {
		t.Errorf("ThinDET(p, 1) = %v, want the two ends", got)
	}
	if got := ThinDET(p, 5); !slices.Equal(got, p) || &got[0] == &p[0] {
		t.Errorf("ThinDET(p, len) = %v, want a copy of p", got)
	}
	if got := ThinDET(nil, 10); len(got) != 0 {
		t.Errorf("ThinDET(nil) = %v", got)
	}
	// Zero rates are drawn at the smallest rate: 1→0.01→0 (clipped to 0.01)
	// is two equal log-steps, so the middle point is kept.
	z := curve(1, 0.01, 0.1, 0.01, 0.01, 0.01, 0, 0.1, 0, 1)
	if got, want := ThinDET(z, 3), []errrate.DETPoint{z[0], z[2], z[4]}; !slices.Equal(got, want) {
		t.Errorf("ThinDET(zeros, 3) = %v, want %v", got, want)
	}
}

// A realistic curve with a million impostors: thinning keeps the ends,
// stays a subsequence, and leaves no gap on log axes much longer than the
// spacing it aims for.
func TestThinDETRealistic(t *testing.T) {
	gen, imp := synthetic(rand.New(rand.NewPCG(1, 2)), 10000, 1000000)
	p := errrate.DET(gen, imp)
	const max = 1000
	q := ThinDET(p, max)
	if len(q) > max || q[0] != p[0] || q[len(q)-1] != p[len(p)-1] {
		t.Fatalf("ThinDET: %d points, ends %v %v of %v %v", len(q), q[0], q[len(q)-1], p[0], p[len(p)-1])
	}
	if len(q) < max*9/10 {
		t.Errorf("ThinDET kept only %d of %d allowed points", len(q), max)
	}
	floor := 1.0 / float64(len(imp))
	lg := func(v float64) float64 { return math.Log10(math.Max(v, floor)) }
	dist := func(a, b errrate.DETPoint) float64 { return math.Hypot(lg(a.FMR)-lg(b.FMR), lg(a.FNMR)-lg(b.FNMR)) }
	var total, step float64
	for k := 1; k < len(p); k++ {
		d := dist(p[k-1], p[k])
		total += d
		step = math.Max(step, d)
	}
	k := 0
	for i := 1; i < len(q); i++ {
		for k < len(p) && p[k] != q[i] {
			k++
		}
		if k == len(p) {
			t.Fatalf("ThinDET point %d %v is not in order in the curve", i, q[i])
		}
		if d := dist(q[i-1], q[i]); d > 2*total/(max-1)+step {
			t.Errorf("gap %.3f between %v and %v (spacing %.3f, largest step %.3f)", d, q[i-1], q[i], total/(max-1), step)
		}
	}
	// The low-FMR tail, where a border operates, keeps its exact steps.
	var tail, kept int
	for _, x := range p {
		if x.FMR > 0 && x.FMR <= 1e-5 {
			tail++
		}
	}
	for _, x := range q {
		if x.FMR > 0 && x.FMR <= 1e-5 {
			kept++
		}
	}
	if tail == 0 || kept < tail*3/4 {
		t.Errorf("tail FMR <= 1e-5: kept %d of %d points", kept, tail)
	}
}

func checkThin(t *testing.T, p []errrate.DETPoint, max int) {
	t.Helper()
	q := ThinDET(p, max)
	if len(p) == 0 {
		if len(q) != 0 {
			t.Fatalf("ThinDET(empty) = %v", q)
		}
		return
	}
	if len(q) > max || len(q) > len(p) || q[0] != p[0] || q[len(q)-1] != p[len(p)-1] {
		t.Fatalf("ThinDET(%v, %d) = %v", p, max, q)
	}
	k := 0
	for _, x := range q {
		for k < len(p) && p[k] != x {
			k++
		}
		if k == len(p) {
			t.Fatalf("ThinDET(%v, %d) = %v: not a subsequence", p, max, q)
		}
		k++
	}
}

func BenchmarkThinDET(b *testing.B) {
	gen, imp := synthetic(rand.New(rand.NewPCG(1, 2)), 10000, 1000000)
	p := errrate.DET(gen, imp)
	b.ReportAllocs()
	for b.Loop() {
		ThinDET(p, 1000)
	}
}

// ThinDET keeps the ends and a subsequence of any curve, ties and failed
// comparisons included.
func TestThinDETRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	scores := func(n int) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = float64(r.IntN(12)) / 10
			if r.IntN(20) == 0 {
				s[i] = math.Inf(-1)
			}
		}
		return s
	}
	for range 3000 {
		checkThin(t, errrate.DET(scores(r.IntN(12)), scores(r.IntN(40))), 2+r.IntN(8))
	}
}

// synthetic draws normal scores like dlib's on a hard population:
// genuine ~ N(0.95, 0.02), impostor ~ N(0.84, 0.05).
func synthetic(r *rand.Rand, ng, ni int) (gen, imp []float64) {
	gen = make([]float64, ng)
	for i := range gen {
		gen[i] = 0.95 + 0.02*r.NormFloat64()
	}
	imp = make([]float64, ni)
	for i := range imp {
		imp[i] = 0.84 + 0.05*r.NormFloat64()
	}
	return gen, imp
}
