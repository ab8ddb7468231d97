package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// logTpl is a distinct encoded face template of the default algorithm, as
// the coordinating node puts in the log.
func logTpl(t testing.TB, seed int) []byte {
	t.Helper()
	v := make([]float32, templates.FaceDim)
	for i := range v {
		v[i] = float32((seed*7919+i*104729)%1009)/1009 - 0.5
	}
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logEnrol(t testing.TB, id string, seed int) engine.EnrollRequest {
	return engine.EnrollRequest{SubjectID: id, Name: "Name " + id, Watchlists: []string{"wl"},
		Samples: []engine.Sample{{Template: logTpl(t, seed)}}}
}

func replica(t testing.TB, dir string) (*engine.Engine, *store.Store) {
	t.Helper()
	st := openStore(t, dir)
	e, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return e, st
}

func appliedSeq(t testing.TB, e *engine.Engine, shard int) uint64 {
	t.Helper()
	seq, err := e.Applied(shard)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// consistent fails unless the index and the store hold the same subjects.
func consistent(t testing.TB, e *engine.Engine, st *store.Store) int {
	t.Helper()
	n, err := st.Count()
	if err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Subjects != n || s.FaceTemplates != n {
		t.Fatalf("index holds %d subjects and %d face templates, store %d subjects", s.Subjects, s.FaceTemplates, n)
	}
	return n
}

func rank1(t testing.TB, e *engine.Engine, seed int) string {
	t.Helper()
	res, err := e.Identify(context.Background(), engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: logTpl(t, seed)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) == 0 {
		return ""
	}
	return res.Candidates[0].SubjectID
}

func TestApplyLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, st := replica(t, dir)
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	req := logEnrol(t, "A", 1)
	req.Created = created
	res, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 1}, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Subject.Created.Equal(created) {
		t.Errorf("created %v, want the log's %v", res.Subject.Created, created)
	}
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 2}, logEnrol(t, "B", 2)); err != nil {
		t.Fatal(err)
	}
	if got := rank1(t, e, 2); got != "B" {
		t.Fatalf("rank 1 of B's template: %q", got)
	}
	if n := consistent(t, e, st); n != 2 {
		t.Fatalf("%d subjects", n)
	}

	// Redelivery: no change to the store or the index.
	before := e.Stats()
	for _, seq := range []uint64{1, 2} {
		_, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: seq}, logEnrol(t, fmt.Sprint("C", seq), 3))
		if !errors.Is(err, engine.ErrAlreadyApplied) || !errors.Is(err, engine.ErrExists) {
			t.Errorf("redelivered enrol %d: %v", seq, err)
		}
		if _, err := e.ApplyDelete(ctx, store.LogPosition{Shard: 0, Seq: seq}, "A"); !errors.Is(err, engine.ErrAlreadyApplied) {
			t.Errorf("redelivered delete %d: %v", seq, err)
		}
	}
	// A redelivered invalid message is already applied too, once skipped.
	if err := e.SkipApplied(store.LogPosition{Shard: 0, Seq: 2}); !errors.Is(err, engine.ErrAlreadyApplied) {
		t.Errorf("SkipApplied of an applied position: %v", err)
	}
	if after := e.Stats(); after.Subjects != before.Subjects || after.FaceTemplates != before.FaceTemplates {
		t.Fatalf("redeliveries changed the index: %+v, was %+v", after, before)
	}
	if n := consistent(t, e, st); n != 2 || rank1(t, e, 1) != "A" {
		t.Fatalf("after redeliveries: %d subjects, rank 1 of A %q", n, rank1(t, e, 1))
	}

	// Refused changes advance the position.
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 3}, logEnrol(t, "A", 9)); !errors.Is(err, engine.ErrExists) || errors.Is(err, engine.ErrAlreadyApplied) {
		t.Errorf("enrol of an existing id: %v", err)
	}
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 4}, engine.EnrollRequest{SubjectID: "P", Samples: []engine.Sample{{FaceImage: []byte("jpeg")}}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("enrol of a photo from the log: %v", err)
	}
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 5}, engine.EnrollRequest{SubjectID: "Q", Samples: []engine.Sample{{Template: []byte("garbage")}}}); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("enrol of a corrupt template: %v", err)
	}
	if _, err := e.ApplyDelete(ctx, store.LogPosition{Shard: 0, Seq: 6}, "nobody"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("delete of a missing id: %v", err)
	}
	bad := logEnrol(t, "W", 6)
	bad.Watchlists = []string{"no such list!"} // refused by the store's validation
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 7}, bad); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("enrol onto an invalid watchlist name: %v", err)
	}
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 7}, bad); !errors.Is(err, engine.ErrAlreadyApplied) {
		t.Errorf("redelivered invalid enrol: %v", err)
	}
	if got := appliedSeq(t, e, 0); got != 7 {
		t.Fatalf("applied %d after refusals, want 7", got)
	}
	if n := consistent(t, e, st); n != 2 {
		t.Fatalf("%d subjects after refusals", n)
	}
	if _, err := e.ApplyDelete(ctx, store.LogPosition{Shard: 0, Seq: 8}, "A"); err != nil {
		t.Fatal(err)
	}
	if n := consistent(t, e, st); n != 1 || rank1(t, e, 1) == "A" {
		t.Fatalf("after deleting A: %d subjects", n)
	}
	// A cancelled apply records nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.ApplyEnroll(cctx, store.LogPosition{Shard: 0, Seq: 9}, logEnrol(t, "D", 4)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled apply: %v", err)
	}
	if got := appliedSeq(t, e, 0); got != 8 {
		t.Fatalf("applied %d after a cancelled apply, want 8", got)
	}

	// Positions and gallery survive a restart.
	e.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	e, st = replica(t, dir)
	defer st.Close()
	defer e.Close()
	if got := appliedSeq(t, e, 0); got != 8 {
		t.Fatalf("applied %d after restart, want 8", got)
	}
	if n := consistent(t, e, st); n != 1 || rank1(t, e, 2) != "B" {
		t.Fatalf("after restart: %d subjects", n)
	}
	if _, err := e.ApplyEnroll(ctx, store.LogPosition{Shard: 0, Seq: 8}, logEnrol(t, "E", 5)); !errors.Is(err, engine.ErrAlreadyApplied) {
		t.Fatalf("redelivery after restart: %v", err)
	}
}

