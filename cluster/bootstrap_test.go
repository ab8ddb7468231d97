package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
)

// emptyEngine opens an engine on a new data directory.
func emptyEngine(t *testing.T) (*store.Store, *engine.Engine) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return st, eng
}

func enrolSeeds(t *testing.T, ctx context.Context, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprint("P-", i)
		req := engine.EnrollRequest{SubjectID: id, Name: "Name " + id, Samples: []engine.Sample{{Template: faceTpl(t, i)}}}
		if _, _, err := EnrollThroughLog(ctx, l, req, "enrol-"+id); err != nil {
			t.Fatal(err)
		}
	}
}

// backupObjects lists the backup bucket's objects.
func backupObjects(t *testing.T, ctx context.Context, js jetstream.JetStream) []string {
	t.Helper()
	obs, err := js.ObjectStore(ctx, BackupBucket)
	if err != nil {
		t.Fatal(err)
	}
	list, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list {
		names = append(names, o.Name)
	}
	return names
}

func TestBootstrapFromPeer(t *testing.T) {
	cfg, nc, js, l := startSolo(t, "peer-a")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Replica A applies the first enrolments.
	const before, after = 120, 30
	a := startReplica(t, l, t.TempDir(), 0)
	enrolSeeds(t, ctx, l, 0, before)
	if err := a.rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if c := a.count(t); c != before {
		t.Fatalf("A has %d subjects, want %d", c, before)
	}
	aApplied, err := a.eng.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	if NeedsBootstrap(aApplied, before) {
		t.Fatal("NeedsBootstrap of a node with a gallery")
	}
	srv, err := ServeBackups(nc, js, cfg, a.eng)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// B: a brand-new data directory.
	bst, beng := emptyEngine(t)
	bApplied, err := beng.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	bCount, err := bst.Count()
	if err != nil {
		t.Fatal(err)
	}
	if !NeedsBootstrap(bApplied, bCount) {
		t.Fatalf("NeedsBootstrap of an empty engine: false (applied %v, %d subjects)", bApplied, bCount)
	}
	bs, err := Bootstrap(ctx, nc, js, 0, beng)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bootstrap: %+v", bs)
	if bs.Peer != "peer-a" || bs.Subjects != before || bs.Bytes <= 0 || bs.Object == "" || bs.Took <= 0 {
		t.Fatalf("bootstrap stats %+v", bs)
	}
	if objs := backupObjects(t, ctx, js); len(objs) != 0 {
		t.Fatalf("backup objects left after the bootstrap: %v", objs)
	}
	restored, err := beng.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(restored, aApplied) {
		t.Fatalf("restored positions differ from A's:\n%v\n%v", restored, aApplied)
	}

	// The log moves on after the backup: more enrolments and a deletion.
	enrolSeeds(t, ctx, l, before, before+after)
	if _, _, err := DeleteThroughLog(ctx, l, "P-7", "delete-P-7"); err != nil {
		t.Fatal(err)
	}
	const appended = after + 1

	// A replica on B resumes from the restored positions.
	rep, err := NewReplica(l, beng, allShards(cfg.Shards), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rstop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rep.Run(rctx) }()
	stopB := func() {
		if rstop == nil {
			return
		}
		rstop()
		rstop = nil
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("B's replica: %v", err)
		}
	}
	defer stopB()
	if err := rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.rep.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	b := &testReplica{st: bst, eng: beng, rep: rep}
	if ca, cb := a.count(t), b.count(t); ca != before+after-1 || cb != ca {
		t.Fatalf("A has %d subjects, B %d; want %d", ca, cb, before+after-1)
	}
	for _, i := range []int{0, 42, before - 1, before, before + after - 1} {
		want := fmt.Sprint("P-", i)
		if ga, gb := a.rank1(t, i), b.rank1(t, i); ga != want || gb != want {
			t.Fatalf("rank 1 of %s's template: A %q, B %q", want, ga, gb)
		}
	}
	if gb := b.rank1(t, 7); gb == "P-7" {
		t.Fatal("B finds P-7 after its deletion")
	}
	if st := rep.Stats(); st.Applied != appended || st.Refused != 0 || st.Malformed != 0 {
		t.Fatalf("B's replica %+v: want %d applied (the messages after the backup) and nothing refused", st, appended)
	}
	aAll, _ := a.eng.AppliedAll()
	bAll, _ := beng.AppliedAll()
	if !maps.Equal(aAll, bAll) {
		t.Fatalf("applied positions differ after catching up:\nA %v\nB %v", aAll, bAll)
	}

	// Bootstrapping into a gallery that is not empty is refused; B unchanged.
	stopB()
	countBefore := b.count(t)
	_, err = Bootstrap(ctx, nc, js, 0, beng)
	if !errors.Is(err, engine.ErrIncompatible) || !strings.Contains(err.Error(), "bootstrap") {
		t.Fatalf("bootstrap into a non-empty gallery: %v", err)
	}
	t.Logf("refused: %v", err)
	if c := b.count(t); c != countBefore {
		t.Fatalf("refused bootstrap changed B: %d subjects, was %d", c, countBefore)
	}
	if now, _ := beng.AppliedAll(); !maps.Equal(now, bAll) {
		t.Fatalf("refused bootstrap changed B's positions:\n%v\n%v", bAll, now)
	}
	if objs := backupObjects(t, ctx, js); len(objs) != 0 {
		t.Fatalf("backup objects left after a refused bootstrap: %v", objs)
	}

	// Once A stops serving, no replica of partition 0 answers.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, e2 := emptyEngine(t)
	if _, err := Bootstrap(ctx, nc, js, 0, e2); !errors.Is(err, ErrNoReplica) ||
		!strings.Contains(err.Error(), "no live replica of partition 0 to copy") {
		t.Fatalf("bootstrap after the server closed: %v", err)
	}
}

