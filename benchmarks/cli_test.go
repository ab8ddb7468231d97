package benchmarks

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates/face"
)

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return "../models"
}

// bmbench runs the command line in-process and returns its output.
func bmbench(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(args, &out, &errb); code != want {
		t.Fatalf("bmbench %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

// TestCommandLine runs bmbench verify, identify, calibrate and compare on
// the cast photos with the real face extractor, and checks the files a
// user gets and the names scripts rely on.
func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("extracts 40 photos")
	}
	dir := t.TempDir()
	data := "../testdata/faces/bbt"
	common := []string{"--modality", "face", "--data", data, "--layout", "identity", "--models", modelsDir(), "--quiet"}

	out := bmbench(t, ExitOK, append([]string{"verify", "--protocol", "all", "--out", filepath.Join(dir, "v")}, common...)...)
	if !strings.Contains(out, "face verify: bbt") || !strings.Contains(out, "80 genuine, 700 impostor comparisons") {
		t.Errorf("verify summary:\n%s", out)
	}
	var v map[string]any
	readJSON(t, filepath.Join(dir, "v", "report.json"), &v)
	for _, k := range []string{"eer", "eer_threshold", "genuine_count", "impostor_count", "fte", "fnmr_at_fmr", "dataset", "version", "protocol", "date"} {
		if _, ok := v[k]; !ok {
			t.Errorf("report.json has no %q", k)
		}
	}
	if v["genuine_count"] != 80.0 || v["impostor_count"] != 700.0 || v["fte"] != 0.0 {
		t.Errorf("counts %v %v fte %v, want 80 700 0", v["genuine_count"], v["impostor_count"], v["fte"])
	}
	if eer, ok := v["eer"].(float64); !ok || eer < 0 || eer > 0.05 {
		t.Errorf("EER %v on the cast photos: want a fraction under 0.05 (measured 0 to 1%%)", v["eer"])
	}
	at := v["fnmr_at_fmr"].(map[string]any)
	// 700 impostor comparisons measure FMR down to 3/700 = 0.43%: 1% is
	// measurable, 0.1% and 0.01% are not and must be null.
	if _, ok := at["0.01"].(float64); !ok || at["0.001"] != nil || at["0.0001"] != nil {
		t.Errorf("fnmr_at_fmr %v: want a number at 0.01 and null at 0.001 and 0.0001", at)
	}
	for _, f := range []string{"det.png", "scores.png"} {
		checkPNG(t, filepath.Join(dir, "v", f))
	}
	md, _ := os.ReadFile(filepath.Join(dir, "v", "report.md"))
	if !bytes.Contains(md, []byte("not measurable: 700 impostor comparisons")) || !bytes.Contains(md, []byte("![DET curve](det.png)")) {
		t.Errorf("report.md:\n%s", md)
	}

	out = bmbench(t, ExitOK, append([]string{"identify", "--out", filepath.Join(dir, "i")}, common...)...)
	var id map[string]any
	readJSON(t, filepath.Join(dir, "i", "report.json"), &id)
	if r1, ok := id["rank1"].(float64); !ok || r1 < 0.9 {
		t.Errorf("rank1 %v: want at least 0.9 on the cast (measured 1.0)\n%s", id["rank1"], out)
	}
	if f, ok := id["fnir_at_fpir"].(map[string]any); !ok || len(f) != len(ReportFPIRs) {
		t.Errorf("fnir_at_fpir %v", id["fnir_at_fpir"])
	}
	if cmc, ok := id["cmc"].([]any); !ok || len(cmc) != 20 || cmc[19] != 1.0 {
		t.Errorf("cmc %v: want 20 ranks reaching 1 (8 identities)", id["cmc"])
	}
	checkPNG(t, filepath.Join(dir, "i", "cmc.png"))

	if alg, _ := v["algorithm"].(string); !strings.HasPrefix(alg, face.DefaultModel+"/") || v["model"] != face.DefaultModel {
		t.Errorf("verify ran algorithm %v, model %v: want the default model %s", v["algorithm"], v["model"], face.DefaultModel)
	}

	// dlib's network, by name: its calibration and thresholds.
	out = bmbench(t, ExitOK, append([]string{"calibrate", "--face-model", face.DlibModel, "--out", filepath.Join(dir, "c")}, common...)...)
	cal, err := matcher.ReadCalibration(filepath.Join(dir, "c", "calibration.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cal.ImpostorCount != 700 || cal.Modality != "face" || cal.Algorithm != "dlib-resnet29/v1" {
		t.Errorf("calibration: %d impostors, %s %s", cal.ImpostorCount, cal.Modality, cal.Algorithm)
	}
	if _, err := cal.LikelihoodRatio(); err != nil || cal.GenuineCount == 0 {
		t.Errorf("calibration without its genuine scores (%d): %v", cal.GenuineCount, err)
	}
	if thr, err := cal.ThresholdForFMR(0.01); err != nil || thr < 0.8 || thr > 1 {
		t.Errorf("threshold for FMR 1%%: %v %v", thr, err)
	}
	if _, err := cal.ThresholdForFMR(0.001); err == nil {
		t.Error("a target FMR of 0.1% accepted from 700 impostor comparisons")
	}

	out = bmbench(t, ExitOK, "compare", "--out", filepath.Join(dir, "cmp"), filepath.Join(dir, "v", "report.json"), filepath.Join(dir, "i", "report.json"))
	if !strings.Contains(out, "| bbt | face |") {
		t.Errorf("compare table:\n%s", out)
	}
	checkPNG(t, filepath.Join(dir, "cmp", "det.png"))

	// Bad usage names the problem and exits 2.
	for _, args := range [][]string{
		{"verify", "--protocol", "some", "--data", data},
		{"verify", "--layout", "folders", "--data", data},
		{"verify", "--modality", "iris", "--data", data},
		{"verify", "--detector", "haar", "--data", data, "--models", modelsDir()},
		{"calibrate", "--face-model", "dlib,mobilefacenet-192", "--data", data, "--models", modelsDir()},
		{"verify"},
		{"compare"},
	} {
		if out := bmbench(t, ExitUsage, args...); !strings.Contains(out, "bmbench:") {
			t.Errorf("%v: %s", args, out)
		}
	}
	if out := bmbench(t, ExitFailure, "compare", filepath.Join(dir, "v", "det.png")); !strings.Contains(out, "not a bmbench report") {
		t.Errorf("compare of a PNG: %s", out)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
