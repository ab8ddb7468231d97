package matcher

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// randomView is a view of n minutiae spread over a 300×400 image at
// least 8 px apart, like a real impression's.
func randomView(r *rand.Rand, n int) minutiae.View {
	v := minutiae.View{Width: 300, Height: 400, DPI: 500}
	for len(v.Minutiae) < n {
		m := minutiae.Minutia{X: 30 + r.IntN(240), Y: 30 + r.IntN(340), Angle: r.Float64() * 2 * math.Pi, Kind: minutiae.Kind(1 + r.IntN(2))}
		ok := true
		for _, o := range v.Minutiae {
			if dx, dy := m.X-o.X, m.Y-o.Y; dx*dx+dy*dy < 64 {
				ok = false
			}
		}
		if ok {
			v.Minutiae = append(v.Minutiae, m)
		}
	}
	return v
}

// distort is v rotated by rot radians (counter-clockwise on screen) about
// the image centre, shifted by (dx, dy), with every minutia moved by up to
// jitter px and turned by up to jitterAngle, and a fraction drop of the
// minutiae lost: a second impression of the same finger, roughly.
func distort(r *rand.Rand, v minutiae.View, rot float64, dx, dy int, jitter int, jitterAngle, drop float64) minutiae.View {
	out := v
	out.Minutiae = nil
	cx, cy := float64(v.Width)/2, float64(v.Height)/2
	sin, cos := math.Sincos(rot)
	for _, m := range v.Minutiae {
		if r.Float64() < drop {
			continue
		}
		// Rotate in a y-up frame, where the records' angles are ordinary
		// counter-clockwise angles.
		x, y := float64(m.X)-cx, cy-float64(m.Y)
		x, y = x*cos-y*sin, x*sin+y*cos
		j := func() int {
			if jitter == 0 {
				return 0
			}
			return r.IntN(2*jitter+1) - jitter
		}
		m.X = int(math.Round(cx+x)) + dx + j()
		m.Y = int(math.Round(cy-y)) + dy + j()
		m.Angle = minutiae.NormAngle(m.Angle + rot + (2*r.Float64()-1)*jitterAngle)
		out.Minutiae = append(out.Minutiae, m)
	}
	return out
}

func mustPrepare(t testing.TB, v minutiae.View) *FingerTemplate {
	t.Helper()
	ft, err := PrepareFinger(v)
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

func TestFingerScoreTransforms(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var m FingerMatcher
	for trial := range 20 {
		v := randomView(r, 30+r.IntN(20))
		a := mustPrepare(t, v)
		for _, c := range []struct {
			name             string
			rot              float64
			dx, dy, jitter   int
			jitterAngle, drp float64
			min              float64
		}{
			{"identity", 0, 0, 0, 0, 0, 0, 0.9},
			{"rotated 30°, shifted", math.Pi / 6, 25, -40, 0, 0, 0, 0.6},
			{"rotated -80°", -80 * math.Pi / 180, 0, 0, 0, 0, 0, 0.6},
			{"rotated 60°", math.Pi / 3, 10, 10, 0, 0, 0, 0.6},
			// Beyond δθ = 90° MCC compares no cylinders at all: a finger
			// is never upside down on a scanner, and the gate halves the work.
			{"rotated 180°", math.Pi, 10, 10, 0, 0, 0, -1},
			{"rotated 15°, jittered, 20% lost", math.Pi / 12, -20, 15, 3, 0.15, 0.2, 0.3},
		} {
			b := mustPrepare(t, distort(r, v, c.rot, c.dx, c.dy, c.jitter, c.jitterAngle, c.drp))
			s := m.Score(a, b)
			if c.min < 0 && s > 0.05 {
				t.Errorf("trial %d, %s: score %.3f, want about 0", trial, c.name, s)
			}
			if s < c.min {
				t.Errorf("trial %d, %s: score %.3f, want >= %.2f", trial, c.name, s, c.min)
			}
		}
		other := mustPrepare(t, randomView(r, 30+r.IntN(20)))
		if s := m.Score(a, other); s > 0.2 {
			t.Errorf("trial %d: unrelated views score %.3f, want <= 0.2", trial, s)
		}
	}
}

// TestFingerScoreDPI: the same finger scanned at 1000 dpi (coordinates
// doubled) matches its 500 dpi view as well as the view itself does.
func TestFingerScoreDPI(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	v := randomView(r, 40)
	hi := v
	hi.DPI, hi.Width, hi.Height = 1000, 600, 800
	hi.Minutiae = nil
	for _, m := range v.Minutiae {
		m.X, m.Y = 2*m.X, 2*m.Y
		hi.Minutiae = append(hi.Minutiae, m)
	}
	var m FingerMatcher
	a, b := mustPrepare(t, v), mustPrepare(t, hi)
	if s, self := m.Score(a, b), m.Score(a, a); math.Abs(s-self) > 0.02 {
		t.Errorf("500 vs 1000 dpi: %.3f, self: %.3f", s, self)
	}
}

func TestFingerScoreSymmetric(t *testing.T) {
	views := subsetViews(t, "fvc2002_db1_b")
	var m FingerMatcher
	ts := make([]*FingerTemplate, len(views))
	for i, v := range views {
		ts[i] = mustPrepare(t, v)
	}
	worst := 0.0
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			worst = max(worst, math.Abs(m.Score(ts[i], ts[j])-m.Score(ts[j], ts[i])))
		}
	}
	if worst > 0.05 {
		t.Errorf("|S(a,b) - S(b,a)| reaches %.3f", worst)
	}
}

