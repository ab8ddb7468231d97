package benchmarks

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

// -data points the labeled-photo evaluation at a larger set, e.g.
//
//	go test ./benchmarks -run TestLabeledPhotos -v -data ../../shared/testdata/faces
var dataDir = flag.String("data", "../testdata/faces", "face data set root holding idols/ and bbt/ (<identity>/<sample> layout)")

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return "../models"
}

// TestLabeledPhotos enrols one photo per identity of the labeled photos and
// searches with the others, reporting the rank-1 identification rate and the
// genuine/impostor score separation.
func TestLabeledPhotos(t *testing.T) {
	ex, err := templates.NewFaceExtractor(templates.FaceConfig{ModelsDir: modelsDir()})
	if err != nil {
		t.Fatalf("loading face models (run `make models`): %v", err)
	}
	defer ex.Close()
	samples, err := ScanIdentityLayout(filepath.Join(*dataDir, "idols"), filepath.Join(*dataDir, "bbt"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := EvaluateIdentification(ex, samples, IdentifyOptions{PadCrops: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("data %s: %d samples, %d identities enrolled, %d probes", *dataDir, len(samples), res.Identities, res.Probes)
	t.Logf("rank-1: %d/%d = %.3f (failures to acquire count as misses)", res.Rank1, res.Probes, res.Rank1Rate())
	t.Logf("genuine  scores: n=%d mean=%.3f sd=%.3f min=%.3f max=%.3f", res.Genuine.N, res.Genuine.Mean, res.Genuine.StdDev, res.Genuine.Min, res.Genuine.Max)
	t.Logf("impostor scores: n=%d mean=%.3f sd=%.3f min=%.3f max=%.3f", res.Impostor.N, res.Impostor.Mean, res.Impostor.StdDev, res.Impostor.Min, res.Impostor.Max)
	t.Logf("d' = %.2f", res.DPrime)
	for _, thr := range []float64{0.90, 0.92, 0.93, 0.94, 0.95, 0.96} {
		fmr, fnmr := rates(res.ImpostorScores(), res.GenuineScores(), thr)
		t.Logf("threshold %.2f: FMR %.4f (of %d) FNMR %.4f (of %d)", thr, fmr, res.Impostor.N, fnmr, res.Genuine.N)
	}
	if len(res.FailedToEnrol) > 0 {
		t.Logf("failed to enrol (%d): %s", len(res.FailedToEnrol), strings.Join(res.FailedToEnrol, "; "))
	}
	if len(res.FailedToAcquire) > 0 {
		t.Logf("failed to acquire (%d): %s", len(res.FailedToAcquire), strings.Join(res.FailedToAcquire, "; "))
	}
	if len(res.Misses) > 0 {
		t.Logf("misses: %s", strings.Join(res.Misses, "; "))
	}
	if res.Probes < 10 {
		t.Fatalf("only %d probes: the data set is too small to say anything", res.Probes)
	}
	// Regression bounds under what was measured (rank-1 0.825 and d' 3.3 on
	// testdata/faces; 0.830 and 2.9 on the full shared set): the idol photos
	// are a hard, look-alike population for dlib's network.
	if res.Rank1Rate() < 0.75 {
		t.Errorf("rank-1 rate %.3f below 0.75", res.Rank1Rate())
	}
	if res.Genuine.Mean-res.Impostor.Mean < 0.08 || res.DPrime < 2.5 {
		t.Errorf("genuine and impostor scores barely separate: d' %.2f", res.DPrime)
	}
}

func TestScanIdentityLayout(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/1.jpg", "a/2.PNG", "a/notes.txt", "b/1.jpeg"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	got, err := ScanIdentityLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Identity != "a" || got[2].Identity != "b" {
		t.Fatalf("got %v", got)
	}
	if _, err := ScanIdentityLayout(dir, dir); err == nil {
		t.Fatal("colliding identities accepted")
	}
	if _, err := ScanIdentityLayout(t.TempDir()); err == nil {
		t.Fatal("empty data set accepted")
	}
}

func rates(impostor, genuine []float64, thr float64) (fmr, fnmr float64) {
	for _, s := range impostor {
		if s >= thr {
			fmr++
		}
	}
	for _, s := range genuine {
		if s < thr {
			fnmr++
		}
	}
	return fmr / float64(max(1, len(impostor))), fnmr / float64(max(1, len(genuine)))
}
