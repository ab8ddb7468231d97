package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// The audit trail's storage. Package audit decides what a record holds and
// how records link; this file keeps them, under their own prefix:
//
//	a/r/<seq:8 BE>  → a record's stored bytes (package audit's canonical JSON)
//	a/head          → seq:8 BE, SHA-256 of record seq's stored bytes
//
// Records are appended only at the head, each group together with the new
// head in one synced transaction, so after a crash the head and the last
// record always agree; they are deleted only from the front (DeleteThrough,
// once package audit has archived them), so the records present are always
// one run of sequence numbers ending at the head. Every write holds the
// store's write hold, so a Purge or Restore flushing the memtables makes it
// wait instead of fail.

const (
	auditRecordPrefix = "a/r/"
	auditHeadKey      = "a/head"
	// auditDeleteBatch bounds the deletions of one DeleteThrough
	// transaction.
	auditDeleteBatch = 1000
)

var (
	// ErrAuditHeadMoved: AuditTrail.Append was told to write after a head
	// that is no longer the head (a second writer).
	ErrAuditHeadMoved = errors.New("store: the audit trail's head is not where the writer expected it")
)

// AuditKeyError is a key under the audit trail's record prefix that is not
// a record key (written by something other than AuditTrail). Its
// MalformedKey method lets package audit name it without importing store.
type AuditKeyError struct{ Key []byte }

func (e *AuditKeyError) Error() string        { return fmt.Sprintf("store: malformed audit key %q", e.Key) }
func (e *AuditKeyError) MalformedKey() []byte { return e.Key }

// AuditTrail is the audit trail's storage in the gallery (see above). Its
// methods are safe for concurrent use; the chain's single writer is package
// audit's Log.
type AuditTrail struct{ s *Store }

// AuditTrail returns the gallery's audit trail storage.
func (s *Store) AuditTrail() *AuditTrail { return &AuditTrail{s: s} }

func auditRecordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(auditRecordPrefix), seq)
}

func auditKeySeq(k []byte) (uint64, bool) {
	if len(k) != len(auditRecordPrefix)+8 || !bytes.HasPrefix(k, []byte(auditRecordPrefix)) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(auditRecordPrefix):]), true
}

func readAuditHead(txn *badger.Txn) (seq uint64, hash [sha256.Size]byte, err error) {
	item, err := txn.Get([]byte(auditHeadKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, hash, nil
	}
	if err != nil {
		return 0, hash, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, hash, err
	}
	if len(v) != 8+sha256.Size {
		return 0, hash, fmt.Errorf("store: audit chain head is %d bytes, want %d", len(v), 8+sha256.Size)
	}
	copy(hash[:], v[8:])
	return binary.BigEndian.Uint64(v), hash, nil
}

// Head returns the sequence number of the last record appended and the
// SHA-256 of its stored bytes; 0 and zeros before the first. The head
// stays when DeleteThrough removes the records.
func (a *AuditTrail) Head() (seq uint64, hash [sha256.Size]byte, err error) {
	err = a.s.db.View(func(txn *badger.Txn) error {
		seq, hash, err = readAuditHead(txn)
		return err
	})
	return seq, hash, err
}

// Append stores recs as records first, first+1, … and the last one as the
// new head, in one synced transaction, provided the head is first-1
// (ErrAuditHeadMoved otherwise, and nothing is written).
func (a *AuditTrail) Append(first uint64, recs [][]byte) error {
	if len(recs) == 0 {
		return nil
	}
	if first == 0 {
		return fmt.Errorf("%w: records start at 1", ErrInvalid)
	}
	a.s.writes.RLock()
	defer a.s.writes.RUnlock()
	return a.s.db.Update(func(txn *badger.Txn) error {
		seq, _, err := readAuditHead(txn)
		if err != nil {
			return err
		}
		if seq != first-1 {
			return fmt.Errorf("%w: head is %d, appending %d", ErrAuditHeadMoved, seq, first)
		}
		for i, b := range recs {
			if err := txn.Set(auditRecordKey(first+uint64(i)), b); err != nil {
				return err
			}
		}
		last := first + uint64(len(recs)) - 1
		h := sha256.Sum256(recs[len(recs)-1])
		return txn.Set([]byte(auditHeadKey), append(binary.BigEndian.AppendUint64(nil, last), h[:]...))
	})
}

// Scan calls fn with the records from sequence number from on, in order,
// and returns the head, all from one consistent snapshot. rec is valid only
// during the call. An error from fn stops the scan and is returned as is; a
// key under the record prefix that is not a record key is an
// *AuditKeyError.
func (a *AuditTrail) Scan(from uint64, fn func(seq uint64, rec []byte) error) (headSeq uint64, headHash [sha256.Size]byte, err error) {
	err = a.s.db.View(func(txn *badger.Txn) error {
		if headSeq, headHash, err = readAuditHead(txn); err != nil {
			return err
		}
		it := txn.NewIterator(iterOpts([]byte(auditRecordPrefix)))
		defer it.Close()
		var buf []byte
		for it.Seek(auditRecordKey(from)); it.Valid(); it.Next() {
			item := it.Item()
			seq, ok := auditKeySeq(item.Key())
			if !ok {
				return &AuditKeyError{Key: item.KeyCopy(nil)}
			}
			if buf, err = item.ValueCopy(buf[:0]); err != nil {
				return err
			}
			if err := fn(seq, buf); err != nil {
				return err
			}
		}
		return nil
	})
	return headSeq, headHash, err
}

// DeleteThrough deletes the records up to and including sequence number
// seq, oldest first, in transactions of at most a thousand deletions, and
// returns how many it deleted. The head is kept. Records past the head are
// never deleted (seq is clipped to the head). After a crash part way
// through, the records left are still the run ending at the head.
func (a *AuditTrail) DeleteThrough(seq uint64) (int, error) {
	head, _, err := a.Head()
	if err != nil {
		return 0, err
	}
	seq = min(seq, head)
	deleted := 0
	// Each batch seeks past the last: the tombstones of the batches before
	// are not walked again.
	next := uint64(0)
	for {
		var keys [][]byte
		err := a.s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(iterOpts([]byte(auditRecordPrefix)))
			defer it.Close()
			for it.Seek(auditRecordKey(next)); it.Valid() && len(keys) < auditDeleteBatch; it.Next() {
				s, ok := auditKeySeq(it.Item().Key())
				if !ok {
					return &AuditKeyError{Key: it.Item().KeyCopy(nil)}
				}
				if s > seq {
					break
				}
				keys = append(keys, it.Item().KeyCopy(nil))
				next = s + 1
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return deleted, err
		}
		err = a.s.update(func(txn *badger.Txn) error {
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return deleted, fmt.Errorf("store: deleting audit records: %w", err)
		}
		deleted += len(keys)
	}
}
