package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/internal/idols"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// The default calibrations (engine/calibration/*.json) are measured by
// TestWriteDefaultCalibrations:
//
//	BORDERMATCH_FINGERPRINT_DATA=../shared/testdata/fingerprints BORDERMATCH_FACE_DATA=../shared/testdata/faces \
//	    go test ./engine -run TestWriteDefaultCalibrations -calibrate
var (
	calibrate       = flag.Bool("calibrate", false, "measure and write the default calibrations in engine/calibration/")
	calibrateFinger = flag.Bool("calibrate-finger", false, "measure and write engine/calibration/finger.json only (after a change to finger extraction or matching)")
)

// fvcSets are the FVC B sets with their nominal resolutions (the TIFF tags
// say 1 dpi); see the data's SOURCES.md.
var fvcSets = []struct {
	dir string
	dpi int
}{
	{"fvc2000_db1_b", 500}, {"fvc2000_db2_b", 500}, {"fvc2000_db3_b", 500}, {"fvc2000_db4_b", 500},
	{"fvc2002_db1_b", 500}, {"fvc2002_db2_b", 569}, {"fvc2002_db3_b", 500}, {"fvc2002_db4_b", 500},
}

func TestWriteDefaultCalibrations(t *testing.T) {
	if !*calibrate {
		t.Skip("-calibrate not set")
	}
	face := faceCalibration(t)
	if err := face.WriteFile(filepath.Join("calibration", "face-dlib-resnet29-v1.json")); err != nil {
		t.Fatal(err)
	}
	faceData := os.Getenv("BORDERMATCH_FACE_DATA")
	if faceData == "" {
		t.Fatal("BORDERMATCH_FACE_DATA (the shared faces folder, with lfw-dev, idols and bbt) is required")
	}
	for _, model := range []string{"mobilefacenet-192", "faceplugin-512"} {
		c := modelCalibration(t, model, faceData)
		name := "face-" + strings.Replace(c.Algorithm, "/v", "-v", 1) + ".json"
		if err := c.WriteFile(filepath.Join("calibration", name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFingerCalibration(t)
}

// TestWriteFingerCalibration rewrites the finger table alone: the face
// tables need the face data and every model, and do not change with the
// fingerprint pipeline.
func TestWriteFingerCalibration(t *testing.T) {
	if !*calibrateFinger {
		t.Skip("-calibrate-finger not set")
	}
	writeFingerCalibration(t)
}

func writeFingerCalibration(t *testing.T) {
	fingerData := os.Getenv("BORDERMATCH_FINGERPRINT_DATA")
	if fingerData == "" {
		t.Fatal("BORDERMATCH_FINGERPRINT_DATA (the shared fingerprints folder) is required")
	}
	fc := fingerCalibration(t, fingerData)
	if err := fc.WriteFile(filepath.Join("calibration", "finger.json")); err != nil {
		t.Fatal(err)
	}
}

// faceCalibration: every impostor pair of idols.json (1,286 descriptors of
// 552 people by dlib's original network), a population the network
// separates poorly, so the face FMRs it gives are conservative.
func faceCalibration(t *testing.T) matcher.Calibration {
	const path = "../testdata/faces/idols/idols.json"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	faces, err := idols.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var imp, gen []float64
	for i := range faces {
		for j := i + 1; j < len(faces); j++ {
			s := float64(matcher.Cosine(faces[i].Descriptor, faces[j].Descriptor))
			if faces[i].Person.ID == faces[j].Person.ID {
				gen = append(gen, s)
			} else {
				imp = append(imp, s)
			}
		}
	}
	c := matcher.NewCalibration(imp)
	sum := sha256.Sum256(raw)
	c.Modality = "face"
	c.Algorithm = templates.FaceAlgorithm.String()
	c.SetGenuine(gen)
	c.DataSet = fmt.Sprintf("testdata/faces/idols/idols.json: every pair of %d descriptors of different people (sha256 %s)",
		len(faces), hex.EncodeToString(sum[:8]))
	c.Created = time.Now().UTC().Truncate(time.Second)
	c.Note = "dlib's original network on a population it separates poorly: conservative FMRs"
	return c
}

// modelCalibration: an ONNX face model (templates/face) on every photo of
// the shared labeled sets lfw-dev, idols and bbt (539 photos of 179
// people), impostors every pair of photos of different people, pooled
// across the sets, as bmbench verify pools them. Photos the extractor
// refuses take part as failed comparisons. The East-Asian idols score far
// higher among themselves than the rest do (the README's demographic
// table), so the pooled FMRs hold for a mixed population, not for one
// the network separates poorly.
func modelCalibration(t *testing.T, model, dir string) matcher.Calibration {
	models := os.Getenv("BORDERMATCH_MODELS")
	if models == "" {
		models = "../models"
	}
	ex, err := face.NewExtractor(face.Config{ModelsDir: models, Model: model})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	var paths []string
	for _, set := range []string{"lfw-dev", "idols", "bbt"} {
		for _, g := range []string{"*/*.jpg", "*/*.png"} {
			m, _ := filepath.Glob(filepath.Join(dir, set, g))
			paths = append(paths, m...)
		}
	}
	sort.Strings(paths)
	h := sha256.New()
	vecs := make([][]float32, len(paths))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range next {
				b, err := os.ReadFile(paths[k])
				if err != nil {
					t.Error(err)
					continue
				}
				f, err := ex.Extract(b, templates.ExtractOptions{})
				if err != nil {
					t.Logf("%s: %v", paths[k], err)
					continue
				}
				vecs[k] = f.Template.Vector
			}
		})
	}
	for k, p := range paths {
		h.Write([]byte(p[len(dir):]))
		next <- k
	}
	close(next)
	wg.Wait()
	who := func(p string) string { return filepath.Dir(p[len(dir):]) }
	var imp, gen []float64
	failed := 0
	for i := range paths {
		if vecs[i] == nil {
			failed++
		}
		for j := i + 1; j < len(paths); j++ {
			s := math.Inf(-1)
			if vecs[i] != nil && vecs[j] != nil {
				s = float64(matcher.Cosine(vecs[i], vecs[j]))
			}
			if who(paths[i]) == who(paths[j]) {
				gen = append(gen, s)
			} else {
				imp = append(imp, s)
			}
		}
	}
	c := matcher.NewCalibration(imp)
	c.Modality = "face"
	c.Algorithm = ex.Algorithm().String()
	c.SetGenuine(gen)
	c.DataSet = fmt.Sprintf("shared/testdata/faces lfw-dev, idols and bbt (%d photos): every pair of photos of different people, pooled (file list sha256 %s)",
		len(paths), hex.EncodeToString(h.Sum(nil)[:8]))
	c.Created = time.Now().UTC().Truncate(time.Second)
	sort.Float64s(gen)
	for _, target := range []float64{1e-2, 1e-3, 5e-4} {
		thr, err := c.ThresholdForFMR(target)
		if err != nil {
			t.Fatal(err)
		}
		miss := sort.SearchFloat64s(gen, float64(thr))
		t.Logf("%s: FMR %g at score %.4f: FNMR %.2f%% (%d of %d genuine)", model, target, thr, 100*float64(miss)/float64(len(gen)), miss, len(gen))
	}
	c.Note = fmt.Sprintf("%d photos refused by the extractor count as failed comparisons; genuine median %.3f",
		failed, gen[len(gen)/2])
	return c
}

