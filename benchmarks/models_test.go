package benchmarks

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// A genuine pair is in the band of its worse sample, and each band's FNMR
// is measured at the report's FMR-0.1% threshold.
func TestQualityBands(t *testing.T) {
	q := func(eye, yaw float64, det string) *templates.FaceQuality {
		return &templates.FaceQuality{InterEyePixels: eye, Yaw: yaw, Detector: det}
	}
	res := VerifyResult{
		Quality: []*templates.FaceQuality{
			0: q(100, 2, "hog"),
			1: q(95, -5, "hog"),
			2: q(35, 30, "hog"),
			3: q(70, -12, "cnn"),
			4: nil, // failed to enrol
		},
		Genuine:      []float64{0.9, 0.2, 0.8, math.Inf(-1)},
		GenuinePairs: []SamplePair{{0, 1}, {1, 2}, {0, 3}, {3, 4}},
	}
	r := Report{OperatingPoints: nil}
	if QualityBands(r, res) != nil {
		t.Error("quality bands without a measurable FMR")
	}
	// 0.01 and 0.001 measurable: the bands use 0.001's threshold.
	r.OperatingPoints = opsFor(map[float64]float64{0.01: 0.3, 0.001: 0.5})
	qr := QualityBands(r, res)
	if qr == nil || qr.FMRTarget != 0.001 || qr.Threshold != 0.5 || qr.NoTemplate != 1 {
		t.Fatalf("quality report %+v", qr)
	}
	want := map[string][2]any{ // band -> genuine pairs, FNMR
		"inter-eye distance (px)/>=90":  {1, 0.0},
		"inter-eye distance (px)/<40":   {1, 1.0}, // pair 1-2: 35 px, score 0.2
		"inter-eye distance (px)/60-90": {1, 0.0}, // pair 0-3: 70 px
		"inter-eye distance (px)/40-60": {0, nil},
		"abs(yaw) (degrees)/<10":        {1, 0.0},
		"abs(yaw) (degrees)/>=25":       {1, 1.0},
		"abs(yaw) (degrees)/10-25":      {1, 0.0},
		"detector/hog":                  {2, 0.5},
		"detector/" + fallbackBand:      {1, 0.0},
	}
	if len(qr.Bands) != len(want) {
		t.Errorf("%d bands, want %d", len(qr.Bands), len(want))
	}
	for _, b := range qr.Bands {
		w, ok := want[b.Dimension+"/"+b.Band]
		if !ok {
			t.Errorf("unexpected band %s/%s", b.Dimension, b.Band)
			continue
		}
		if b.GenuineCount != w[0].(int) {
			t.Errorf("%s/%s: %d pairs, want %d", b.Dimension, b.Band, b.GenuineCount, w[0])
		}
		switch {
		case w[1] == nil && b.FNMR != nil:
			t.Errorf("%s/%s: FNMR %v without pairs", b.Dimension, b.Band, *b.FNMR)
		case w[1] != nil && (b.FNMR == nil || *b.FNMR != w[1].(float64)):
			t.Errorf("%s/%s: FNMR %v, want %v", b.Dimension, b.Band, b.FNMR, w[1])
		}
	}
	// Only 1% measurable: it is used, and the text says so.
	r.OperatingPoints = opsFor(map[float64]float64{0.01: 0.3})
	qr = QualityBands(r, res)
	if qr == nil || qr.FMRTarget != 0.01 || qr.Threshold != 0.3 {
		t.Fatalf("quality report at 1%%: %+v", qr)
	}
	var b bytes.Buffer
	qr.markdown(func(f string, a ...any) { b.WriteString(sprintf(f, a...)) })
	for _, s := range []string{"## Accuracy by quality band", "FMR 0.1% is not measurable on this data; the lowest measurable, 1%, is used", "| abs(yaw) (degrees) | >=25 | 1 | 100.0% |", "| (a sample failed to enrol) | none | 1 | 100% |"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("quality markdown has no %q:\n%s", s, b.String())
		}
	}
}

// Several models: one report per model in its folder, and one side-by-side
// report, models.json and a DET plot with a curve per model.
func TestModelComparisonCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("extracts 40 photos twice")
	}
	dir := t.TempDir()
	out := bmbench(t, ExitOK, "verify", "--data", "../testdata/faces/bbt", "--models", modelsDir(), "--quiet",
		"--face-model", face.DlibModel+","+face.DefaultModel, "--out", dir)
	for _, m := range []string{face.DlibModel, face.DefaultModel} {
		var r Report
		readJSON(t, filepath.Join(dir, m, "report.json"), &r)
		if r.Model != m || r.Detector != "auto" || r.GenuineCount != 80 || r.ImpostorCount != 700 || r.QualityBands == nil {
			t.Errorf("%s: model %q detector %q, %d/%d pairs, quality %v", m, r.Model, r.Detector, r.GenuineCount, r.ImpostorCount, r.QualityBands)
		}
		if r.ExtractP50MS <= 0 || r.ExtractP95MS < r.ExtractP50MS {
			t.Errorf("%s: extraction p50 %v p95 %v", m, r.ExtractP50MS, r.ExtractP95MS)
		}
		n := 0
		for _, b := range r.QualityBands.Bands {
			if b.Dimension == "detector" {
				n += b.GenuineCount
			}
		}
		if n+r.QualityBands.NoTemplate != 80 {
			t.Errorf("%s: detector bands hold %d of 80 genuine pairs", m, n)
		}
		// The default threshold is the engine's for the algorithm, or none.
		if thr, ok := engine.DefaultThresholds[r.Algorithm]; ok != (r.AtDefaultThreshold != nil) || ok && r.AtDefaultThreshold.Threshold != float64(thr) {
			t.Errorf("%s: at the default threshold %+v; the engine's: %v %v", m, r.AtDefaultThreshold, thr, ok)
		}
		checkPNG(t, filepath.Join(dir, m, "det.png"))
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| | [dlib](dlib/report.md) | [mobilefacenet-192](mobilefacenet-192/report.md) |", "| FNMR at FMR 0.05% |", "| extraction p50 / p95 |",
		"### mobilefacenet-192: accuracy by quality band", "![DET by model](det.png)"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md has no %q:\n%s", s, md)
		}
	}
	if !strings.Contains(out, "by face model") {
		t.Errorf("stdout:\n%s", out)
	}
	var mc ModelComparison
	readJSON(t, filepath.Join(dir, "models.json"), &mc)
	if len(mc.Reports) != 2 || mc.Reports[0].Model != face.DlibModel || mc.Reports[1].QualityBands == nil {
		t.Errorf("models.json: %d reports", len(mc.Reports))
	}
	checkPNG(t, filepath.Join(dir, "det.png"))
}

// opsFor makes the report's operating points: measurable at the targets
// given (with those thresholds), not measurable at the others.
func opsFor(measurable map[float64]float64) []errrate.OperatingPoint {
	var ops []errrate.OperatingPoint
	for _, fmr := range ReportFMRs {
		thr, ok := measurable[fmr]
		ops = append(ops, errrate.OperatingPoint{Target: fmr, Measurable: ok, Threshold: thr})
	}
	return ops
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
