package matcher

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestLikelihoodRatioSynthetic: impostors uniform on [0, 1), genuines
// uniform on [0.5, 1.5): the ratio is 0 below 0.5 (floored at
// 1/GenuineCount), 1 on [0.5, 1) and above it every genuine beats every
// impostor (the first segment's slope, capped by the smallest FMR).
func TestLikelihoodRatioSynthetic(t *testing.T) {
	const n = 1000
	imp, gen := make([]float64, n), make([]float64, n)
	for i := range n {
		imp[i] = float64(i) / n
		gen[i] = 0.5 + float64(i)/n
	}
	c := NewCalibration(imp)
	c.Modality, c.Algorithm = "face", "test/v1"
	c.SetGenuine(gen)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Genuine) > genuinePoints+2 {
		t.Errorf("%d genuine points", len(c.Genuine))
	}
	lr, err := c.LikelihoodRatio()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ score, want, tol float64 }{
		{0.2, 1.0 / n, 1e-9},
		{0.7, 1, 0.05},
		// 0.5 of the genuines above the top impostor, whose FMR is 1/n.
		{2, 0.5 * n, 0.05 * n},
	} {
		if got := lr.At(c.FMRAt(tc.score)); math.Abs(got-tc.want) > tc.tol {
			t.Errorf("score %v: LR %v, want %v", tc.score, got, tc.want)
		}
	}
	var zero LikelihoodRatio
	if zero.At(0.01) != 1 || zero.Known() {
		t.Error("the zero ratio is not neutral")
	}
	c.Genuine = nil
	if _, err := c.LikelihoodRatio(); err != ErrNoGenuine {
		t.Errorf("no genuine points: %v", err)
	}
}

// TestLikelihoodRatioMonotone: on every built-in table the ratio never
// falls as the score rises, the property fusion's monotonicity rests on.
func TestLikelihoodRatioMonotone(t *testing.T) {
	files, _ := filepath.Glob("../engine/calibration/*.json")
	if len(files) == 0 {
		t.Fatal("no built-in calibrations")
	}
	for _, f := range files {
		c, err := ReadCalibration(f)
		if err != nil {
			t.Fatal(err)
		}
		lr, err := c.LikelihoodRatio()
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		lo, hi := c.Points[0].Score-0.1, c.Points[len(c.Points)-1].Score+0.1
		prev, crossed := 0.0, false
		for i := 0; i <= 5000; i++ {
			s := lo + (hi-lo)*float64(i)/5000
			v := lr.At(c.FMRAt(s))
			if v < prev {
				t.Errorf("%s: LR falls from %v to %v at score %v", filepath.Base(f), prev, v, s)
				break
			}
			crossed = crossed || (prev < 1 && v >= 1)
			prev = v
		}
		if !crossed {
			t.Errorf("%s: the ratio never crosses 1", filepath.Base(f))
		}
	}
}

func TestGenuineValidate(t *testing.T) {
	c := NewCalibration([]float64{0.1, 0.2, 0.3})
	c.Modality, c.Algorithm = "face", "test/v1"
	c.SetGenuine([]float64{0.3, 0.4, math.Inf(-1)})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Genuine[0].Accept != 2.0/3 {
		t.Errorf("a failed genuine comparison is accepted: %+v", c.Genuine)
	}
	bad := c
	bad.Genuine = []GenuinePoint{{0.4, 2.0 / 3}, {0.3, 1.0 / 3}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "genuine[1].score") {
		t.Errorf("descending genuine scores: %v", err)
	}
	bad.Genuine = []GenuinePoint{{0.3, 0.4}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "genuine[0].accept") {
		t.Errorf("an accept share that is no count: %v", err)
	}
}
