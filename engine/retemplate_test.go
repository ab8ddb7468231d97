package engine_test

// Kept samples, several face algorithms in one gallery, and re-templating,
// on a real Badger gallery with the real extractors: a gallery enrolled
// with dlib's network (face.DlibModel) moves to the default model,
// mobilefacenet-192.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return "../models"
}

// extractors are loaded once per test binary, by model.
var (
	extractorsMu sync.Mutex
	extractors   = map[string]*face.Extractor{}
)

func extractor(t testing.TB, cfg face.Config) *face.Extractor {
	t.Helper()
	cfg.ModelsDir, cfg.Workers = modelsDir(), 2
	key := fmt.Sprintf("%s/%d", cfg.Model, cfg.MaxPixels)
	extractorsMu.Lock()
	defer extractorsMu.Unlock()
	if ex := extractors[key]; ex != nil {
		return ex
	}
	ex, err := face.NewExtractor(cfg)
	if err != nil {
		t.Fatalf("loading face model %q (run `make models`, or set BORDERMATCH_MODELS): %v", cfg.Model, err)
	}
	extractors[key] = ex
	return ex
}

// dlib is the extractor of dlib's network, the algorithm the galleries of
// these tests are enrolled with.
func dlib(t testing.TB) *face.Extractor { return extractor(t, face.Config{Model: face.DlibModel}) }

// mfn is the extractor of the default model, the one they move to.
func mfn(t testing.TB) *face.Extractor { return extractor(t, face.Config{Model: face.DefaultModel}) }

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readPhoto(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "faces", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// galleryPhotos are the bbt photos HOG finds one face in: subject
// "<name>-<n>" is enrolled from bbt/<name>/<n>.png.
func galleryPhotos() []string {
	var out []string
	for _, name := range []string{"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"} {
		for n := 1; n <= 5; n++ {
			if name == "stuart" && n == 5 {
				continue
			}
			if name == "penny" && n > 1 {
				continue // penny has one photo in testdata
			}
			out = append(out, fmt.Sprintf("%s/%d.png", name, n))
		}
	}
	return out
}

// samePerson reports whether two subjects of galleryPhotos are photos of
// the same person.
func samePerson(a, b string) bool {
	return a[:strings.LastIndexByte(a, '-')] == b[:strings.LastIndexByte(b, '-')]
}

func subjectID(photo string) string {
	return filepath.Dir(photo) + "-" + filepath.Base(photo)[:1]
}

// enrolGallery enrols every gallery photo as a subject with the engine's
// default algorithm, and one subject from a template only (no sample to
// re-template from).
func enrolGallery(t *testing.T, e *engine.Engine) (ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, p := range galleryPhotos() {
		id := subjectID(p)
		if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: id, Name: p, Watchlists: []string{"bbt"},
			Samples: []engine.Sample{{FaceImage: readPhoto(t, "bbt/"+p)}}}); err != nil {
			t.Fatalf("enrol %s: %v", p, err)
		}
		ids = append(ids, id)
	}
	tpl, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "template-only", Samples: []engine.Sample{{FaceImage: readPhoto(t, "reference/face1.png")}},
		ReturnTemplates: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Delete(ctx, "template-only"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "template-only", Samples: []engine.Sample{{Template: tpl.Templates[0]}}}); err != nil {
		t.Fatal(err)
	}
	return append(ids, "template-only")
}