// fingerCalibration: our extractor and the MCC matcher on the eight FVC
// B sets, impostors every pair of impressions of different fingers of one
// set (2,880 a set). Images the extractor refuses take part as failed
// comparisons.
func fingerCalibration(t *testing.T, dir string) matcher.Calibration {
	ex := finger.NewExtractor(finger.Config{})
	type img struct {
		set, finger, imp int
		t                *matcher.FingerTemplate
	}
	var jobs []img
	var paths []string
	for si, s := range fvcSets {
		for f := 101; f <= 110; f++ {
			for i := 1; i <= 8; i++ {
				jobs = append(jobs, img{set: si, finger: f, imp: i})
				paths = append(paths, filepath.Join(dir, s.dir, fmt.Sprintf("%d_%d.tif", f, i)))
			}
		}
	}
	h := sha256.New()
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	failed := 0
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range next {
				b, err := os.ReadFile(paths[k])
				if err != nil {
					t.Error(err)
					continue
				}
				g, _, err := fpimage.Decode(b)
				if err != nil {
					t.Errorf("%s: %v", paths[k], err)
					continue
				}
				res, err := ex.Extract(g, fvcSets[jobs[k].set].dpi)
				if err != nil && !errors.Is(err, finger.ErrLowQuality) {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				ft, err := matcher.PrepareFinger(res.View)
				if err != nil {
					t.Errorf("%s: %v", paths[k], err)
					continue
				}
				jobs[k].t = ft
			}
		})
	}
	for k, p := range paths {
		h.Write([]byte(p[len(dir):]))
		next <- k
	}
	close(next)
	wg.Wait()
	t.Logf("extracted %d images in %v, %d refused", len(jobs), time.Since(start), failed)

	var m matcher.FingerMatcher
	var imp, gen []float64
	for a := range jobs {
		for b := a + 1; b < len(jobs); b++ {
			x, y := jobs[a], jobs[b]
			if x.set != y.set {
				continue
			}
			s := math.Inf(-1)
			if x.t != nil && y.t != nil {
				s = m.Score(x.t, y.t)
			}
			if x.finger == y.finger {
				gen = append(gen, s)
			} else {
				imp = append(imp, s)
			}
		}
	}
	c := matcher.NewCalibration(imp)
	c.Modality = "finger"
	c.Algorithm = templates.FingerAlgorithm.String() + " mcc"
	c.SetGenuine(gen)
	c.DataSet = fmt.Sprintf("FVC2000 and FVC2002 DB1-DB4 B (640 images, nominal dpi): every pair of impressions of different fingers of one set, templates/finger extractor, matcher.FingerMatcher (file list sha256 %s)",
		hex.EncodeToString(h.Sum(nil)[:8]))
	c.Created = time.Now().UTC().Truncate(time.Second)
	sort.Float64s(gen)
	for _, target := range []float64{1e-2, 1e-3} {
		thr, err := c.ThresholdForFMR(target)
		if err != nil {
			t.Fatal(err)
		}
		miss := sort.SearchFloat64s(gen, float64(thr))
		t.Logf("finger: FMR %g at score %.4f: FNMR %.1f%% (%d of %d genuine)", target, thr, 100*float64(miss)/float64(len(gen)), miss, len(gen))
	}
	c.Note = fmt.Sprintf("%d images refused by the extractor count as failed comparisons; genuine median %.3f",
		failed, gen[len(gen)/2])
	return c
}
