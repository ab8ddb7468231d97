package store

// When deleted bytes leave the disk.
//
// Delete writes tombstones; the index forgets the subject at once, and no
// read returns it again. The bytes themselves stay in the data directory
// until Badger rewrites the files that hold them:
//
//   - Records and templates are far below Badger's ValueThreshold, so they
//     live in the LSM tree next to their keys, and in the memtable's
//     write-ahead log (*.mem) until the memtable is flushed into a level-0
//     table (*.sst). The value log (*.vlog) holds only values above the
//     threshold, i.e. none of ours (kept samples are stored in chunks below
//     it for that reason, see samples.go);
//     RunValueLogGC below reclaims a deleted subject's.
//   - A compaction that merges the tombstone with the older version drops
//     the older version (and, at the bottom level, the tombstone), writes new
//     tables and unlinks the old ones. Left to itself Badger compacts when a
//     level outgrows its target, which in a small or quiet gallery may be
//     never.
//
// Purge forces it: it flushes the memtables (deleting their logs) and
// flattens the tree into one level, so every tombstone meets every older
// version of its key. What the file system does with unlinked blocks is out
// of Badger's hands (SSD wear levelling keeps copies a process cannot
// reach); that is what encryption at rest is for. Encryption does not make a
// single deleted subject unreadable by itself: Badger keeps every data key,
// so a copy of an old table plus the master key still decrypts. Only Purge
// (or destroying the master key, for the whole gallery) does.
//
// A read transaction open while Purge runs (a backup in progress) pins the
// versions it can see; they go at the next Purge.

import (
	"errors"
	"fmt"
	"runtime"

	badger "github.com/dgraph-io/badger/v4"
)

// purgeMarker is written and then dropped by Purge: DropPrefix is the only
// public Badger call that flushes the memtables to tables, and it needs a key
// to drop.
var purgeMarker = []byte("meta/purge")

// dropPrefix is DB.DropPrefix with this package's writes held off.
func (s *Store) dropPrefix(p ...[]byte) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	return s.db.DropPrefix(p...)
}

// PurgeStats says what a Purge did.
type PurgeStats struct {
	// LSMBytes and VlogBytes are the sizes of the tree and the value log
	// after the purge.
	LSMBytes, VlogBytes int64
	// VlogFilesRewritten counts value log files the value log GC rewrote.
	VlogFilesRewritten int
}

// Purge removes the bytes of deleted subjects from the data directory (see
// above). It runs concurrently with reads and writes, which it slows: writes
// pause while the memtables are flushed. Only one Purge runs at a time.
func (s *Store) Purge() (PurgeStats, error) {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	var st PurgeStats
	if s.db.Opts().InMemory {
		return st, nil
	}
	deletes := s.deletes.Load()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(purgeMarker, nil) }); err != nil {
		return st, fmt.Errorf("store: purge: %w", err)
	}
	if err := s.dropPrefix(purgeMarker); err != nil {
		return st, fmt.Errorf("store: purge: flushing memtables: %w", err)
	}
	if err := s.db.Flatten(max(1, runtime.NumCPU()/2)); err != nil {
		return st, fmt.Errorf("store: purge: flattening: %w", err)
	}
	for {
		err := s.db.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("store: purge: value log GC: %w", err)
		}
		st.VlogFilesRewritten++
	}
	s.deletes.Add(-deletes)
	st.LSMBytes, st.VlogBytes = s.db.Size()
	return st, nil
}

// DeletesSincePurge counts the subjects deleted since the last Purge began,
// so a caller can purge only when there is something to purge.
func (s *Store) DeletesSincePurge() int64 { return s.deletes.Load() }
