package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// importGallery imports real descriptors (the idols', then noisy copies of
// them, so neighbours are close) as subjects into a gallery directory: some
// with two faces, some on watchlists, some with a stale template of another
// algorithm version beside their face.
func importGallery(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	real := idolsGallery(t)
	r := rand.New(rand.NewPCG(11, 12))
	face := func(i int) templates.Template {
		v := slices.Clone(real[i%len(real)])
		if i >= len(real) {
			for j := range v {
				v[j] += 0.02 * float32(r.NormFloat64())
			}
		}
		return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
	}
	var subs []store.Subject
	for i := range n {
		sub := store.Subject{ID: fmt.Sprintf("m%05d", i), Templates: []templates.Template{face(i)}}
		switch i % 7 {
		case 1:
			sub.Templates = append(sub.Templates, face(i+n))
		case 2:
			sub.Watchlists = []string{"wanted"}
		case 3:
			stale := face(i + 2*n)
			stale.Algorithm.Version++
			sub.Templates = append(sub.Templates, stale)
			sub.Watchlists = []string{"wanted", "vip"}
		}
		subs = append(subs, sub)
	}
	if err := st.Import(subs); err != nil {
		t.Fatal(err)
	}
}

// TestStoreBackedIndexIsExact: the server's face index, which keeps int8
// codes only and re-scores from Badger, returns the same hits with the
// same scores, bit for bit, as an in-memory f32 index of the same stored
// templates, for Search, watchlist searches, Verify and the Identify RPC.
func TestStoreBackedIndexIsExact(t *testing.T) {
	dir := t.TempDir()
	importGallery(t, dir, 2000)
	ts := startServer(t, dir)
	defer ts.stop()

	ram := matcher.NewIndex(templates.FaceDim)
	var vecs [][]float32
	err := ts.store.Each(func(sub store.Subject) error {
		for _, tp := range sub.Templates {
			if tp.Modality == templates.ModalityFace && tp.Algorithm == templates.FaceAlgorithm {
				vecs = append(vecs, tp.Vector)
				if err := ram.Add(matcher.Entry{SubjectID: sub.ID, Vector: tp.Vector, Watchlists: sub.Watchlists}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ts.svc.eng.FaceIndex().Len() != ram.Len() || ram.Len() != 2000+2000/7+1 {
		t.Fatalf("server index %d rows, in-memory %d", ts.svc.eng.FaceIndex().Len(), ram.Len())
	}
	r := rand.New(rand.NewPCG(13, 14))
	ctx := context.Background()
	for p := range 40 {
		probe := slices.Clone(vecs[r.IntN(len(vecs))])
		for j := range probe {
			probe[j] += 0.03 * float32(r.NormFloat64())
		}
		opt := matcher.SearchOptions{K: []int{1, 10, 100}[p%3]}
		if p%4 == 1 {
			opt.Watchlists = []string{"vip"}
		}
		want, err := ram.Search(probe, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ts.svc.eng.FaceIndex().Search(probe, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("probe %d %+v:\n got %v\nwant %v", p, opt, got, want)
		}
		ws, _, _ := ram.Verify(probe, want[0].SubjectID)
		gs, ok, err := ts.svc.eng.FaceIndex().Verify(probe, want[0].SubjectID)
		if gs != ws || !ok || err != nil {
			t.Fatalf("verify %s: %v %v %v, want %v", want[0].SubjectID, gs, ok, err, ws)
		}
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: templateSample(t, templates.Template{
			Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: probe}),
			TopK: int32(opt.K), Watchlists: opt.Watchlists, Threshold: ptr(float32(-1))})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetCandidates()) != len(want) {
			t.Fatalf("identify: %d candidates, want %d", len(resp.GetCandidates()), len(want))
		}
		// Identify breaks ties its own way: same scores rank by rank,
		// and the same subjects with the same scores.
		for i, c := range resp.GetCandidates() {
			j := slices.IndexFunc(want, func(h matcher.Hit) bool { return h.SubjectID == c.GetSubjectId() })
			if c.GetScore() != want[i].Score || j < 0 || want[j].Score != c.GetScore() {
				t.Fatalf("identify rank %d: %s %v, want %v", i+1, c.GetSubjectId(), c.GetScore(), want[i])
			}
		}
	}
}

// TestDeletedNeverReturned: a subject deleted through the service is never
// a candidate again, nor one deleted from the store behind the index's
// back (the window between the store and the index in DeleteSubject): the
// re-scoring reads Badger, which no longer has it.
func TestDeletedNeverReturned(t *testing.T) {
	dir := t.TempDir()
	importGallery(t, dir, 500)
	ts := startServer(t, dir)
	defer ts.stop()
	ctx := context.Background()
	sub, err := ts.store.Get("m00010")
	if err != nil {
		t.Fatal(err)
	}
	probe := templateSample(t, sub.Templates[0])
	identify := func() []string {
		t.Helper()
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: probe, TopK: 5, Threshold: ptr(float32(-1))})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range resp.GetCandidates() {
			ids = append(ids, c.GetSubjectId())
		}
		return ids
	}
	if ids := identify(); len(ids) != 5 || ids[0] != "m00010" {
		t.Fatalf("before deletion: %v", ids)
	}
	if _, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "m00010"}); err != nil {
		t.Fatal(err)
	}
	if ids := identify(); len(ids) != 5 || slices.Contains(ids, "m00010") {
		t.Fatalf("after DeleteSubject: %v", ids)
	}

	// Behind the index's back: the store alone.
	ghost, err := ts.store.Get("m00011")
	if err != nil {
		t.Fatal(err)
	}
	probe = templateSample(t, ghost.Templates[0])
	if ids := identify(); ids[0] != "m00011" {
		t.Fatalf("before deletion: %v", ids)
	}
	if _, err := ts.store.Delete("m00011"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ts.svc.eng.FaceIndex().Subject("m00011"); !ok {
		t.Fatal("the test needs m00011 still in the index")
	}
	if ids := identify(); slices.Contains(ids, "m00011") {
		t.Fatalf("deleted from the store, still returned: %v", ids)
	}
	if _, ok, err := ts.svc.eng.FaceIndex().Verify(ghost.Templates[0].Vector, "m00011"); ok || err != nil {
		t.Fatalf("verify of a subject gone from the store: %v %v", ok, err)
	}
	_, err = ts.client.Verify(ctx, &pb.VerifyRequest{Probe: probe, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "m00011"}})
	if err == nil {
		t.Fatal("verify against a subject gone from the store succeeded")
	}
	ts.stop()
	ts = startServer(t, dir)
	if n := ts.svc.eng.FaceIndex().Len(); n != 500+500/7+1-2 {
		t.Fatalf("after restart: %d rows", n)
	}
}
