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
			return PlotDET(p, "DET: synthetic scores", DETCurve{"dlib-like", errrate.DET(gen, imp), eer})
		}},
		{"det-compare.png", func(p string) error {
			return PlotDET(p, "DET: three systems",
				DETCurve{"dlib-like", errrate.DET(gen, imp), eer},
				DETCurve{"impostors -0.05", errrate.DET(gen, imp2), eer2},
				DETCurve{"separated", sep, 0},
				DETCurve{"no EER", errrate.DET(gen, imp2), math.NaN()})
		}},
		{"scores.png", func(p string) error {
			return PlotScores(p, "Scores: synthetic", gen, imp, thr)
		}},
		{"scores-nothreshold.png", func(p string) error {
			return PlotScores(p, "Scores, one of each", []float64{0.9}, []float64{0.5}, math.NaN())
		}},
		{"cmc.png", func(p string) error {
			return PlotCMC(p, "CMC: synthetic", CMCCurve{"run A", cmc}, CMCCurve{"run B", errrate.CMC(s[:100], 20)})
		}},
		{"cmc-short.png", func(p string) error {
			return PlotCMC(p, "CMC: perfect, 3 ranks", CMCCurve{"perfect", []float64{1, 1, 1}})
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
		{"unwritable", PlotCMC(filepath.Join(dir, "missing", "x.png"), "t", CMCCurve{"a", []float64{1}}), "missing"},
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
		if err := PlotDET(path, "bench", DETCurve{"a", p, eer}); err != nil {
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
