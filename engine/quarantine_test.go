package engine_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

func faceTpl(v []float32) templates.Template {
	return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
}

func encode(t testing.TB, tpl templates.Template) []byte {
	t.Helper()
	b, err := tpl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signOf is a vector of ±m in the sign pattern of v: the crafted template
// of the issue, which once scored 1.0 against the face it copies.
func signOf(v []float32, m float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = m
		if x < 0 {
			out[i] = -m
		}
	}
	return out
}

func decodeTpl(t testing.TB, b []byte) templates.Template {
	t.Helper()
	var tpl templates.Template
	if err := tpl.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return tpl
}

// badTemplates are templates no extractor makes, encoded as a store or a
// caller would hold them.
func badTemplates(t testing.TB) map[string]templates.Template {
	good := decodeTpl(t, logTpl(t, 1))
	mz := fingerMinutiae()
	return map[string]templates.Template{
		"zero":     faceTpl(make([]float32, templates.FaceDim)),
		"fltmax":   faceTpl(signOf(good.Vector, math.MaxFloat32)),
		"tiny":     faceTpl(signOf(good.Vector, 1e-30)),
		"dpi100":   templates.NewFingerTemplate(minutiae.View{DPI: 100, Width: 400, Height: 400, Minutiae: mz}),
		"dpi60000": templates.NewFingerTemplate(minutiae.View{DPI: 60000, Width: 400, Height: 400, Minutiae: mz}),
	}
}

// fingerMinutiae are minutiae a 500 dpi finger view of 400x400 pixels
// enrols with, so that only the resolution makes the bad ones bad.
func fingerMinutiae() []minutiae.Minutia {
	var ms []minutiae.Minutia
	for i := range 36 {
		ms = append(ms, minutiae.Minutia{X: 60 + (i%6)*50 + (i*7)%13, Y: 60 + (i/6)*50 + (i*11)%17, Angle: float64(i%12) * 0.5, Kind: minutiae.Kind(1 + i%2)})
	}
	return ms
}

func TestEnrollRefusesBadTemplates(t *testing.T) {
	e, st := replica(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	fine := templates.NewFingerTemplate(minutiae.View{DPI: 500, Width: 400, Height: 400, Minutiae: fingerMinutiae()})
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "fine", Samples: []engine.Sample{{Finger: &engine.FingerSample{Template: encode(t, fine)}}}}); err != nil {
		t.Fatalf("a plausible finger: %v", err)
	}
	for name, tpl := range badTemplates(t) {
		sm := engine.Sample{Template: encode(t, tpl)}
		if tpl.Modality == templates.ModalityFinger {
			sm = engine.Sample{Finger: &engine.FingerSample{Template: encode(t, tpl)}}
		}
		_, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: name, Samples: []engine.Sample{sm}})
		if !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("%s: enrol: %v, want ErrInvalid", name, err)
		}
		if _, err := st.Get(name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: stored after a refused enrolment (%v)", name, err)
		}
	}
	// A face the caller found (not an extractor's) is the caller's error.
	zero := faceTpl(make([]float32, templates.FaceDim))
	_, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "face", Samples: []engine.Sample{{Face: &templates.Face{Template: zero}}}})
	if !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("zero face: %v, want ErrInvalid", err)
	}
	if n, _ := st.Count(); n != 1 {
		t.Errorf("%d subjects stored, want the plausible finger only", n)
	}
}

func TestEnrollStoresNormalised(t *testing.T) {
	e, st := replica(t, t.TempDir())
	defer st.Close()
	v := decodeTpl(t, logTpl(t, 3)).Vector
	for i := range v {
		v[i] *= 40 // an unnormalised extractor's scale
	}
	if _, err := e.Enroll(context.Background(), engine.EnrollRequest{SubjectID: "n", Samples: []engine.Sample{{Template: encode(t, faceTpl(v))}}}); err != nil {
		t.Fatal(err)
	}
	sub, err := st.Get("n")
	if err != nil {
		t.Fatal(err)
	}
	var ss float64
	for _, x := range sub.Templates[0].Vector {
		ss += float64(x) * float64(x)
	}
	if math.Abs(ss-1) > 1e-5 {
		t.Errorf("stored face has squared norm %v, want 1", ss)
	}
}