func TestFingerScoreDegenerate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	full := mustPrepare(t, randomView(r, 40))
	one := minutiae.View{DPI: 500, Minutiae: []minutiae.Minutia{{X: 10, Y: 10, Angle: 1}}}
	two := minutiae.View{DPI: 500, Minutiae: []minutiae.Minutia{{X: 10, Y: 10, Angle: 1}, {X: 30, Y: 10, Angle: 2}}}
	same := minutiae.View{DPI: 500, Minutiae: []minutiae.Minutia{{X: 10, Y: 10, Angle: 1}, {X: 10, Y: 10, Angle: 1}, {X: 10, Y: 10, Angle: 1}}}
	var m FingerMatcher
	for name, v := range map[string]minutiae.View{"empty": {}, "one": one, "two": two, "coincident": same} {
		ft := mustPrepare(t, v)
		for _, other := range []*FingerTemplate{full, ft} {
			if s := m.Score(ft, other); s != 0 {
				t.Errorf("%s: score %v, want 0", name, s)
			}
			if s := m.Score(other, ft); s != 0 {
				t.Errorf("%s: reversed score %v, want 0", name, s)
			}
		}
	}
	if s := m.Score(nil, full); s != 0 {
		t.Errorf("nil probe: %v", s)
	}
	if _, err := PrepareFinger(minutiae.View{Minutiae: make([]minutiae.Minutia, 256)}); err == nil {
		t.Error("256 minutiae: no error")
	}
	if _, err := PrepareFinger(minutiae.View{Minutiae: []minutiae.Minutia{{Angle: math.NaN()}}}); err == nil {
		t.Error("NaN angle: no error")
	}
}