// failingSource writes part of a backup, then fails.
type failingSource struct{}

func (failingSource) Backup(ctx context.Context, w io.Writer) (store.BackupStats, error) {
	if _, err := w.Write(make([]byte, 300<<10)); err != nil {
		return store.BackupStats{}, err
	}
	return store.BackupStats{}, errors.New("disk on fire")
}

func TestBootstrapErrors(t *testing.T) {
	cfg, nc, js, _ := startSolo(t, "peer-x")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// No server of the partition at all.
	_, eng := emptyEngine(t)
	_, err := Bootstrap(ctx, nc, js, 1, eng)
	if !errors.Is(err, ErrNoReplica) || !strings.Contains(err.Error(), "no live replica of partition 1 to copy") {
		t.Fatalf("bootstrap of a partition without replicas: %v", err)
	}
	t.Logf("no replica: %v", err)

	// A replica whose backup fails: the error comes back, no object stays.
	srv, err := ServeBackups(nc, js, cfg, failingSource{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, err = Bootstrap(ctx, nc, js, 0, eng)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "peer-x") {
		t.Fatalf("bootstrap from a failing backup: %v", err)
	}
	t.Logf("failing peer: %v", err)
	if objs := backupObjects(t, ctx, js); len(objs) != 0 {
		t.Fatalf("objects left after a failed backup: %v", objs)
	}
	if n, _ := eng.AppliedAll(); len(n) != 0 {
		t.Fatalf("failed bootstrap recorded positions %v", n)
	}
}

func TestNeedsBootstrap(t *testing.T) {
	for _, c := range []struct {
		applied  map[int]uint64
		subjects int
		want     bool
	}{
		{nil, 0, true},
		{map[int]uint64{}, 0, true},
		{map[int]uint64{3: 0}, 0, true},
		{map[int]uint64{3: 9}, 0, false}, // everything deleted: the log has it
		{nil, 1, false},
		{map[int]uint64{0: 1}, 5, false},
	} {
		if got := NeedsBootstrap(c.applied, c.subjects); got != c.want {
			t.Errorf("NeedsBootstrap(%v, %d) = %v, want %v", c.applied, c.subjects, got, c.want)
		}
	}
}