// writeBad stores subjects with bad templates as a damaged disk or an older
// version would have: through the store, which does not judge values, and
// one template's bytes overwritten with garbage in Badger itself.
func writeBad(t testing.TB, st *store.Store) []string {
	t.Helper()
	var ids []string
	for name, tpl := range badTemplates(t) {
		if _, err := st.Create(store.Subject{ID: "bad-" + name, Watchlists: []string{"wl"}, Templates: []templates.Template{tpl}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, "bad-"+name)
	}
	return ids
}

func garble(t testing.TB, st *store.Store, id string) {
	t.Helper()
	if _, err := st.Create(store.Subject{ID: id, Templates: []templates.Template{decodeTpl(t, logTpl(t, 99))}}); err != nil {
		t.Fatal(err)
	}
	key := append(append([]byte("t/"+id), 0), 0, 0)
	if err := st.DB().Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err != nil {
			return err
		}
		return txn.Set(key, []byte("BMT\x01not a template at all"))
	}); err != nil {
		t.Fatal(err)
	}
}

// damageRecords stores two subjects and damages them below the
// templates: one's record overwritten with garbage, the other's template
// key removed, so that the record names one template more than is stored.
func damageRecords(t testing.TB, st *store.Store) []string {
	t.Helper()
	for _, id := range []string{"bad-record", "bad-count"} {
		if _, err := st.Create(store.Subject{ID: id, Watchlists: []string{"wl"}, Templates: []templates.Template{decodeTpl(t, logTpl(t, 98))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DB().Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte("s/bad-record"), []byte("\xff\xffgarbage")); err != nil {
			return err
		}
		return txn.Delete(append([]byte("t/bad-count"), 0, 0, 0))
	}); err != nil {
		t.Fatal(err)
	}
	return []string{"bad-count", "bad-record"}
}

func enrolGood(t testing.TB, e *engine.Engine, n int) {
	t.Helper()
	for i := range n {
		if _, err := e.Enroll(context.Background(), logEnrol(t, "good"+string(rune('a'+i)), 10+i)); err != nil {
			t.Fatal(err)
		}
	}
}

// searchable fails unless good subject i is found first by its own
// template.
func searchable(t testing.TB, e *engine.Engine, n int) {
	t.Helper()
	for i := range n {
		id := "good" + string(rune('a'+i))
		res, err := e.Identify(context.Background(), engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: logTpl(t, 10+i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Candidates) == 0 || res.Candidates[0].SubjectID != id {
			t.Errorf("%s not found by its own template: %+v", id, res.Candidates)
		}
	}
}

func quarantinedIDs(e *engine.Engine) []string {
	var ids []string
	for _, q := range e.Quarantined() {
		ids = append(ids, q.SubjectID)
	}
	return ids
}

func TestLoadQuarantinesBadRecords(t *testing.T) {
	dir := t.TempDir()
	e, st := replica(t, dir)
	enrolGood(t, e, 3)
	bad := append(writeBad(t, st), "bad-garbled")
	garble(t, st, "bad-garbled")
	bad = append(bad, damageRecords(t, st)...)
	slices.Sort(bad)
	st.Close()

	e, st = replica(t, dir) // fails without quarantine: "loading index"
	if got := quarantinedIDs(e); !slices.Equal(got, bad) {
		t.Fatalf("quarantined %v, want %v", got, bad)
	}
	for _, q := range e.Quarantined() {
		if q.Reason == "" {
			t.Errorf("%s quarantined without a reason", q.SubjectID)
		}
	}
	if n := e.Subjects(); n != 3 {
		t.Errorf("%d searchable subjects, want the 3 good ones", n)
	}
	searchable(t, e, 3)
	if _, err := e.RemoveQuarantined(context.Background(), "gooda"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("removing a healthy subject as quarantined: %v, want ErrNotFound", err)
	}
	for _, id := range bad {
		if _, err := e.RemoveQuarantined(context.Background(), id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		if _, err := st.Get(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still stored after removal: %v", id, err)
		}
	}
	if q := e.Quarantined(); len(q) != 0 {
		t.Errorf("still quarantined: %v", q)
	}
	searchable(t, e, 3)
	if n, err := st.Count(); err != nil || n != 3 {
		t.Errorf("%d subjects stored after the removals (%v), want 3", n, err)
	}
	lists, err := e.Watchlists(context.Background())
	if err != nil || len(lists) != 1 || lists[0].Subjects != 3 {
		t.Errorf("watchlists after the removals: %+v (%v), want wl of the 3 good subjects", lists, err)
	}
	st.Close()
	e, st = replica(t, dir)
	defer st.Close()
	if q := e.Quarantined(); len(q) != 0 {
		t.Errorf("quarantined after a restart: %v", q)
	}
	searchable(t, e, 3)
}

func TestRestoreQuarantinesBadRecords(t *testing.T) {
	e, st := replica(t, t.TempDir())
	enrolGood(t, e, 2)
	bad := append(writeBad(t, st), "bad-garbled")
	garble(t, st, "bad-garbled") // restored as it is, for load to quarantine
	slices.Sort(bad)
	var backup bytes.Buffer
	if _, err := e.Backup(context.Background(), &backup); err != nil {
		t.Fatal(err)
	}
	st.Close()

	dir := t.TempDir()
	e2, st2 := replica(t, dir)
	stats, err := e2.Restore(context.Background(), &backup)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if want := int64(2 + len(bad)); stats.Subjects != want {
		t.Errorf("restored %d subjects, want %d", stats.Subjects, want)
	}
	if got := quarantinedIDs(e2); !slices.Equal(got, bad) {
		t.Errorf("quarantined %v, want %v", got, bad)
	}
	searchable(t, e2, 2)
	st2.Close()
	e2, st2 = replica(t, dir) // the restored gallery starts again
	defer st2.Close()
	if got := quarantinedIDs(e2); !slices.Equal(got, bad) {
		t.Errorf("after a restart: quarantined %v, want %v", got, bad)
	}
	searchable(t, e2, 2)
}

func TestVerifyCraftedTemplates(t *testing.T) {
	e, st := replica(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	enrolGood(t, e, 1)
	ref := logTpl(t, 10)
	refV := decodeTpl(t, ref).Vector
	one := float32(1)
	verify := func(probe []byte, bySubject bool) (engine.VerifyResult, error) {
		req := engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}}, Threshold: &one}
		if bySubject {
			req.SubjectID = "gooda"
		} else {
			req.Reference = &engine.Sample{Template: ref}
		}
		return e.Verify(ctx, req)
	}
	for _, bySubject := range []bool{false, true} {
		// ±FLT_MAX is no face's: refused.
		if r, err := verify(encode(t, faceTpl(signOf(refV, math.MaxFloat32))), bySubject); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("by subject %t: ±FLT_MAX probe: score %v, err %v; want ErrInvalid", bySubject, r.Score, err)
		}
		// A sign pattern of a plausible scale scores its real cosine.
		v := signOf(refV, 3)
		r, err := verify(encode(t, faceTpl(v)), bySubject)
		if err != nil {
			t.Fatalf("by subject %t: %v", bySubject, err)
		}
		want := cosine64(v, refV)
		if r.Match || math.IsNaN(float64(r.Score)) || math.Abs(float64(r.Score)-want) > 1e-4 {
			t.Errorf("by subject %t: sign pattern scored %v (match %t), its cosine is %v", bySubject, r.Score, r.Match, want)
		}
	}
}

func cosine64(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// A log message with a bad template is refused for good (ErrInvalid) and
// its position recorded, so the replica's apply loop moves on; as
// ErrIncompatible it stopped the loop.
func TestApplyEnrollRefusesBadTemplate(t *testing.T) {
	e, st := replica(t, t.TempDir())
	defer st.Close()
	req := engine.EnrollRequest{SubjectID: "z", Samples: []engine.Sample{{Template: encode(t, faceTpl(make([]float32, templates.FaceDim)))}}}
	_, err := e.ApplyEnroll(context.Background(), store.LogPosition{Shard: 0, Seq: 1}, req)
	if !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("apply: %v, want ErrInvalid", err)
	}
	if seq := appliedSeq(t, e, 0); seq != 1 {
		t.Errorf("applied position %d, want 1 (refused for good)", seq)
	}
}