func TestFingerTemplateMarshal(t *testing.T) {
	var m FingerMatcher
	views := subsetViews(t, "fvc2002_db3_b")
	a := mustPrepare(t, views[0])
	for _, v := range views[1:4] {
		b := mustPrepare(t, v)
		data, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back FingerTemplate
		if err := back.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*b, back) {
			t.Fatal("round trip changed the template")
		}
		if s, s2 := m.Score(a, b), m.Score(a, &back); s != s2 {
			t.Errorf("score %v before, %v after the round trip", s, s2)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(data, again) {
			t.Error("re-encoding differs")
		}
	}
	good, _ := a.MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"words":     append([]byte{good[0], 5}, good[2:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(bytes.Clone(good), 0),
		"count":     append([]byte{good[0], good[1], 0xff, 0xff}, good[4:]...),
		"quality": func() []byte {
			b := bytes.Clone(good)
			b[fingerHeader+10] = 101
			return b
		}(),
		"stray bit": func() []byte {
			b := bytes.Clone(good)
			// The first cylinder's first value word: set every bit, most
			// of them outside its mask.
			for i := range 8 {
				b[fingerHeader+11+i] = 0xff
			}
			return b
		}(),
	} {
		var ft FingerTemplate
		if err := ft.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzUnmarshalFingerTemplate(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 3, 20} {
		data, err := mustPrepare(f, randomView(r, n)).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if len(data) > 10 {
			f.Add(data[:len(data)/2])
		}
	}
	probe := mustPrepare(f, randomView(r, 30))
	var m FingerMatcher
	f.Fuzz(func(t *testing.T, data []byte) {
		var ft FingerTemplate
		if err := ft.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := ft.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted bytes do not re-encode to themselves (%v)", err)
		}
		if s := m.Score(probe, &ft); s < 0 || s > 1 || math.IsNaN(s) {
			t.Fatalf("score %v", s)
		}
	})
}

// subsetViews reads the committed records of one set, in file order.
func subsetViews(t testing.TB, set string) []minutiae.View {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata/fingers", set, "*.iso"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no records for %s", set)
	}
	var out []minutiae.View
	for _, f := range files {
		v, err := readISOView(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestFingerSubset: on the committed records (4 fingers × 8 impressions
// of FVC2002 DB1_B and DB3_B), genuine pairs outscore impostor pairs.
func TestFingerSubset(t *testing.T) {
	var m FingerMatcher
	for _, c := range []struct {
		set    string
		maxEER float64
	}{
		{"fvc2002_db1_b", 0.05},
		{"fvc2002_db3_b", 0.05},
	} {
		s := loadFVCSet(t, filepath.Join("testdata/fingers", c.set), c.set)
		gen, imp := protocolScores(&m, s, true)
		if len(gen) != 4*28 || len(imp) != 6*64 {
			t.Fatalf("%s: %d genuine, %d impostor pairs", c.set, len(gen), len(imp))
		}
		e, _, ok := errrate.EER(gen, imp)
		mg, mi := mean(gen), mean(imp)
		t.Logf("%s: EER %.2f%%, mean genuine %.3f, mean impostor %.3f", c.set, 100*e, mg, mi)
		if !ok || e > c.maxEER {
			t.Errorf("%s: EER %.2f%%, want <= %.0f%%", c.set, 100*e, 100*c.maxEER)
		}
		if mg < 3*mi {
			t.Errorf("%s: mean genuine %.3f not well above mean impostor %.3f", c.set, mg, mi)
		}
	}
}

func mean(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// TestFingerQualityNeutral: qualities weigh nothing when absent or all
// equal, so records without per-minutia
// qualities score as before.
func TestFingerQualityNeutral(t *testing.T) {
	var m FingerMatcher
	views := subsetViews(t, "fvc2002_db1_b")
	withQ := func(v minutiae.View, q uint8) minutiae.View {
		v.Minutiae = slices.Clone(v.Minutiae)
		for i := range v.Minutiae {
			v.Minutiae[i].Quality = q
		}
		return v
	}
	for _, v := range views[1:5] {
		a0, b0 := mustPrepare(t, withQ(views[0], 0)), mustPrepare(t, withQ(v, 0))
		a1, b1 := mustPrepare(t, withQ(views[0], 60)), mustPrepare(t, withQ(v, 60))
		if s0, s1 := m.Score(a0, b0), m.Score(a1, b1); s0 != s1 {
			t.Errorf("score %v without qualities, %v with equal ones", s0, s1)
		}
		if s, s2 := m.Score(a0, b0), m.Score(b0, a0); s != s2 {
			t.Errorf("score %v one way, %v the other", s, s2)
		}
	}
}
