// Package audit keeps matchd's audit trail: one record per enrolment,
// identification, verification, deletion, gate capture, backup or restore,
// and per refused call, saying who called (identity and role), from which
// gate, which RPC, which subjects came back with which scores, and what was
// decided. Records never hold biometric samples or templates.
//
// # Storage and the hash chain
//
// Records live in the gallery's Badger database, kept by the store
// (store.AuditTrail, which this package reaches through the Trail
// interface), under their own prefix, and are written with the database's
// synced writes, so a record is on disk before the call it describes
// returns:
//
//	a/r/<seq:8 BE>  → the record, JSON (the stored bytes are the canonical bytes)
//	a/head          → seq:8 BE, SHA-256 of record seq's stored bytes
//
// Every record carries its sequence number (1, 2, 3 … without gaps) and the
// SHA-256 of the previous record's stored bytes. A group of records and the
// new head are written in one transaction, so after a crash (even SIGKILL)
// the head and the last record always agree. Verify walks the chain: an
// edited record breaks the link the next record (or the head) holds, a
// deleted one leaves a gap in the sequence, a moved one sits under another
// sequence number, and a record cut from the end leaves the head pointing
// past it.
//
// With a retention period (Options.Retention), records older than it move
// to an append-only archive file (see archive.go) before they are dropped
// from the gallery; the chain then runs from the archive's first record
// through the gallery's to the head, and Verify checks it as one.
//
// Someone who can write the database can still rewrite the whole chain
// from some record on, head included. Verify reports the head's sequence
// number and hash: kept somewhere else (a ticket, a printout, another
// system's log), they make such a rewrite detectable too.
//
// The package offers no way to change a record, and removes records from
// the gallery only once they are in the archive.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Hit is a subject a call returned or acted on.
type Hit struct {
	SubjectID string   `json:"subject_id"`
	Score     *float64 `json:"score,omitempty"`
}

// Record is one audit record. Its stored form is its JSON encoding, with
// the fields in this order.
type Record struct {
	Seq      uint64    `json:"seq"`
	Prev     string    `json:"prev"` // hex SHA-256 of the previous record's stored bytes
	Time     time.Time `json:"time"`
	Identity string    `json:"identity"`
	// KeyID tells two callers with one name apart (access.Caller.KeyID);
	// omitted when empty, so records of callers without a key (and every
	// record written before it existed) read as before.
	KeyID     string `json:"key_id,omitempty"`
	Role      string `json:"role,omitempty"`
	Auth      string `json:"auth"`
	Gate      string `json:"gate,omitempty"`
	RPC       string `json:"rpc"`
	RequestID string `json:"request_id,omitempty"`
	Peer      string `json:"peer,omitempty"`
	Hits      []Hit  `json:"hits,omitempty"`
	Decision  string `json:"decision"`
	Code      string `json:"code"`
	Detail    string `json:"detail,omitempty"`
	// Coordinator and Partitions: in a cluster, the node that coordinated
	// the call and the partitions it asked (NoteCluster). Last and
	// omitted when empty, so a single node's records are as before.
	Coordinator string `json:"coordinator,omitempty"`
	Partitions  []int  `json:"partitions,omitempty"`
	// PassiveAuth is a gate controller's statement about the chip a
	// reference photo came from: "passed", "failed", "not-performed"; ""
	// when none was made.
	PassiveAuth string `json:"passive_auth,omitempty"`

	// Hash is the SHA-256 of the stored bytes; filled when read, not stored.
	Hash string `json:"-"`
}

var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

// Trail is the storage the log writes through: store.Store.AuditTrail
// satisfies it. Implementations keep Append and DeleteThrough out of the
// way of their own maintenance (the store's write hold) by themselves.
type Trail interface {
	// Head returns the last record's sequence number and the SHA-256 of
	// its stored bytes (0 and zeros for an empty chain); it stays when the
	// records are deleted.
	Head() (seq uint64, hash [sha256.Size]byte, err error)
	// Append stores recs as records first, first+1, … and the last as the
	// new head in one synced transaction, if the head is first-1.
	Append(first uint64, recs [][]byte) error
	// Scan calls fn with the stored bytes of the records from sequence
	// number from on, in order, and returns the head, from one snapshot.
	// rec is valid only during the call. A key that is not a record's is
	// an error with a MalformedKey() []byte method.
	Scan(from uint64, fn func(seq uint64, rec []byte) error) (headSeq uint64, headHash [sha256.Size]byte, err error)
	// DeleteThrough deletes the records up to seq, oldest first.
	DeleteThrough(seq uint64) (int, error)
}

// Options configures Open.
type Options struct {
	// ArchiveDir holds the archive (ArchiveFile) of records moved out of
	// the gallery; Verify reads it when it exists. Empty: no archive, and
	// Retention must be 0.
	ArchiveDir string
	// Retention: records older than this are moved to the archive by a
	// retention pass at Open and every RetentionInterval. 0 keeps every
	// record in the gallery.
	Retention time.Duration
	// RetentionInterval is how often the pass runs (0: hourly).
	RetentionInterval time.Duration
	// Logger receives the retention passes' outcome.
	Logger zerolog.Logger

	now    func() time.Time // tests
	manual bool             // tests: no passes but Retain's
}

