package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

func TestFuse(t *testing.T) {
	for _, tc := range []struct {
		in   []Evidence
		want float64
	}{
		{nil, 1},
		// One comparison: its own FMR, whatever its ratio.
		{[]Evidence{{0.01, 50}}, 0.01},
		{[]Evidence{{0.64, 0.2}}, 0.64},
		{[]Evidence{{1, 1}, {1, 1}}, 1},
		// A neutral second comparison leaves the first's reading; its own,
		// 0.9/800, is weaker.
		{[]Evidence{{0.00094, 800}, {0.9, 1}}, 0.00094},
		// Its own reading may be the stronger: 0.64/800.
		{[]Evidence{{0.00094, 800}, {0.64, 1}}, 0.0008},
		// A favourable one divides: min(0.00094/2, 0.64/800).
		{[]Evidence{{0.00094, 800}, {0.64, 2}}, 0.00047},
		// An unfavourable one multiplies, and is lent no ratio itself:
		// min(0.00094/0.5, 0.64/1).
		{[]Evidence{{0.00094, 800}, {0.64, 0.5}}, 0.00188},
		// Never above 1.
		{[]Evidence{{0.5, 0.01}, {0.5, 0.01}}, 1},
		// A mismatching finger (0.5, λ 0.01) beside a strong face is not
		// lent the face's ratio: min(1e-5/0.01, 0.5/1).
		{[]Evidence{{1e-5, 1e5}, {0.5, 0.01}}, 1e-3},
		// Underflowing: finite and ordered.
		{[]Evidence{{1e-200, 1e100}, {1e-200, 1e100}}, 0},
	} {
		got := Fuse(tc.in)
		if tc.want == 0 {
			if !(got >= 0 && got < 1e-300) {
				t.Errorf("%v: %v", tc.in, got)
			}
			if s := fusedScore(got); !(s > 300) || math.IsInf(s, 0) {
				t.Errorf("%v: fused score %v", tc.in, s)
			}
			continue
		}
		if math.Abs(got-tc.want)/tc.want > 1e-12 {
			t.Errorf("%v: %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := bestOfFMR(0.01, 2); math.Abs(got-(1-0.99*0.99)) > 1e-15 {
		t.Errorf("best of 2 at 0.01: %v", got)
	}
	if got := bestOfFMR(1e-9, 10); math.Abs(got-1e-8)/1e-8 > 1e-6 {
		t.Errorf("best of 10 at 1e-9: %v", got)
	}
	for _, tc := range []struct {
		l    float64
		n    int
		want float64
	}{{100, 1, 100}, {100, 4, 25}, {3, 4, 1}, {0.5, 4, 0.5}} {
		if got := bestOfLR(tc.l, tc.n); got != tc.want {
			t.Errorf("bestOfLR(%v, %d) = %v, want %v", tc.l, tc.n, got, tc.want)
		}
	}
}

// TestDefaultThresholdsCalibrated: every built-in threshold of an ONNX
// model is the score at DefaultMaxFMR of its built-in calibration, so the
// threshold rule and the FMR rule give one decision by default. dlib's
// older threshold is not (0.93 is FMR 0.72 on its conservative idols
// table: issue 18's "two numbers that disagree"), and only logged.
func TestDefaultThresholdsCalibrated(t *testing.T) {
	cals, err := DefaultFaceCalibrations()
	if err != nil {
		t.Fatal(err)
	}
	for alg, thr := range DefaultThresholds {
		cal, ok := cals[alg]
		if !ok {
			t.Errorf("%s has a default threshold and no calibration", alg)
			continue
		}
		fmr := cal.FMRAt(float64(thr))
		t.Logf("%s: threshold %.4f is FMR %.2g", alg, thr, fmr)
		if alg == templates.FaceAlgorithm.String() {
			continue
		}
		// Within a few impostor comparisons of it: the thresholds are
		// written to four decimals.
		if math.Abs(fmr-DefaultMaxFMR) > 5/float64(cal.ImpostorCount) {
			t.Errorf("%s: threshold %v is at FMR %v, not the default %v", alg, thr, fmr, DefaultMaxFMR)
		}
	}
}

// TestFuseNullRate: the fused FMR is an FMR. Impostor comparisons have
// uniform FMRs; drawn so for a face of each built-in face table and one or
// two fingers, with the tables' own likelihood ratios, the share of
// impostors whose fused FMR is at most α stays at most α (the union bound
// allows k·α; an impostor's other comparisons almost always count against
// it).
func TestFuseNullRate(t *testing.T) {
	_, finger, err := DefaultCalibrations()
	if err != nil {
		t.Fatal(err)
	}
	flr, err := finger.LikelihoodRatio()
	if err != nil {
		t.Fatal(err)
	}
	faces, err := DefaultFaceCalibrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"dlib-resnet29/v1", "mobilefacenet-192/v1"} {
		c := faces[alg]
		lr, err := c.LikelihoodRatio()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []int{1, 2} {
			r := rand.New(rand.NewPCG(18, uint64(k)))
			const n = 400_000
			hits := map[float64]int{}
			for range n {
				u := r.Float64()
				ev := []Evidence{{u, lr.At(u)}}
				for range k {
					v := r.Float64()
					ev = append(ev, Evidence{v, flr.At(v)})
				}
				f := Fuse(ev)
				for _, a := range []float64{1e-2, 1e-3} {
					if f <= a {
						hits[a]++
					}
				}
			}
			for _, a := range []float64{1e-2, 1e-3} {
				rate := float64(hits[a]) / n
				t.Logf("%s face + %d fingers: impostor rate at fused FMR %g: %.3g (%.2f of it)", alg, k, a, rate, rate/a)
				if rate > a {
					t.Errorf("%s face + %d fingers: %.3g of impostors at fused FMR <= %g", alg, k, rate, a)
				}
			}
		}
	}
}
