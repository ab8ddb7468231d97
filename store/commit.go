package store

// Group commit of creates.
//
// With SyncWrites, Badger syncs the memtable's write-ahead log once per write
// request, that is once per committed transaction (DB.writeToLSM), even when
// its write goroutine hands several concurrent transactions to the disk
// together. One transaction per Create therefore costs one sync per
// subject, and concurrent enrolments queue behind each other's syncs.
//
// So Create does not commit itself: it hands its prepared subject to the
// committer goroutine and waits. The committer takes the first waiting
// create, adds every other create that queued meanwhile (that is, during the
// previous group's sync) up to a bound, and writes them all in one Badger
// transaction: one write request, one WAL sync. Each caller is answered once
// that transaction is on disk. A lone writer is committed as soon as it
// arrives: there is no timer, the group is whatever was waiting.
//
// SyncWrites stays on: durability is Badger's own (the transaction's entries
// and its commit marker are in the synced WAL before Commit returns, and
// replay drops a transaction without its marker), rather than a db.Sync of
// our own that would have to be proven against memtable rotation. Deletes
// keep their own durable transaction.
//
// Within a group each subject is decided on its own: an id already stored,
// or taken by an earlier create of the same group, gets ErrExists exactly as
// it would alone, and its entries are left out; the others are written.
// Nothing of a group is visible until the whole transaction commits.
//
// Ordering against other writes of the same id is Badger's serialisable
// transactions': the group's transaction reads every subject key it decides
// on, so a delete (or anything else) committed on one of those keys after
// the group's snapshot makes the group conflict, and it is decided again on
// a fresh snapshot.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrClosed: the store has been closed.
var ErrClosed = errors.New("store: closed")

// maxGroup bounds the creates of one group, so that one group's
// transaction, and the wait of the callers at its end, stay short.
const maxGroup = 1024

// entryOverhead is what Badger counts for an entry beyond its key and value
// (txn.checkSize: metas and the version), rounded up.
const entryOverhead = 16

// pendingCreate is one Create waiting for its group to commit.
type pendingCreate struct {
	sub     *Subject // prepared, timestamps set
	key     []byte
	rec     []byte
	enc     [][]byte
	samples [][]byte // encoded kept samples
	entries int64
	bytes   int64
	done    chan error // buffered: the committer never waits for a caller
}

func newPendingCreate(sub *Subject, rec []byte, enc [][]byte) *pendingCreate {
	p := &pendingCreate{sub: sub, key: subjectKey(sub.ID), rec: rec, enc: enc, done: make(chan error, 1)}
	p.entries = int64(1 + len(enc) + len(sub.Watchlists))
	p.bytes = int64(len(p.key)+len(rec)) + entryOverhead
	for i, b := range enc {
		p.bytes += int64(len(templateKey(sub.ID, i))+len(b)) + entryOverhead
	}
	for _, w := range sub.Watchlists {
		p.bytes += int64(len(watchlistKey(w, sub.ID))) + entryOverhead
	}
	return p
}

// addSamples adds the encoded samples to write with the subject, as
// chunks (samples.go).
func (p *pendingCreate) addSamples(samples [][]byte) {
	p.samples = samples
	for i, b := range samples {
		for part, c := range sampleChunks(b) {
			p.entries++
			p.bytes += int64(len(sampleKey(p.sub.ID, i, part))+len(c)) + entryOverhead
		}
	}
}

// committer gathers concurrent creates into groups.
type committer struct {
	queue chan *pendingCreate
	// mu is held shared by a Create handing over its subject, and
	// exclusively by close, so that queue is closed only when no send can
	// be under way.
	mu     sync.RWMutex
	closed bool
	done   chan struct{}

	// A group stays under these, half of Badger's transaction limits.
	maxEntries, maxBytes int64
	commit               func([]*pendingCreate)

	// groups and grouped count what run committed (CommitStats).
	groups, grouped atomic.Int64
}