// DefaultRetentionInterval is how often a retention pass runs.
const DefaultRetentionInterval = time.Hour

// Log is the audit trail. Its methods are safe for concurrent use; there
// must be one Log per trail (it keeps the chain's head).
type Log struct {
	trail Trail
	opt   Options
	// mu is held by the one goroutine writing: it writes every record
	// queued so far in one synced transaction (group commit), so concurrent
	// calls share a disk sync instead of waiting for one each. It guards
	// the head as last written (headOK false: read it again).
	mu            sync.Mutex
	headOK        bool
	headSeq       uint64
	headHash      [sha256.Size]byte
	qmu           sync.Mutex
	queue         []*pending
	rmu           sync.Mutex // serialises retention passes and Verify (archive.go)
	arch          archiveCache
	stop, stopped chan struct{}
	closeOnce     sync.Once
}

type pending struct {
	r    Record
	err  error
	done chan struct{}
}

// maxBatch bounds the records of one transaction.
const maxBatch = 256

// Open returns the audit trail kept in t (store.Store.AuditTrail), and
// starts its retention passes when opt.Retention is set: the first now, in
// the background. Close stops them.
func Open(t Trail, opt Options) (*Log, error) {
	if opt.Retention < 0 {
		return nil, fmt.Errorf("audit: retention %v is negative", opt.Retention)
	}
	if opt.Retention > 0 && opt.ArchiveDir == "" {
		return nil, errors.New("audit: a retention period needs an archive directory")
	}
	if opt.RetentionInterval <= 0 {
		opt.RetentionInterval = DefaultRetentionInterval
	}
	if opt.now == nil {
		opt.now = time.Now
	}
	l := &Log{trail: t, opt: opt, stop: make(chan struct{}), stopped: make(chan struct{})}
	if opt.Retention > 0 && !opt.manual {
		go l.retainLoop()
	} else {
		close(l.stopped)
	}
	return l, nil
}

// Close stops the retention passes, waiting for one under way. The log
// still appends and verifies.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	<-l.stopped
	return nil
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
// waiting Append the outcome. l.mu is held.
func (l *Log) write(batch []*pending) {
	err := l.writeBatch(batch)
	for _, p := range batch {
		if err != nil {
			p.r, p.err = Record{}, fmt.Errorf("audit: appending a record: %w", err)
		}
		close(p.done)
	}
}

func (l *Log) writeBatch(batch []*pending) error {
	if !l.headOK {
		seq, h, err := l.trail.Head()
		if err != nil {
			return err
		}
		l.headSeq, l.headHash, l.headOK = seq, h, true
	}
	seq, prev := l.headSeq, l.headHash
	recs := make([][]byte, len(batch))
	for i, p := range batch {
		p.r.Seq, p.r.Prev = seq+1, zeroHash
		if seq > 0 {
			p.r.Prev = hex.EncodeToString(prev[:])
		}
		b, err := json.Marshal(p.r)
		if err != nil {
			return err
		}
		prev = sha256.Sum256(b)
		p.r.Hash = hex.EncodeToString(prev[:])
		recs[i], seq = b, p.r.Seq
	}
	if err := l.trail.Append(l.headSeq+1, recs); err != nil {
		l.headOK = false // whatever happened, read the head again
		return err
	}
	l.headSeq, l.headHash = seq, prev
	return nil
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

// errStop ends a Scan early.
var errStop = errors.New("stop")

// malformedKey is the error Trail.Scan returns for a key that is not a
// record's (store.AuditKeyError).
type malformedKey interface{ MalformedKey() []byte }

// List returns up to limit records matching f in sequence order, and the
// sequence number to pass as Filter.After for the next page (0 when there
// are no more). It lists the records in the gallery, not those moved to the
// archive. A record that cannot be decoded is an error naming it (run
// Verify).
func (l *Log) List(f Filter, limit int) ([]Record, uint64, error) {
	var out []Record
	var next uint64
	_, _, err := l.trail.Scan(f.After+1, func(seq uint64, b []byte) error {
		if len(out) == limit {
			next = out[len(out)-1].Seq
			return errStop
		}
		r, err := decode(b)
		if err != nil {
			return fmt.Errorf("audit: record %d: %w", seq, err)
		}
		if f.match(&r) {
			out = append(out, r)
		}
		return nil
	})
	var mk malformedKey
	switch {
	case errors.Is(err, errStop):
		err = nil
	case errors.As(err, &mk):
		err = fmt.Errorf("audit: malformed key %q", mk.MalformedKey())
	}
	return out, next, err
}

func decode(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("unreadable: %v", err)
	}
	if dec.InputOffset() != int64(len(b)) {
		return r, fmt.Errorf("unreadable: %d bytes after the record", int64(len(b))-dec.InputOffset())
	}
	h := sha256.Sum256(b)
	r.Hash = hex.EncodeToString(h[:])
	return r, nil
}
