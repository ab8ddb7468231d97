// Package audit keeps matchd's audit trail: one record per enrolment,
// identification, verification, deletion, gate capture, backup or restore,
// and per refused call, saying who called (identity and role), from which
// gate, which RPC, which subjects came back with which scores, and what was
// decided. Records never hold biometric samples or templates.
//
// # Storage and the hash chain
//
// Records live in the gallery's Badger database, under their own prefix,
// and are written with the database's synced writes, so a record is on disk
// before the call it describes returns:
//
//	a/r/<seq:8 BE>  → the record, JSON (the stored bytes are the canonical bytes)
//	a/head          → seq:8 BE, SHA-256 of record seq's stored bytes
//
// Every record carries its sequence number (1, 2, 3 … without gaps) and the
// SHA-256 of the previous record's stored bytes. A record and the new head
// are written in one transaction, so after a crash (even SIGKILL) the head
// and the last record always agree. Verify walks the chain: an edited
// record breaks the link the next record (or the head) holds, a deleted one
// leaves a gap in the sequence, a moved one sits under another sequence
// number, and a record cut from the end leaves the head pointing past it.
//
// Someone who can write the database can still rewrite the whole chain
// from some record on, head included. Verify reports the head's sequence
// number and hash: kept somewhere else (a ticket, a printout, another
// system's log), they make such a rewrite detectable too.
//
// The package offers no way to change or remove a record.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Key prefixes.
const (
	recordPrefix = "a/r/"
	headKey      = "a/head"
)

// Hit is a subject a call returned or acted on.
type Hit struct {
	SubjectID string   `json:"subject_id"`
	Score     *float64 `json:"score,omitempty"`
}

// Record is one audit record. Its stored form is its JSON encoding, with
// the fields in this order.
type Record struct {
	Seq       uint64    `json:"seq"`
	Prev      string    `json:"prev"` // hex SHA-256 of the previous record's stored bytes
	Time      time.Time `json:"time"`
	Identity  string    `json:"identity"`
	Role      string    `json:"role,omitempty"`
	Auth      string    `json:"auth"`
	Gate      string    `json:"gate,omitempty"`
	RPC       string    `json:"rpc"`
	RequestID string    `json:"request_id,omitempty"`
	Peer      string    `json:"peer,omitempty"`
	Hits      []Hit     `json:"hits,omitempty"`
	Decision  string    `json:"decision"`
	Code      string    `json:"code"`
	Detail    string    `json:"detail,omitempty"`

	// Hash is the SHA-256 of the stored bytes; filled when read, not stored.
	Hash string `json:"-"`
}

var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

// Log is the audit trail in a Badger database. Its methods are safe for
// concurrent use.
type Log struct {
	db *badger.DB
	// hold, if set, is called around every write: the store's guard that
	// keeps writes out while it flushes for a purge or restores (Badger
	// refuses writes meanwhile), so an audit record waits instead of
	// failing its call.
	hold func() (release func())
	// mu is held by the one goroutine writing: it writes every record
	// queued so far in one synced transaction (group commit), so concurrent
	// calls share a disk sync instead of waiting for one each.
	mu    sync.Mutex
	qmu   sync.Mutex
	queue []*pending
}

type pending struct {
	r    Record
	err  error
	done chan struct{}
}

// maxBatch bounds the records of one transaction.
const maxBatch = 256

// Open returns the audit trail kept in db (the gallery's database; see
// store.Store.DB). db must have synced writes for records to be durable
// when Append returns.
func Open(db *badger.DB) *Log { return &Log{db: db} }

// OpenHeld is Open with hold called around every write (store.Store.HoldWrites).
func OpenHeld(db *badger.DB, hold func() (release func())) *Log {
	return &Log{db: db, hold: hold}
}

func recordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(recordPrefix), seq)
}

// Append adds r at the end of the chain, setting its Seq, Prev and (if zero)
// Time, and returns it as stored, once it is on disk.
func (l *Log) Append(r Record) (Record, error) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	p := &pending{r: r, done: make(chan struct{})}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	l.qmu.Unlock()

	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		select {
		case <-p.done: // written by the goroutine that held mu before
			return p.r, p.err
		default:
		}
		l.qmu.Lock()
		n := min(len(l.queue), maxBatch)
		batch := l.queue[:n:n]
		l.queue = l.queue[n:]
		l.qmu.Unlock()
		l.write(batch)
	}
}

// write appends a batch of records in one transaction and tells each
// waiting Append the outcome.
func (l *Log) write(batch []*pending) {
	if l.hold != nil {
		defer l.hold()()
	}
	err := l.db.Update(func(txn *badger.Txn) error {
		seq, prev, err := readHead(txn)
		if err != nil {
			return err
		}
		var h [sha256.Size]byte
		for _, p := range batch {
			p.r.Seq, p.r.Prev = seq+1, zeroHash
			if seq > 0 {
				p.r.Prev = hex.EncodeToString(prev[:])
			}
			b, err := json.Marshal(p.r)
			if err != nil {
				return err
			}
			h = sha256.Sum256(b)
			p.r.Hash = hex.EncodeToString(h[:])
			if err := txn.Set(recordKey(p.r.Seq), b); err != nil {
				return err
			}
			seq, prev = p.r.Seq, h
		}
		return txn.Set([]byte(headKey), append(binary.BigEndian.AppendUint64(nil, seq), prev[:]...))
	})
	for _, p := range batch {
		if err != nil {
			p.r, p.err = Record{}, fmt.Errorf("audit: appending a record: %w", err)
		}
		close(p.done)
	}
}

