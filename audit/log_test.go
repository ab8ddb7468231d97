package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/store"
)

// openStore opens a real gallery on disk, as matchd does.
func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// openLog opens the audit log of st with opt.
func openLog(t testing.TB, st *store.Store, opt Options) *Log {
	t.Helper()
	l, err := Open(st.AuditTrail(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func fill(t *testing.T, l *Log, n int) []Record {
	t.Helper()
	var out []Record
	for i := range n {
		s := 0.9 + float64(i)/100
		r, err := l.Append(Record{
			Identity: "gate-07", Role: "gate", Auth: "cert", Gate: "LHR-T5-03",
			RPC: "/bordermatch.v1.Matcher/Identify", Hits: []Hit{{SubjectID: fmt.Sprintf("P%d", i), Score: &s}},
			Decision: "hit", Code: "OK",
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func verifyOK(t *testing.T, l *Log, records uint64) Result {
	t.Helper()
	res, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Records != records || res.HeadSeq != records {
		t.Fatalf("verify: %+v, want ok with %d records", res, records)
	}
	return res
}

func TestChainAndRestart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	l := openLog(t, st, Options{})
	verifyOK(t, l, 0)
	recs := fill(t, l, 5)
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if i > 0 && r.Prev != recs[i-1].Hash {
			t.Fatalf("record %d links to %s, want %s", r.Seq, r.Prev, recs[i-1].Hash)
		}
	}
	if recs[0].Prev != zeroHash {
		t.Fatalf("first record links to %s", recs[0].Prev)
	}
	res := verifyOK(t, l, 5)
	if res.HeadHash != recs[4].Hash {
		t.Fatalf("head hash %s, want %s", res.HeadHash, recs[4].Hash)
	}
	l.Close()
	st.Close()

	// The chain continues where it stopped.
	st = openStore(t, dir)
	defer st.Close()
	l = openLog(t, st, Options{})
	more := fill(t, l, 2)
	if more[0].Seq != 6 || more[0].Prev != recs[4].Hash {
		t.Fatalf("after restart: seq %d prev %s, want 6 linked to %s", more[0].Seq, more[0].Prev, recs[4].Hash)
	}
	verifyOK(t, l, 7)

	got, next, err := l.List(Filter{}, 3)
	if err != nil || len(got) != 3 || next != 3 || got[0].Seq != 1 {
		t.Fatalf("List page 1: %d records, next %d, %v", len(got), next, err)
	}
	got, next, err = l.List(Filter{After: next}, 10)
	if err != nil || len(got) != 4 || next != 0 || got[0].Seq != 4 {
		t.Fatalf("List page 2: %d records, next %d, %v", len(got), next, err)
	}
	got, _, _ = l.List(Filter{Subject: "P1"}, 10)
	if len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 7 || *got[0].Hits[0].Score != 0.91 {
		t.Fatalf("List by subject P1: %+v", got)
	}
	got, _, _ = l.List(Filter{Since: time.Now().Add(time.Hour)}, 10)
	if len(got) != 0 {
		t.Fatalf("List since an hour ahead: %d records", len(got))
	}
}

// tamper changes the database behind the log's back and expects Verify to
// name bad as the first bad record, with a problem mentioning want.
func tamper(t *testing.T, change func(txn *badger.Txn) error, bad uint64, want string) {
	t.Helper()
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{})
	fill(t, l, 6)
	if err := st.DB().Update(change); err != nil {
		t.Fatal(err)
	}
	res, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.BadSeq != bad || !strings.Contains(res.Problem, want) {
		t.Fatalf("verify after tampering: %+v, want record %d named with %q", res, bad, want)
	}
}

func recordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("a/r/"), seq)
}

const headKey = "a/head"

func get(txn *badger.Txn, seq uint64) []byte {
	item, err := txn.Get(recordKey(seq))
	if err != nil {
		panic(err)
	}
	b, _ := item.ValueCopy(nil)
	return b
}

func TestTamperDetected(t *testing.T) {
	t.Run("edit", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error {
			b := bytes.Replace(get(txn, 3), []byte(`"P2"`), []byte(`"P9"`), 1)
			return txn.Set(recordKey(3), b)
		}, 3, "record 3 was altered")
	})
	t.Run("edit the last", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error {
			b := bytes.Replace(get(txn, 6), []byte(`"hit"`), []byte(`"no-hit"`), 1)
			return txn.Set(recordKey(6), b)
		}, 6, "chain head")
	})
	t.Run("edit and relink", func(t *testing.T) {
		// Editing a record and fixing the next one's link only moves the
		// break one record on.
		tamper(t, func(txn *badger.Txn) error {
			b := bytes.Replace(get(txn, 2), []byte(`"P1"`), []byte(`"P8"`), 1)
			var r Record
			json.Unmarshal(get(txn, 3), &r)
			d, _ := decode(b)
			r.Prev = d.Hash
			nb, _ := json.Marshal(r)
			if err := txn.Set(recordKey(2), b); err != nil {
				return err
			}
			return txn.Set(recordKey(3), nb)
		}, 3, "record 3 was altered")
	})
	t.Run("delete", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error { return txn.Delete(recordKey(4)) }, 4, "record 4 is missing")
	})
	t.Run("delete the first", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error { return txn.Delete(recordKey(1)) }, 1, "record 1 is missing")
	})
	t.Run("truncate", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error {
			txn.Delete(recordKey(6))
			return txn.Delete(recordKey(5))
		}, 5, "record 5 is missing")
	})
	t.Run("reorder", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error {
			b2, b3 := get(txn, 2), get(txn, 3)
			txn.Set(recordKey(2), b3)
			return txn.Set(recordKey(3), b2)
		}, 2, "moved")
	})
	t.Run("garbage", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error { return txn.Set(recordKey(5), []byte("{not json")) }, 5, "unreadable")
	})
	t.Run("head removed", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error { return txn.Delete([]byte(headKey)) }, 0, "head is missing")
	})
	t.Run("appended behind the log", func(t *testing.T) {
		tamper(t, func(txn *badger.Txn) error {
			var r Record
			json.Unmarshal(get(txn, 6), &r)
			d, _ := decode(get(txn, 6))
			r.Seq, r.Prev = 7, d.Hash
			b, _ := json.Marshal(r)
			return txn.Set(recordKey(7), b)
		}, 7, "outside the audit log")
	})
}

