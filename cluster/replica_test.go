package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// faceTpl is a distinct encoded face template of the default algorithm, as
// the coordinating node puts in the log (as engine/apply_test.go's).
func faceTpl(t testing.TB, seed int) []byte {
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

type testReplica struct {
	dir  string
	st   *store.Store
	eng  *engine.Engine
	rep  *Replica
	stop context.CancelFunc
	done chan error
}

// startReplica opens (or reopens) an engine on dir and runs a replica of
// all shards on it.
func startReplica(t *testing.T, l *Log, dir string, from uint64) *testReplica {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	rep, err := NewReplica(l, eng, allShards(l.shards), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rep.from = from
	ctx, cancel := context.WithCancel(context.Background())
	r := &testReplica{dir: dir, st: st, eng: eng, rep: rep, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- rep.Run(ctx) }()
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *testReplica) close(t *testing.T) {
	if r.stop == nil {
		return
	}
	r.stop()
	if err := <-r.done; !errors.Is(err, context.Canceled) {
		t.Errorf("replica run: %v", err)
	}
	r.stop = nil
	r.st.Close()
}

func (r *testReplica) rank1(t *testing.T, seed int) string {
	t.Helper()
	res, err := r.eng.Identify(context.Background(), engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: faceTpl(t, seed)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) == 0 {
		return ""
	}
	return res.Candidates[0].SubjectID
}

func (r *testReplica) count(t *testing.T) int {
	t.Helper()
	n, err := r.st.Count()
	if err != nil {
		t.Fatal(err)
	}
	if s := r.eng.Stats(); s.Subjects != n || s.FaceTemplates != n {
		t.Fatalf("index: %d subjects, %d templates; store %d", s.Subjects, s.FaceTemplates, n)
	}
	return n
}

func TestReplicaAppliesLog(t *testing.T) {
	cfg, nc, _, l := startSolo(t, "solo")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	a := startReplica(t, l, t.TempDir(), 0)
	b := startReplica(t, l, t.TempDir(), 0)

	const n = 200
	type token struct {
		shard int
		seq   uint64
	}
	var last token
	for i := range n {
		id := fmt.Sprint("P-", i)
		req := engine.EnrollRequest{SubjectID: id, Name: "Name " + id, Watchlists: []string{"wl"},
			Samples: []engine.Sample{{Template: faceTpl(t, i)}}}
		shard, seq, err := EnrollThroughLog(ctx, l, req, "enrol-"+id)
		if err != nil {
			t.Fatal(err)
		}
		if shard != ShardOf(id, cfg.Shards) {
			t.Fatalf("%s in shard %d", id, shard)
		}
		last = token{shard, seq}
		if i%50 == 0 { // read-your-writes
			if err := a.rep.WaitApplied(ctx, shard, seq); err != nil {
				t.Fatal(err)
			}
			if got := a.rank1(t, i); got != id {
				t.Fatalf("after WaitApplied, rank 1 of %s's template: %q", id, got)
			}
		}
	}
	// A retry with the same request id is the same token, applied once.
	req := engine.EnrollRequest{SubjectID: "P-199", Samples: []engine.Sample{{Template: faceTpl(t, 199)}}}
	if shard, seq, err := EnrollThroughLog(ctx, l, req, "enrol-P-199"); err != nil || (token{shard, seq}) != last {
		t.Fatalf("retry: %d %d %v, want %v", shard, seq, err, last)
	}
	for _, r := range []*testReplica{a, b} {
		if err := r.rep.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if c := r.count(t); c != n {
			t.Fatalf("%d subjects applied, want %d", c, n)
		}
		for _, i := range []int{0, 17, 123, 199} {
			if got := r.rank1(t, i); got != fmt.Sprint("P-", i) {
				t.Fatalf("rank 1 of P-%d's template: %q", i, got)
			}
		}
		if st := r.rep.Stats(); st.Applied != n || st.Malformed != 0 || st.Refused != 0 {
			t.Fatalf("stats %+v", st)
		}
		lag, err := r.rep.Lag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for sh, d := range lag {
			if d != 0 {
				t.Fatalf("shard %d lags %d after CatchUp", sh, d)
			}
		}
	}

	// Malformed messages published behind the log's back: recorded as
	// applied and skipped; the loop goes on.
	js, _ := jetstream.New(nc)
	var badSeqs []token
	pub := func(shard int, data []byte) {
		ack, err := js.Publish(ctx, ShardSubject(shard), data)
		if err != nil {
			t.Fatal(err)
		}
		badSeqs = append(badSeqs, token{shard, ack.Sequence})
	}
	pub(3, []byte("not an envelope"))
	env, _ := Encode(Message{Kind: KindEnrol, SubjectID: "Q-1", Request: []byte(`{"v":1,"id":"Q-1"`)})
	pub(ShardOf("Q-1", cfg.Shards), env)
	other, _ := EncodeEnroll(engine.EnrollRequest{SubjectID: "Q-2", Samples: []engine.Sample{{Template: faceTpl(t, 1000)}}})
	env, _ = Encode(Message{Kind: KindEnrol, SubjectID: "Q-3", Request: other}) // request of another subject
	pub(ShardOf("Q-3", cfg.Shards), env)
	env, _ = Encode(Message{Kind: KindEnrol, SubjectID: "Q-4", Request: []byte("x")})
	pub(ShardOf("Q-4", cfg.Shards)+1, env) // wrong shard
	// Refused by the engine (not a template): recorded, skipped.
	bad, _ := EncodeEnroll(engine.EnrollRequest{SubjectID: "Q-5", Samples: []engine.Sample{{Template: []byte("junk")}}})
	env, _ = Encode(Message{Kind: KindEnrol, SubjectID: "Q-5", Request: bad})
	pub(ShardOf("Q-5", cfg.Shards), env)
	afterReq := engine.EnrollRequest{SubjectID: "after", Samples: []engine.Sample{{Template: faceTpl(t, 500)}}}
	shard, seq, err := EnrollThroughLog(ctx, l, afterReq, "enrol-after")
	if err != nil {
		t.Fatal(err)
	}
	// Delete through the log.
	dShard, dSeq, err := DeleteThroughLog(ctx, l, "P-17", "delete-P-17")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*testReplica{a, b} {
		if err := r.rep.WaitApplied(ctx, shard, seq); err != nil {
			t.Fatal(err)
		}
		if err := r.rep.WaitApplied(ctx, dShard, dSeq); err != nil {
			t.Fatal(err)
		}
		for _, bs := range badSeqs {
			if got, _ := r.eng.Applied(bs.shard); got < bs.seq {
				t.Fatalf("malformed message at %v not recorded: shard applied %d", bs, got)
			}
		}
		if st := r.rep.Stats(); st.Malformed != 4 || st.Refused != 1 || st.Applied != n+2 {
			t.Fatalf("stats after malformed messages: %+v", st)
		}
		if got := r.rank1(t, 500); got != "after" {
			t.Fatalf("rank 1 after the malformed messages: %q", got)
		}
		if got := r.rank1(t, 17); got == "P-17" {
			t.Fatal("P-17 found after its deletion")
		}
		if c := r.count(t); c != n {
			t.Fatalf("%d subjects after one enrol and one delete, want %d", c, n)
		}
	}

	// WaitApplied bounded by its context.
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if err := a.rep.WaitApplied(wctx, 0, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied of a future sequence: %v", err)
	}
	wcancel()

	// Restart b: close the engine, reopen, replay the whole stream. Nothing
	// is applied twice.
	before, err := b.eng.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	total, _ := l.LastSequence(ctx)
	b.close(t)
	b = startReplica(t, l, b.dir, 1)
	if err := b.rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if c := b.count(t); c != n {
		t.Fatalf("after restart %d subjects, want %d", c, n)
	}
	after, err := b.eng.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("applied positions changed by redelivery:\n%v\n%v", before, after)
	}
	// The positions were applied already, so CatchUp returns before the
	// redelivered messages are through: wait for them.
	for deadline := time.Now().Add(10 * time.Second); b.rep.Stats().Skipped < total && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if st := b.rep.Stats(); st.Applied != 0 || st.Refused != 0 || st.Malformed != 0 || st.Skipped != total {
		t.Fatalf("redelivery of %d messages: %+v", total, st)
	}
	// And a restart from the applied positions starts past them.
	b.close(t)
	b = startReplica(t, l, b.dir, 0)
	if err := b.rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if c := b.count(t); c != n || b.rep.Stats().Applied != 0 {
		t.Fatalf("second restart: %d subjects, %+v", c, b.rep.Stats())
	}
	if got := b.rank1(t, 123); got != "P-123" {
		t.Fatalf("after restart rank 1 of P-123: %q", got)
	}
}

func TestReplicaStopsOnNewerRequest(t *testing.T) {
	cfg, _, _, l := startSolo(t, "solo")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, _ := Encode(Message{Kind: KindEnrol, SubjectID: "N", Request: []byte(`{"v":99,"id":"N"}`)})
	if _, err := l.Append(ctx, ShardOf("N", cfg.Shards), "n", env); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := NewReplica(l, eng, allShards(cfg.Shards), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Run(ctx); !errors.Is(err, ErrReplicaStopped) || !errors.Is(err, ErrNewerRequest) {
		t.Fatalf("run over a newer request: %v", err)
	}
	if got, _ := eng.Applied(ShardOf("N", cfg.Shards)); got != 0 {
		t.Fatalf("newer request recorded as applied (%d)", got)
	}
}