func waitJob(t *testing.T, e *engine.Engine, timeout time.Duration) engine.RetemplateStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.RetemplateStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.State != engine.JobRunning {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still running after %v: %+v", timeout, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faceAlgos counts a subject's stored face templates by algorithm.
func faceAlgos(t *testing.T, st *store.Store, id string) map[templates.Algorithm]int {
	t.Helper()
	sub, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[templates.Algorithm]int{}
	for _, tp := range sub.Templates {
		if tp.Modality == templates.ModalityFace {
			out[tp.Algorithm]++
		}
	}
	return out
}

// TestSamplesKept: an enrolment keeps its photos and fingerprint records
// as received, not the samples given as templates; they go with the
// subject when it is deleted, and a backup restores them.
func TestSamplesKept(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e, err := engine.New(engine.Config{Store: st, Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	photo := readPhoto(t, "bbt/amy/1.png")
	rec, err := os.ReadFile("../templates/minutiae/testdata/fvc2002/db1_b/101_1.iso")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "amy", ReturnTemplates: true, Samples: []engine.Sample{
		{FaceImage: photo}, {Finger: &engine.FingerSample{Position: 2, Record: rec}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "amy-tpl", Samples: []engine.Sample{{Template: res.Templates[0]}}}); err != nil {
		t.Fatal(err)
	}
	sub, err := e.Get(ctx, "amy")
	if err != nil || sub.SampleCount != 2 {
		t.Fatalf("Get: %d samples, %v", sub.SampleCount, err)
	}
	if sub, _ := e.Get(ctx, "amy-tpl"); sub.SampleCount != 0 {
		t.Errorf("a template enrolment kept %d samples", sub.SampleCount)
	}
	sms, err := st.Samples("amy")
	if err != nil || len(sms) != 2 || sms[0].Kind != store.SampleFacePhoto || !bytes.Equal(sms[0].Data, photo) ||
		sms[1].Kind != store.SampleFingerRecord || !bytes.Equal(sms[1].Data, rec) || sms[1].Position != 2 {
		t.Fatalf("kept samples: %d, %v", len(sms), err)
	}

	var backup bytes.Buffer
	bst, err := e.Backup(ctx, &backup)
	if err != nil || bst.Samples != 2 {
		t.Fatalf("backup: %+v, %v", bst, err)
	}
	st2 := openStore(t, t.TempDir())
	defer st2.Close()
	e2, err := engine.New(engine.Config{Store: st2, Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	if sms, err := st2.Samples("amy"); err != nil || len(sms) != 2 || !bytes.Equal(sms[0].Data, photo) {
		t.Fatalf("restored samples: %d, %v", len(sms), err)
	}

	if _, err := e.Delete(ctx, "amy"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Samples("amy"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("samples after the delete: %v", err)
	}
	if n := countKeys(t, st, "x/"); n != 0 {
		t.Errorf("%d sample keys left after the delete", n)
	}
}

func countKeys(t *testing.T, st *store.Store, prefix string) int {
	t.Helper()
	n := 0
	txn := st.DB().NewTransaction(false)
	defer txn.Discard()
	opt := badgerIterOpts(prefix)
	it := txn.NewIterator(opt)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// TestNoSamples: with NoSamples nothing is kept, and a re-templating finds
// every subject needing re-enrolment and changes none.
func TestNoSamples(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e, err := engine.New(engine.Config{Store: st, Faces: dlib(t), MoreFaces: []engine.FaceExtractor{mfn(t)}, NoSamples: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids := []string{"amy-1", "raj-2", "howard-3"}
	for _, p := range []string{"amy/1.png", "raj/2.png", "howard/3.png"} {
		if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: subjectID(p), Samples: []engine.Sample{{FaceImage: readPhoto(t, "bbt/"+p)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := countKeys(t, st, "x/"); n != 0 {
		t.Fatalf("%d samples kept with NoSamples", n)
	}
	if _, err := e.Retemplate(ctx, mfn(t).Algorithm().ID); err != nil {
		t.Fatal(err)
	}
	js := waitJob(t, e, time.Minute)
	slices.Sort(js.NeedsReenrolment)
	if js.State != engine.JobDone || js.Done != 3 || js.Templated != 0 || js.NeedReenrol != 3 || !slices.Equal(js.NeedsReenrolment, []string{"amy-1", "howard-3", "raj-2"}) {
		t.Fatalf("job: %+v", js)
	}
	for _, id := range ids {
		if got := faceAlgos(t, st, id); got[templates.FaceAlgorithm] != 1 || len(got) != 1 {
			t.Errorf("%s: face templates %v", id, got)
		}
	}
}

// TestRetemplateWhileSearching: a gallery enrolled with dlib moves to
// mobilefacenet-192 while Identify runs in a loop: no call fails, a subject
// of the probe's person is at rank 1 and the probe photo's own subject in
// the top 3 throughout (mid-move, another photo of the person scored by one
// algorithm may rank above the same photo scored by the other: both are at
// the floor of their calibration tables, whose FMRs differ); at the end every subject with kept photos
// has templates of the new algorithm only, and the one enrolled from a
// template needs re-enrolment. The server was restarted with a lower
// image size limit than the gallery was enrolled under: the subject whose
// kept photo is over it fails to re-template, keeps its dlib template and
// is listed as failed.
func TestRetemplateWhileSearching(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	e, err := engine.New(engine.Config{Store: st, Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ids := enrolGallery(t, e)
	// 300x250 pixels, over the new extractor's limit below.
	bigPhoto := readPhoto(t, "reference/angry.jpg")
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "big", Samples: []engine.Sample{{FaceImage: bigPhoto}}}); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, "big")
	e.Close()
	st.Close()

	// mobilefacenet-192 becomes the default, at its built-in threshold;
	// dlib stays loaded for the move.
	newFaces := extractor(t, face.Config{Model: face.DefaultModel, MaxPixels: 300 * 200})
	newAlg := newFaces.Algorithm()
	st = openStore(t, dir)
	defer st.Close()
	e, err = engine.New(engine.Config{Store: st, Faces: newFaces, MoreFaces: []engine.FaceExtractor{dlib(t)}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.FaceIndexOf(templates.FaceAlgorithm).Len(); got != len(ids) {
		t.Fatalf("dlib index holds %d templates, want %d", got, len(ids))
	}

	probes := []string{"amy/1.png", "sheldon/2.png", "penny/1.png", "raj/4.png"}
	probeBytes := map[string][]byte{}
	for _, p := range probes {
		probeBytes[p] = readPhoto(t, "bbt/"+p)
	}
	stop := make(chan struct{})
	var searches, fails int
	var failMsgs []string
	var algs = map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		thr := float32(-1)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := probes[i%len(probes)]
			res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{FaceImage: probeBytes[p]}},
				Query: engine.Query{TopK: 3, Threshold: &thr}})
			searches++
			switch {
			case err != nil:
				fails++
				failMsgs = append(failMsgs, err.Error())
			case len(res.Candidates) == 0 || !samePerson(res.Candidates[0].SubjectID, subjectID(p)) ||
				!slices.ContainsFunc(res.Candidates, func(c engine.Candidate) bool { return c.SubjectID == subjectID(p) }):
				fails++
				failMsgs = append(failMsgs, fmt.Sprintf("%s: top %v", p, res.Candidates))
			default:
				algs[res.Candidates[0].FaceAlgorithm.String()]++
			}
		}
	}()

	js, err := e.Retemplate(ctx, newAlg.String())
	if err != nil {
		t.Fatal(err)
	}
	if js.State != engine.JobRunning || js.Total != len(ids) {
		t.Errorf("job at start: %+v", js)
	}
	// One job at a time: the same algorithm is the running job, another
	// is refused.
	if again, err := e.Retemplate(ctx, newAlg.ID); err != nil || again.Algorithm != newAlg.String() {
		t.Errorf("starting it again: %+v, %v", again, err)
	}
	if _, err := e.Retemplate(ctx, templates.FaceAlgorithm.String()); !errors.Is(err, engine.ErrBusy) {
		t.Errorf("another algorithm while it runs: %v", err)
	}
	js = waitJob(t, e, 5*time.Minute)
	// A few more searches on the finished gallery.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if fails > 0 || searches < len(probes) {
		t.Fatalf("%d of %d searches failed: %v", fails, searches, failMsgs[:min(5, len(failMsgs))])
	}
	t.Logf("%d searches during the move, mates by algorithm: %v; job %+v", searches, algs, js)

	want := len(ids) - 2 // big failed, template-only needs re-enrolment
	if js.State != engine.JobDone || js.Done != len(ids) || js.Templated != want || js.Failed != 1 || js.NeedReenrol != 1 ||
		js.Cleaned != want || len(js.Failures) != 1 || js.Failures[0].SubjectID != "big" ||
		!strings.Contains(js.Failures[0].Reason, "pixels") ||
		!slices.Equal(js.NeedsReenrolment, []string{"template-only"}) {
		t.Fatalf("job: %+v", js)
	}
	for _, id := range ids {
		got := faceAlgos(t, st, id)
		switch id {
		case "big", "template-only":
			if got[templates.FaceAlgorithm] != 1 || len(got) != 1 {
				t.Errorf("%s: %v, want its dlib template only", id, got)
			}
		default:
			if got[newAlg] != 1 || len(got) != 1 {
				t.Errorf("%s: %v, want one template of %s only", id, got, newAlg)
			}
		}
	}
	if n := e.FaceIndexOf(templates.FaceAlgorithm).Len(); n != 2 {
		t.Errorf("dlib index holds %d templates after the move, want 2", n)
	}
	if n := e.FaceIndexOf(newAlg).Len(); n != want {
		t.Errorf("new index holds %d, want %d", n, want)
	}
	if n := e.Subjects(); n != len(ids) {
		t.Errorf("%d searchable subjects, want %d", n, len(ids))
	}
	// 1:1, a template of the new algorithm against a photo: the photo is
	// extracted with the template's algorithm.
	amy, err := st.Get("amy-1")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := amy.Templates[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: tb}},
		Reference: &engine.Sample{FaceImage: readPhoto(t, "bbt/amy/1.png")}})
	if err != nil || !v.Match || v.FaceAlgorithm != newAlg || v.Face < 0.99 {
		t.Errorf("verify a %s template against a photo: %+v, %v", newAlg, v, err)
	}
	// The subject that failed is still found, by its dlib template: a
	// dlib template of its photo (extracted under the old limit) finds it.
	bigFace, err := dlib(t).Extract(bigPhoto, templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bt, err := bigFace.Template.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: bt}}})
	if err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "big" || res.Candidates[0].FaceAlgorithm != templates.FaceAlgorithm {
		t.Errorf("the failed subject after the move: %+v, %v", res.Candidates, err)
	}
}

// TestRetemplateResumes: a job stopped after 5 subjects (as by a crash)
// resumes when the engine opens the gallery again and completes with the
// right counts.
func TestRetemplateResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	e, err := engine.New(engine.Config{Store: st, Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ids := enrolGallery(t, e)
	e.Close()
	st.Close()

	cfg := func(st *store.Store) engine.Config {
		return engine.Config{Store: st, Faces: mfn(t), MoreFaces: []engine.FaceExtractor{dlib(t)}, Logger: zerolog.Nop()}
	}
	st = openStore(t, dir)
	e, err = engine.New(cfg(st))
	if err != nil {
		t.Fatal(err)
	}
	engine.SetRetemplateStopAfter(e, 5)
	if _, err := e.Retemplate(ctx, mfn(t).Algorithm().String()); err != nil {
		t.Fatal(err)
	}
	js := waitJob(t, e, time.Minute)
	if js.State != engine.JobStopped || js.Done != 5 || js.Templated != 5 || js.Phase != engine.PhaseTemplating {
		t.Fatalf("stopped job: %+v", js)
	}
	e.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	e, err = engine.New(cfg(st))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	js = waitJob(t, e, 5*time.Minute)
	if js.State != engine.JobDone || js.Done != len(ids) || js.Templated != len(ids)-1 || js.NeedReenrol != 1 || js.Failed != 0 ||
		js.Cleaned != len(ids)-1 || js.Total != len(ids) {
		t.Fatalf("resumed job: %+v", js)
	}
	for _, id := range ids[:len(ids)-1] {
		if got := faceAlgos(t, st, id); got[mfn(t).Algorithm()] != 1 || len(got) != 1 {
			t.Errorf("%s: %v", id, got)
		}
	}
}

// TestTemplatesOnlyAlgorithms: a templates-only engine takes face
// templates of any algorithm, the first fixing its dimension, and searches
// each in its own index.
func TestTemplatesOnlyAlgorithms(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mk := func(alg templates.Algorithm, dim int, seed float32) []byte {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32((i*7+int(seed*13))%11) - 5 + seed
		}
		b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: alg, Vector: v}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	x := templates.Algorithm{ID: "x-net", Version: 2}
	for i, s := range []struct {
		id  string
		alg templates.Algorithm
		dim int
	}{{"a", x, 64}, {"b", x, 64}, {"c", templates.FaceAlgorithm, 128}} {
		if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: s.id, Samples: []engine.Sample{{Template: mk(s.alg, s.dim, float32(i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "d", Samples: []engine.Sample{{Template: mk(x, 32, 1)}}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("a template of another dimension: %v", err)
	}
	res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: mk(x, 64, 1)}}})
	if err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "b" || res.Candidates[0].FaceAlgorithm != x || res.Searched != 2 {
		t.Fatalf("identify under x-net: %+v, %v", res, err)
	}
	_, err = e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: mk(templates.Algorithm{ID: "y", Version: 1}, 64, 1)}}})
	if !errors.Is(err, engine.ErrIncompatible) || !bytes.Contains([]byte(err.Error()), []byte("x-net/v2")) {
		t.Errorf("identify under an algorithm the gallery lacks: %v", err)
	}
	if _, err := e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: mk(x, 64, 0)}},
		Reference: &engine.Sample{Template: mk(templates.FaceAlgorithm, 128, 0)}}); !errors.Is(err, engine.ErrIncompatible) {
		t.Errorf("verify across algorithms: %v", err)
	}
	if v, err := e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: mk(x, 64, 0)}}, SubjectID: "a"}); err != nil || !v.Match ||
		!strings.Contains(v.Decision.Rule, "x-net/v2, no calibration") || v.FaceFMR != 1 || v.DecisionFMR != 1 {
		// Without a table every FMR is 1: the rule says so rather than
		// quoting an FMR the threshold does not have.
		t.Errorf("verify with the subject's own template: %+v, %v", v, err)
	}
	// The same after a restart: the dimension is the stored templates'.
	e.Close()
	e, err = engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.FaceIndexOf(x); n == nil || n.Dim() != 64 || n.Len() != 2 {
		t.Fatalf("x-net index after a restart: %v", n)
	}
}

func badgerIterOpts(prefix string) badger.IteratorOptions {
	opt := badger.DefaultIteratorOptions
	opt.PrefetchValues = false
	opt.Prefix = []byte(prefix)
	return opt
}
