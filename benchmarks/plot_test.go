package benchmarks

import (
	"flag"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"gonum.org/v1/plot"
)

var plotDir = flag.String("plots", "", "also write the test plots to this directory, to look at them")

// outDir is where a test's plots go: -plots or a temporary directory.
func outDir(t testing.TB) string {
	if *plotDir != "" {
		if err := os.MkdirAll(*plotDir, 0o755); err != nil {
			t.Fatal(err)
		}
		return *plotDir
	}
	return t.TempDir()
}

// checkPNG decodes path and checks its size.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != plotWidth || b.Dy() != plotHeight {
		t.Errorf("%s is %v, want %dx%d", path, b, plotWidth, plotHeight)
	}
}

func TestPlots(t *testing.T) {
	dir := outDir(t)
	r := rand.New(rand.NewPCG(9, 10))
	gen, imp := synthetic(r, 2000, 200000)
	gen[0], imp[0] = math.Inf(-1), math.NaN() // failures are counted, not drawn
	eer, thr, _ := errrate.EER(gen, imp)
	// A better system: the same genuine scores against impostors further away.
	imp2 := make([]float64, len(imp))
	for i, v := range imp {
		imp2[i] = v - 0.05
	}
	eer2, _, _ := errrate.EER(gen, imp2)
	// A perfect one: EER 0, FNMR and FMR reach 0 (drawn at the edges).
	sep := errrate.DET([]float64{0.9, 0.95, 0.97}, []float64{0.1, 0.2, 0.3, 0.4})
	ng, ni := len(gen), len(imp)

	var s []errrate.SearchOutcome
	for i := range 300 {
		rank := 1
		if r.IntN(10) == 0 {
			rank = r.IntN(25) // 0: not returned
		}
		s = append(s, errrate.SearchOutcome{Mated: true, MateRank: rank, MateScore: 0.95, TopNonMateScore: 0.8})
		_ = i
	}
	cmc := errrate.CMC(s, 20)

	for _, c := range []struct {
		name string
		plot func(path string) error
	}{
		{"det.png", func(p string) error {
			return PlotDET(p, "DET: synthetic scores", DETCurve{"dlib-like", errrate.DET(gen, imp), eer, ng, ni})
		}},
		{"det-compare.png", func(p string) error {
			return PlotDET(p, "DET: three systems",
				DETCurve{"dlib-like", errrate.DET(gen, imp), eer, ng, ni},
				DETCurve{"impostors -0.05", errrate.DET(gen, imp2), eer2, ng, ni},
				DETCurve{"separated", sep, 0, 3, 4},
				DETCurve{"no EER", errrate.DET(gen, imp2), math.NaN(), ng, ni})
		}},
		{"fnir.png", func(p string) error {
			return PlotFNIR(p, "FNIR against FPIR: synthetic", DETCurve{"run", errrate.DET(gen[:300], imp[:300]), math.NaN(), 300, 300})
		}},
		{"scores.png", func(p string) error {
			return PlotScores(p, "Scores: synthetic", gen, imp, thr)
		}},
		{"scores-finger.png", func(p string) error {
			g, i := fingerLike(r)
			return PlotScores(p, "Scores: finger-like", g, i, 0.045)
		}},
		{"scores-nothreshold.png", func(p string) error {
			return PlotScores(p, "Scores, one of each", []float64{0.9}, []float64{0.5}, math.NaN())
		}},
		{"cmc.png", func(p string) error {
			return PlotCMC(p, "CMC: synthetic", CMCCurve{"run A", cmc, len(s)}, CMCCurve{"run B", errrate.CMC(s[:100], 20), 100})
		}},
		{"cmc-short.png", func(p string) error {
			return PlotCMC(p, "CMC: perfect, 3 ranks", CMCCurve{"perfect", []float64{1, 1, 1}, 3})
		}},
	} {
		path := filepath.Join(dir, c.name)
		if err := c.plot(path); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		checkPNG(t, path)
	}
}

func TestPlotErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.png")
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"no DET curves", PlotDET(p, "t"), "no curves"},
		{"empty DET curve", PlotDET(p, "t", DETCurve{Label: "empty"}), `"empty" has no points`},
		{"no scores", PlotScores(p, "t", []float64{math.Inf(-1)}, nil, 0.5), "no finite scores"},
		{"no CMC curves", PlotCMC(p, "t"), "no curves"},
		{"empty CMC curve", PlotCMC(p, "t", CMCCurve{Label: "e"}), `"e" has no ranks`},
		{"NaN CMC", PlotCMC(p, "t", CMCCurve{Label: "n", Rates: errrate.CMC(nil, 3)}), "rank 1 is NaN"},
		{"unwritable", PlotCMC(filepath.Join(dir, "missing", "x.png"), "t", CMCCurve{"a", []float64{1}, 1}), "missing"},
		{"no counts", PlotDET(p, "t", DETCurve{Label: "c", Points: errrate.DET([]float64{1}, []float64{0})}), `"c": no comparison counts`},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, c.err, c.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	var got []string
	for _, tk := range logTicks(1e-4) {
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	if want := "0.01% 0.1% 1% 10% 100%"; strings.Join(got, " ") != want {
		t.Errorf("logTicks(1e-4) labels %q, want %q", got, want)
	}
	for _, c := range []struct{ v, want float64 }{{3e-5, 1e-5}, {1e-3, 1e-3}, {0.5, 0.1}, {1, 0.1}, {0.02, 0.01}} {
		if got := decadeBelow(c.v); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("decadeBelow(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

// A million impostor scores, as a real evaluation produces.
func BenchmarkPlotDET(b *testing.B) {
	gen, imp := synthetic(rand.New(rand.NewPCG(1, 2)), 10000, 1000000)
	p := errrate.DET(gen, imp)
	eer, _, _ := errrate.EER(gen, imp)
	path := filepath.Join(b.TempDir(), "det.png")
	for b.Loop() {
		if err := PlotDET(path, "bench", DETCurve{"a", p, eer, len(gen), len(imp)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlotScores(b *testing.B) {
	gen, imp := synthetic(rand.New(rand.NewPCG(1, 2)), 10000, 1000000)
	path := filepath.Join(b.TempDir(), "scores.png")
	for b.Loop() {
		if err := PlotScores(path, "bench", gen, imp, 0.93); err != nil {
			b.Fatal(err)
		}
	}
}

// fingerLike are scores shaped as the minutiae matcher's: impostors
// crowded just above zero, genuine ones spread over two decades.
func fingerLike(r *rand.Rand) (genuine, impostor []float64) {
	for range 200 {
		genuine = append(genuine, 0.02*math.Exp(2.5*r.Float64()))
	}
	for range 2000 {
		impostor = append(impostor, 0.01+0.004*math.Abs(r.NormFloat64()))
	}
	return genuine, impostor
}

// TestDETStopsAtRuleOfThree: a DET curve is drawn only where both its
// rates can be told from zero, FMR >= 3/impostors and FNMR >= 3/genuine,
// not on to the axes' edges.
func TestDETStopsAtRuleOfThree(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	gen, imp := synthetic(r, 200, 5000)
	c := DETCurve{Label: "run", Points: errrate.DET(gen, imp), EER: math.NaN(), Genuine: len(gen), Impostor: len(imp)}
	fmrMin, fnmrMin := 3/float64(len(imp)), 3/float64(len(gen))
	below := 0
	for _, q := range c.Points {
		if q.FMR < fmrMin || q.FNMR < fnmrMin {
			below++
		}
	}
	if below == 0 {
		t.Fatal("the test's curve has no point below 3/N to leave out")
	}
	pts := c.drawn()
	if len(pts) == 0 {
		t.Fatal("nothing drawn")
	}
	lowFMR, lowFNMR := 1.0, 1.0
	for _, q := range pts {
		if q.FMR < fmrMin*(1-1e-9) || q.FNMR < fnmrMin*(1-1e-9) {
			t.Errorf("point FMR %g, FNMR %g drawn: below 3/%d = %g or 3/%d = %g", q.FMR, q.FNMR, len(imp), fmrMin, len(gen), fnmrMin)
		}
		lowFMR, lowFNMR = math.Min(lowFMR, q.FMR), math.Min(lowFNMR, q.FNMR)
	}
	// It goes as far as the data measures: to within a few steps of 3/N.
	if lowFMR > 2*fmrMin || lowFNMR > 2*fnmrMin {
		t.Errorf("curve stops at FMR %g, FNMR %g: short of 3/N (%g, %g)", lowFMR, lowFNMR, fmrMin, fnmrMin)
	}
	if got := MeasurableDET(errrate.DET([]float64{0.9}, []float64{0.1}), 1, 1); len(got) != 0 {
		t.Errorf("one comparison each measures nothing, got %v", got)
	}
}

// TestScoresLogAxis: fingerprint-like scores (all positive, impostors
// crowded near zero, two decades in all) are drawn on a log score axis
// labelled with scores; face scores (cosines, some negative) on a linear
// one.
func TestScoresLogAxis(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	g, i := fingerLike(r)
	p, err := scoresPlot("t", comparisons, g, i, 0.045)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.X.Label.Text, "log scale") {
		t.Errorf("finger-like scores: x axis %q, want a log scale", p.X.Label.Text)
	}
	labels := map[string]float64{}
	for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		if tk.Label != "" {
			labels[tk.Label] = tk.Value
		}
	}
	for l, want := range map[string]float64{"0.01": -2, "0.1": -1, "0.05": math.Log10(0.05)} {
		if v, ok := labels[l]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("tick %s at %v (present %v), want at log10 = %v; labels %v", l, v, ok, want, labels)
		}
	}
	if p.X.Min > math.Log10(0.0101) || p.X.Max < math.Log10(0.2) {
		t.Errorf("x axis %v..%v does not hold log10 of the scores", p.X.Min, p.X.Max)
	}
	gen, imp := synthetic(r, 100, 1000)
	p, err = scoresPlot("t", comparisons, gen, imp, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.X.Label.Text, "log") {
		t.Errorf("face-like scores: x axis %q, want linear", p.X.Label.Text)
	}
}

// TestLegendsInside: a right-aligned legend keeps its symbols off the
// image's right edge.
func TestLegendsInside(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gen, imp := synthetic(r, 100, 1000)
	det, err := tradeoffPlot(detAxes, "t", []DETCurve{{Label: "a run with a long name", Points: errrate.DET(gen, imp), EER: math.NaN(), Genuine: 100, Impostor: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	scores, err := scoresPlot("t", comparisons, gen, imp, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*plot.Plot{"DET": det, "scores": scores} {
		img := render(p).Image()
		b := img.Bounds()
		// The legend band, above the axes: the top eighth.
		for y := b.Min.Y; y < b.Min.Y+plotHeight/8; y++ {
			for x := b.Max.X - 3; x < b.Max.X; x++ {
				if r, g, bl, _ := img.At(x, y).RGBA(); r != 0xffff || g != 0xffff || bl != 0xffff {
					t.Fatalf("%s: pixel (%d, %d) at the right edge is drawn on: the legend is cut off", name, x, y)
				}
			}
		}
	}
}
