package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
)

// logCluster is one embedded NATS server with the enrolment log on it.
type logCluster struct {
	cfg Config
	nc  *nats.Conn
	log *Log
}

// startLogCluster starts an embedded server and opens the log on it.
func startLogCluster(t *testing.T, partitions int) *logCluster {
	t.Helper()
	cfg, nc, _, l := startSolo(t, "solo")
	cfg.Partitions = partitions
	return &logCluster{cfg: cfg, nc: nc, log: l}
}

// partReplica is a replica of some shards on a real engine over Badger,
// whose Run starts when start is called.
type partReplica struct {
	st   *store.Store
	eng  *engine.Engine
	rep  *Replica
	stop context.CancelFunc
	done chan error
}

func newPartReplica(t *testing.T, l *Log, shards []int) *partReplica {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	rep, err := NewReplica(l, eng, shards, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &partReplica{st: st, eng: eng, rep: rep}
	t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
			if err := <-r.done; !errors.Is(err, context.Canceled) {
				t.Errorf("replica run: %v", err)
			}
		}
		eng.Close()
		st.Close()
	})
	return r
}

func (r *partReplica) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.rep.Run(ctx) }()
}

// TestSearchReadYourWrites: a subject enrolled through the log is found by
// the very next identification carrying its token, although the replica of
// its partition starts applying the log only later.
func TestSearchReadYourWrites(t *testing.T) {
	lc := startLogCluster(t, 2)
	m, err := NewShardMap(lc.cfg.Shards, 2)
	if err != nil {
		t.Fatal(err)
	}
	var reps [2]*partReplica
	for p := range 2 {
		reps[p] = newPartReplica(t, lc.log, m.ShardsOf(p))
		cfg := lc.cfg
		cfg.Partition = p
		r := reps[p].rep
		resp, err := ServeWith(lc.nc, cfg, reps[p].eng, m.Epoch, ServeOptions{Wait: r.WaitApplied, Owns: r.Owns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Close() })
	}
	if err := lc.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	coord := &Coordinator{NC: lc.nc, Partitions: 2, Epoch: m.Epoch, Timeout: 5 * time.Second}
	ctx := context.Background()

	const seed = 4711
	id := "RYW-1"
	p := m.PartitionOf(id)
	reps[1-p].start()
	shard, seq, err := EnrollThroughLog(ctx, lc.log, engine.EnrollRequest{SubjectID: id,
		Samples: []engine.Sample{{Template: faceTpl(t, seed)}}}, "ryw-"+id)
	if err != nil {
		t.Fatal(err)
	}
	tok := Token{Shard: shard, Seq: seq}

	// Without the token the owning replica answers from what it has: it
	// has not started, so it cannot know the subject.
	res, err := coord.Identify(ctx, SearchRequest{Template: faceTpl(t, seed)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("without a token: %d candidates (the replica of partition %d has not started)", len(res.Candidates), p)
	if len(res.Candidates) > 0 && res.Candidates[0].SubjectID == id {
		t.Errorf("found %s before its replica started", id)
	}

	// With it, the owner waits; a short deadline ends the wait as unavailable naming the token.
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = coord.Identify(sctx, SearchRequest{Template: faceTpl(t, seed), Token: tok})
	cancel()
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("token wait ran out: %v, want unavailable", err)
	}
	t.Logf("token wait ran out: %v", err)

	go func() {
		time.Sleep(200 * time.Millisecond)
		reps[p].start()
	}()
	start := time.Now()
	res, err = coord.Identify(ctx, SearchRequest{Template: faceTpl(t, seed), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) == 0 || res.Candidates[0].SubjectID != id {
		t.Fatalf("with token %s: %+v, want %s first", tok, res.Candidates, id)
	}
	t.Logf("with token %s: found after %v", tok, time.Since(start).Round(time.Millisecond))

}
