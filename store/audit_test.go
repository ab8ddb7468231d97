package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

func auditRecs(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"seq":%d}`, from+i)
	}
	return out
}

func scanSeqs(t *testing.T, a *AuditTrail, from uint64) (seqs []uint64, head uint64) {
	t.Helper()
	head, _, err := a.Scan(from, func(seq uint64, rec []byte) error {
		if want := fmt.Sprintf(`{"seq":%d}`, seq); string(rec) != want {
			return fmt.Errorf("record %d holds %s", seq, rec)
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs, head
}

// TestAuditTrail: appends at the head only, scans from a sequence number,
// deletes from the front in bounded transactions and keeps the head.
func TestAuditTrail(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	a := s.AuditTrail()
	if seq, _, err := a.Head(); err != nil || seq != 0 {
		t.Fatalf("empty head %d %v", seq, err)
	}
	recs := auditRecs(1, 2500)
	if err := a.Append(1, recs[:2000]); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(2001, recs[2000:]); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(7, auditRecs(7, 1)); !errors.Is(err, ErrAuditHeadMoved) {
		t.Fatalf("append behind the head: %v", err)
	}
	seq, hash, err := a.Head()
	if err != nil || seq != 2500 || hash != sha256.Sum256(recs[2499]) {
		t.Fatalf("head %d %x %v", seq, hash, err)
	}
	if seqs, head := scanSeqs(t, a, 2490); len(seqs) != 11 || seqs[0] != 2490 || head != 2500 {
		t.Fatalf("scan from 2490: %v head %d", seqs, head)
	}
	n, err := a.DeleteThrough(2100)
	if err != nil || n != 2100 {
		t.Fatalf("DeleteThrough(2100): %d %v", n, err)
	}
	if seqs, _ := scanSeqs(t, a, 0); len(seqs) != 400 || seqs[0] != 2101 {
		t.Fatalf("after deleting through 2100: %d records from %v", len(seqs), seqs[:1])
	}
	// Everything, and past the head: the head stays, appends continue.
	if n, err := a.DeleteThrough(1 << 40); err != nil || n != 400 {
		t.Fatalf("DeleteThrough(all): %d %v", n, err)
	}
	s.Close()
	s = openAt(t, dir)
	defer s.Close()
	a = s.AuditTrail()
	if seqs, head := scanSeqs(t, a, 0); len(seqs) != 0 || head != 2500 {
		t.Fatalf("after deleting all: %v head %d", seqs, head)
	}
	if err := a.Append(2501, auditRecs(2501, 1)); err != nil {
		t.Fatal(err)
	}
	// A foreign key under the record prefix is named.
	if err := s.DB().Update(func(txn *badger.Txn) error { return txn.Set([]byte("a/r/x"), nil) }); err != nil {
		t.Fatal(err)
	}
	var ke *AuditKeyError
	if _, _, err := a.Scan(0, func(uint64, []byte) error { return nil }); !errors.As(err, &ke) || string(ke.MalformedKey()) != "a/r/x" {
		t.Fatalf("scan over a malformed key: %v", err)
	}
}