// TestConcurrentAppends: appends from many goroutines share transactions
// and still make one unbroken chain, each caller getting its own record.
func TestConcurrentAppends(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{})
	const workers, each = 8, 40
	seqs := make(chan uint64, workers*each)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				r, err := l.Append(Record{Identity: fmt.Sprintf("w%d", w), RPC: "/x", Decision: "ok", Code: "OK", Detail: fmt.Sprint(i)})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Identity != fmt.Sprintf("w%d", w) || r.Detail != fmt.Sprint(i) {
					t.Errorf("got back another caller's record: %+v", r)
				}
				seqs <- r.Seq
			}
		}()
	}
	for range workers {
		<-done
	}
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] || s < 1 || s > workers*each {
			t.Fatalf("sequence number %d given twice or out of range", s)
		}
		seen[s] = true
	}
	verifyOK(t, l, workers*each)
}

func TestHeadAndHashesAt(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{})
	if seq, h, err := l.Head(); err != nil || seq != 0 || h != "" {
		t.Fatalf("empty Head: %d %q %v", seq, h, err)
	}
	var recs []Record
	for i := range 5 {
		r, err := l.Append(Record{Identity: "x", RPC: fmt.Sprint("rpc-", i), Decision: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	seq, h, err := l.Head()
	if err != nil || seq != 5 || h != recs[4].Hash {
		t.Fatalf("Head: %d %q %v, want 5 %q", seq, h, err, recs[4].Hash)
	}
	got, err := l.HashesAt([]uint64{2, 4, 9})
	if err != nil || len(got) != 2 || got[2] != recs[1].Hash || got[4] != recs[3].Hash {
		t.Fatalf("HashesAt: %v %v", got, err)
	}
}