func readHead(txn *badger.Txn) (seq uint64, hash [sha256.Size]byte, err error) {
	item, err := txn.Get([]byte(headKey))
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
		return 0, hash, fmt.Errorf("audit: chain head is %d bytes, want %d", len(v), 8+sha256.Size)
	}
	copy(hash[:], v[8:])
	return binary.BigEndian.Uint64(v), hash, nil
}

// Filter selects records for List.
type Filter struct {
	Since   time.Time // zero: all
	Subject string    // "": all
	After   uint64    // only records after this sequence number
}

func (f Filter) match(r *Record) bool {
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if f.Subject == "" {
		return true
	}
	for _, h := range r.Hits {
		if h.SubjectID == f.Subject {
			return true
		}
	}
	return false
}

// List returns up to limit records matching f in sequence order, and the
// sequence number to pass as Filter.After for the next page (0 when there
// are no more). A record that cannot be decoded is an error naming it (run
// Verify).
func (l *Log) List(f Filter, limit int) ([]Record, uint64, error) {
	var out []Record
	var next uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(recordPrefix), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Seek(recordKey(f.After + 1)); it.Valid(); it.Next() {
			item := it.Item()
			seq, ok := keySeq(item.Key())
			if !ok {
				return fmt.Errorf("audit: malformed key %q", item.Key())
			}
			if len(out) == limit {
				next = out[len(out)-1].Seq
				return nil
			}
			b, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := decode(b)
			if err != nil {
				return fmt.Errorf("audit: record %d: %w", seq, err)
			}
			if f.match(&r) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, next, err
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != len(recordPrefix)+8 || !bytes.HasPrefix(k, []byte(recordPrefix)) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(recordPrefix):]), true
}

func decode(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("unreadable: %v", err)
	}
	h := sha256.Sum256(b)
	r.Hash = hex.EncodeToString(h[:])
	return r, nil
}

// Result is what Verify found.
type Result struct {
	OK      bool
	Records uint64
	// HeadSeq and HeadHash: the last record's sequence number and hash.
	HeadSeq  uint64
	HeadHash string
	// BadSeq is the first record found bad (0: the chain head itself);
	// Problem says what is wrong. Set when !OK.
	BadSeq  uint64
	Problem string
}

// Verify checks the whole chain: sequence numbers without gaps, each
// record's link to the one before, and the head against the last record.
func (l *Log) Verify() (Result, error) {
	var res Result
	bad := func(seq uint64, format string, a ...any) error {
		res.OK, res.BadSeq, res.Problem = false, seq, fmt.Sprintf(format, a...)
		return nil
	}
	err := l.db.View(func(txn *badger.Txn) error {
		headSeq, headHash, err := readHead(txn)
		if err != nil {
			return bad(0, "%v", err)
		}
		res.HeadSeq, res.HeadHash = headSeq, hex.EncodeToString(headHash[:])
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(recordPrefix), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		want, prev := uint64(1), zeroHash
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			seq, ok := keySeq(item.Key())
			if !ok {
				return bad(want, "malformed key %q where record %d should be", item.Key(), want)
			}
			if seq != want {
				return bad(want, "record %d is missing (the next record is %d)", want, seq)
			}
			b, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := decode(b)
			if err != nil {
				return bad(seq, "record %d is %v", seq, err)
			}
			if r.Seq != seq {
				return bad(seq, "record stored as %d says it is %d (moved)", seq, r.Seq)
			}
			if r.Prev != prev {
				if seq == 1 {
					return bad(1, "record 1 was altered (its link is not the zero hash)")
				}
				return bad(seq-1, "record %d was altered: its hash does not match the link in record %d", seq-1, seq)
			}
			prev = r.Hash
			res.Records = seq
			want++
		}
		switch {
		case res.Records == 0 && headSeq == 0:
		case headSeq == 0:
			return bad(0, "the chain head is missing but there are %d records", res.Records)
		case headSeq > res.Records:
			return bad(res.Records+1, "record %d is missing: the chain head is record %d but the last record is %d", res.Records+1, headSeq, res.Records)
		case headSeq < res.Records:
			return bad(headSeq+1, "record %d follows the chain head (%d): appended outside the audit log", headSeq+1, headSeq)
		case res.HeadHash != prev:
			return bad(res.Records, "record %d was altered: its hash does not match the chain head", res.Records)
		}
		res.OK = true
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("audit: verifying: %w", err)
	}
	return res, nil
}