func newCommitter(maxEntries, maxBytes int64, commit func([]*pendingCreate)) *committer {
	c := &committer{
		queue:      make(chan *pendingCreate, 2*maxGroup),
		done:       make(chan struct{}),
		maxEntries: maxEntries / 2,
		maxBytes:   maxBytes / 2,
		commit:     commit,
	}
	go c.run()
	return c
}

// submit queues p and waits for its group to be durable. After close it
// fails with ErrClosed.
func (c *committer) submit(p *pendingCreate) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.queue <- p
	c.mu.RUnlock()
	return <-p.done
}

// close stops taking creates, commits those already queued, answers their
// callers and returns when the committer has stopped.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	var next *pendingCreate // taken from the queue but over the last group's bounds
	for {
		first := next
		next = nil
		if first == nil {
			var ok bool
			if first, ok = <-c.queue; !ok {
				return
			}
		}
		group := []*pendingCreate{first}
		entries, bytes := first.entries, first.bytes
	collect:
		for len(group) < maxGroup {
			select {
			case p, ok := <-c.queue:
				if !ok {
					break collect
				}
				if entries+p.entries > c.maxEntries || bytes+p.bytes > c.maxBytes {
					next = p
					break collect
				}
				group = append(group, p)
				entries += p.entries
				bytes += p.bytes
			default:
				break collect
			}
		}
		c.groups.Add(1)
		c.grouped.Add(int64(len(group)))
		c.commit(group)
	}
}

// CommitStats counts the groups of creates committed since Open and the
// creates in them; Creates/Groups is the mean group size.
type CommitStats struct {
	Groups, Creates int64
}

// CommitStats returns the group commit counts.
func (s *Store) CommitStats() CommitStats {
	return CommitStats{Groups: s.creates.groups.Load(), Creates: s.creates.grouped.Load()}
}

// commitGroup writes a group in one transaction and answers every caller.
func (s *Store) commitGroup(group []*pendingCreate) {
	errs := make([]error, len(group))
	err := s.update(func(txn *badger.Txn) error {
		clear(errs) // a retry after a conflict decides everything afresh
		taken := make(map[string]struct{}, len(group))
		for i, p := range group {
			id := p.sub.ID
			if _, dup := taken[id]; dup {
				errs[i] = fmt.Errorf("%w: %q", ErrExists, id)
				continue
			}
			// The read puts the key in the transaction's read set: see
			// the comment at the top of this file.
			switch _, err := txn.Get(p.key); {
			case err == nil:
				errs[i] = fmt.Errorf("%w: %q", ErrExists, id)
				continue
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
			taken[id] = struct{}{}
			if err := setSubject(txn, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 && (errors.Is(err, badger.ErrTxnTooBig) || errors.Is(err, badger.ErrConflict)) {
		// Over Badger's limits after all (the size estimate is Badger's
		// own, so this should not happen), or conflicting every time:
		// halve the group rather than fail callers who would succeed in
		// a smaller one.
		half := len(group) / 2
		s.commitGroup(group[:half])
		s.commitGroup(group[half:])
		return
	}
	for i, p := range group {
		switch {
		case err != nil:
			p.done <- fmt.Errorf("store: creating %q: %w", p.sub.ID, err)
		default:
			p.done <- errs[i]
		}
	}
}

// setSubject writes a subject's record, templates and watchlist entries.
func setSubject(txn *badger.Txn, p *pendingCreate) error {
	if err := txn.Set(p.key, p.rec); err != nil {
		return err
	}
	for i, b := range p.enc {
		if err := txn.Set(templateKey(p.sub.ID, i), b); err != nil {
			return err
		}
	}
	for i, b := range p.samples {
		for part, c := range sampleChunks(b) {
			if err := txn.Set(sampleKey(p.sub.ID, i, part), c); err != nil {
				return err
			}
		}
	}
	for _, w := range p.sub.Watchlists {
		if err := txn.Set(watchlistKey(w, p.sub.ID), nil); err != nil {
			return err
		}
	}
	return nil
}