func TestApplyShardsConcurrently(t *testing.T) {
	ctx := context.Background()
	e, st := replica(t, t.TempDir())
	defer st.Close()
	defer e.Close()
	const shards, per = 6, 30
	var wg sync.WaitGroup
	for sh := range shards {
		wg.Go(func() {
			for i := range per {
				pos := store.LogPosition{Shard: sh, Seq: uint64(1 + shards*i + sh)}
				req := logEnrol(t, fmt.Sprintf("S%d-%d", sh, i), sh*per+i)
				if _, err := e.ApplyEnroll(ctx, pos, req); err != nil {
					t.Error(err)
					return
				}
				if _, err := e.ApplyEnroll(ctx, pos, req); !errors.Is(err, engine.ErrAlreadyApplied) {
					t.Errorf("redelivery of %v: %v", pos, err)
				}
			}
		})
	}
	wg.Wait()
	if n := consistent(t, e, st); n != shards*per {
		t.Fatalf("%d subjects, want %d", n, shards*per)
	}
	all, err := e.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	for sh := range shards {
		if want := uint64(1 + shards*(per-1) + sh); all[sh] != want {
			t.Errorf("shard %d applied %d, want %d", sh, all[sh], want)
		}
	}
}

// An apply racing a plain Delete (or Enroll) of the same id: the id's lock
// keeps the index what the store holds, whichever wins.
func TestApplyRacesPlainWrites(t *testing.T) {
	ctx := context.Background()
	e, st := replica(t, t.TempDir())
	defer st.Close()
	defer e.Close()
	for i := range 60 {
		id := fmt.Sprint("R", i)
		pos := store.LogPosition{Shard: 1, Seq: uint64(2*i + 1)}
		var wg sync.WaitGroup
		if i%2 == 0 {
			var applyErr error
			wg.Go(func() { _, applyErr = e.ApplyEnroll(ctx, pos, logEnrol(t, id, i)) })
			wg.Go(func() { e.Delete(ctx, id) })
			wg.Wait()
			if applyErr != nil {
				t.Fatal(applyErr)
			}
		} else {
			if _, err := e.ApplyEnroll(ctx, pos, logEnrol(t, id, i)); err != nil {
				t.Fatal(err)
			}
			// a delete from the log racing an enrolment of the same id
			wg.Go(func() { e.ApplyDelete(ctx, store.LogPosition{Shard: 1, Seq: pos.Seq + 1}, id) })
			wg.Go(func() { e.Enroll(ctx, logEnrol(t, id, i)) })
			wg.Wait()
		}
		consistent(t, e, st)
		_, err := st.Get(id)
		if found := rank1(t, e, i) == id; found != (err == nil) {
			t.Fatalf("%s: in the index %v, store says %v", id, found, err)
		}
	}
	if got := appliedSeq(t, e, 1); got != 120 {
		t.Fatalf("applied %d, want 120", got)
	}
}
