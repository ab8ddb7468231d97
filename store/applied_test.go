package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

func applied(t testing.TB, s *Store, shard int) uint64 {
	t.Helper()
	seq, err := s.Applied(shard)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestAppliedInOrderAndRedelivery(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := applied(t, s, 3); got != 0 {
		t.Fatalf("fresh shard applied %d", got)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	sub := subject("A1", "wl")
	sub.Created = created
	got, err := s.CreateAt(LogPosition{3, 10}, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(created) || !got.Updated.Equal(created) {
		t.Errorf("created %v updated %v, want the log's %v", got.Created, got.Updated, created)
	}
	if _, err := s.CreateAt(LogPosition{3, 12}, subject("A2")); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, s, 3); got != 12 {
		t.Fatalf("applied %d, want 12", got)
	}
	// Redelivery, of the last and of an older position: nothing changes.
	for _, pos := range []LogPosition{{3, 12}, {3, 10}, {3, 11}} {
		if _, err := s.CreateAt(pos, subject("B"+fmt.Sprint(pos.Seq))); !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("CreateAt %v: %v, want ErrAlreadyApplied", pos, err)
		}
		if _, err := s.DeleteAt(pos, "A1"); !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("DeleteAt %v: %v, want ErrAlreadyApplied", pos, err)
		}
		if err := s.SkipAt(pos); !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("SkipAt %v: %v, want ErrAlreadyApplied", pos, err)
		}
	}
	if n := count(t, s); n != 2 {
		t.Fatalf("%d subjects after redeliveries, want 2", n)
	}
	// Another shard is independent.
	if _, err := s.DeleteAt(LogPosition{4, 1}, "A1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("A1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A1 after DeleteAt: %v", err)
	}
	if got := applied(t, s, 3); got != 12 {
		t.Fatalf("shard 3 applied %d after shard 4's delete", got)
	}
	// Refused changes advance the position in the same transaction.
	if _, err := s.CreateAt(LogPosition{3, 13}, subject("A2")); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateAt of an existing id: %v", err)
	}
	if _, err := s.DeleteAt(LogPosition{4, 2}, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteAt of a missing id: %v", err)
	}
	if _, err := s.DeleteAt(LogPosition{4, 3}, "bad/id"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteAt of an invalid id: %v", err)
	}
	if err := s.SkipAt(LogPosition{5, 7}); err != nil {
		t.Fatal(err)
	}
	// A subject that fails validation changes nothing, position included.
	if _, err := s.CreateAt(LogPosition{5, 8}, Subject{ID: "no templates"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CreateAt of an invalid subject: %v", err)
	}
	for _, pos := range []LogPosition{{-1, 1}, {0, 0}} {
		if err := s.SkipAt(pos); !errors.Is(err, ErrInvalid) {
			t.Errorf("SkipAt %v: %v", pos, err)
		}
	}
	want := map[int]uint64{3: 13, 4: 3, 5: 7}
	all, err := s.AppliedAll()
	if err != nil || !maps.Equal(all, want) {
		t.Fatalf("AppliedAll %v, %v; want %v", all, err, want)
	}
	// Positions survive close and reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir)
	if all, err := s.AppliedAll(); err != nil || !maps.Equal(all, want) {
		t.Fatalf("after reopen AppliedAll %v, %v; want %v", all, err, want)
	}
	if n := count(t, s); n != 1 {
		t.Fatalf("%d subjects after reopen, want 1", n)
	}
	if _, err := s.CreateAt(LogPosition{3, 13}, subject("C")); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("redelivery after reopen: %v", err)
	}
}

// Shards apply concurrently; each shard's own messages in order.
func TestAppliedConcurrentShards(t *testing.T) {
	s := open(t)
	const shards, per = 8, 40
	var wg sync.WaitGroup
	for sh := range shards {
		wg.Go(func() {
			for i := range per {
				pos := LogPosition{sh, uint64(1 + 3*i)}
				if _, err := s.CreateAt(pos, subject(fmt.Sprintf("S%d-%d", sh, i))); err != nil {
					t.Error(err)
					return
				}
				// and a redelivery of it
				if _, err := s.CreateAt(pos, subject(fmt.Sprintf("S%d-%d", sh, i))); !errors.Is(err, ErrAlreadyApplied) {
					t.Errorf("redelivery of %v: %v", pos, err)
				}
			}
		})
	}
	wg.Wait()
	if n := count(t, s); n != shards*per {
		t.Fatalf("%d subjects, want %d", n, shards*per)
	}
	all, err := s.AppliedAll()
	if err != nil {
		t.Fatal(err)
	}
	for sh := range shards {
		if all[sh] != uint64(1+3*(per-1)) {
			t.Errorf("shard %d applied %d", sh, all[sh])
		}
	}
}

func TestAppliedBackupRestore(t *testing.T) {
	src := open(t)
	if _, err := src.CreateAt(LogPosition{1, 5}, subject("A")); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, src, subject("B"))
	if err := src.SkipAt(LogPosition{200, 9}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if v := buf.Bytes()[len(backupMagic)]; v != 3 {
		t.Errorf("backup with log positions is version %d, want 3", v)
	}
	dst := open(t)
	st, err := dst.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Subjects != 2 {
		t.Errorf("restored %+v", st)
	}
	want := map[int]uint64{1: 5, 200: 9}
	if all, err := dst.AppliedAll(); err != nil || !maps.Equal(all, want) {
		t.Fatalf("restored AppliedAll %v, %v; want %v", all, err, want)
	}
	if _, err := dst.CreateAt(LogPosition{1, 5}, subject("C")); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("restored replica re-applies: %v", err)
	}
	// A gallery with positions is not empty for Restore.
	if _, err := dst.Delete("A"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Delete("B"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Restore(bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over log positions: %v", err)
	}

	// Without positions the backup stays version 2, which older builds read.
	plain := open(t)
	mustCreate(t, plain, subject("P"))
	buf.Reset()
	if _, err := plain.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if v := buf.Bytes()[len(backupMagic)]; v != 2 {
		t.Errorf("backup without log positions is version %d, want 2", v)
	}
}

// A positioned write and a plain Create or Delete of the same id are
// serialised by Badger: whatever the interleaving, the subject is either
// stored whole or not at all and the position is recorded.
func TestAppliedRacesPlainWrites(t *testing.T) {
	s := open(t)
	for i := range 50 {
		id := fmt.Sprintf("R%d", i)
		var wg sync.WaitGroup
		var atErr, delErr error
		wg.Go(func() { _, atErr = s.CreateAt(LogPosition{0, uint64(i + 1)}, subject(id)) })
		wg.Go(func() { _, delErr = s.Delete(id) })
		wg.Wait()
		if atErr != nil {
			t.Fatal(atErr)
		}
		_, getErr := s.Get(id)
		switch {
		case delErr == nil && !errors.Is(getErr, ErrNotFound):
			t.Fatalf("%s deleted but Get says %v", id, getErr)
		case errors.Is(delErr, ErrNotFound) && getErr != nil:
			t.Fatalf("%s not deleted but Get says %v", id, getErr)
		}
	}
	if got := applied(t, s, 0); got != 50 {
		t.Fatalf("applied %d, want 50", got)
	}
}
