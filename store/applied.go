package store

// Log positions: what a replica of a cluster has applied of the ordered
// enrolment log (a NATS JetStream stream, issue 15).
//
// The gallery is divided into logical shards; every change of a shard comes
// to a replica as a message with a position (shard, stream sequence), and
// the replica records the last position it applied per shard under
//
//	l/<shard:4 BE>           → the sequence applied last, 8 bytes BE
//
// in the same Badger transaction as the change itself (CreateAt, DeleteAt).
// A change is applied only if its sequence is above the one recorded, so a
// message the log delivers again (after a crash between the commit and the
// acknowledgement, or on a replay from an older position) changes nothing
// and fails with ErrAlreadyApplied: exactly once in effect.
//
// Sequences of one shard need not be contiguous (the stream is shared by
// every shard, so a shard sees every n-th sequence), only increasing. So a
// shard's messages must be applied in order and one at a time: applying 7
// before 5 would record 7 and refuse 5 as already applied. Different shards
// may be applied concurrently.
//
// A change the store refuses on the state it finds (CreateAt of an id that
// exists, DeleteAt of one that does not) still records its position, in
// the same transaction, and returns the refusal (ErrExists, ErrNotFound):
// every replica refuses the same message on the same state, and a refused
// message does not come back on redelivery. A message that never reaches a
// change (undecodable, invalid) is recorded with SkipAt. Either way a bad
// message cannot wedge the apply loop.
//
// Positioned writes do not go through the group commit of Create
// (commit.go): each is its own transaction, with its own sync. A shard's
// apply loop is sequential anyway, so there is nothing of one shard to
// group; grouping across shards is left for when it is measured to matter.
// Badger's conflict detection orders them against Create, Delete and each
// other exactly as it orders those (both read the subject key and the
// position key they decide on).
//
// Positions are in backups (backup.go, format version 3 when there are
// any): a backup is one snapshot, so the positions it holds are exactly
// those its subjects reflect, and a replica restored from a peer's backup
// resumes the log from there.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrAlreadyApplied: the log position is at or below the one the shard has
// applied; nothing was changed.
var ErrAlreadyApplied = errors.New("store: log position already applied")

// LogPosition is a message's place in the enrolment log: its logical shard
// and its stream sequence (1 or more).
type LogPosition struct {
	Shard int
	Seq   uint64
}

func (p LogPosition) String() string { return fmt.Sprintf("shard %d seq %d", p.Shard, p.Seq) }

const appliedPrefix = "l/"

func validShard(shard int) error {
	if shard < 0 || uint64(shard) > math.MaxUint32 {
		return invalid("log shard %d outside 0..%d", shard, uint32(math.MaxUint32))
	}
	return nil
}

func (p LogPosition) validate() error {
	if err := validShard(p.Shard); err != nil {
		return err
	}
	if p.Seq == 0 {
		return invalid("log sequence 0 (sequences start at 1)")
	}
	return nil
}

func appliedKey(shard int) []byte {
	return binary.BigEndian.AppendUint32([]byte(appliedPrefix), uint32(shard))
}

// splitAppliedKey returns the shard of a position key.
func splitAppliedKey(k []byte) (int, bool) {
	if len(k) != len(appliedPrefix)+4 || string(k[:len(appliedPrefix)]) != appliedPrefix {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(k[len(appliedPrefix):])), true
}

func decodeSeq(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("store: log position of %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// appliedIn reads shard's position in txn (0: none), putting its key in
// the transaction's read set.
func appliedIn(txn *badger.Txn, shard int) (uint64, error) {
	item, err := txn.Get(appliedKey(shard))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = item.Value(func(v []byte) error {
		seq, err = decodeSeq(v)
		return err
	})
	return seq, err
}

// advance records pos in txn if it is beyond the shard's position, else
// fails with ErrAlreadyApplied.
func advance(txn *badger.Txn, pos LogPosition) error {
	cur, err := appliedIn(txn, pos.Shard)
	if err != nil {
		return fmt.Errorf("store: reading log position of shard %d: %w", pos.Shard, err)
	}
	if pos.Seq <= cur {
		return fmt.Errorf("%w: %v (shard has applied %d)", ErrAlreadyApplied, pos, cur)
	}
	return txn.Set(appliedKey(pos.Shard), binary.BigEndian.AppendUint64(nil, pos.Seq))
}

// Applied returns the last sequence applied of shard, 0 if none.
func (s *Store) Applied(shard int) (uint64, error) {
	if err := validShard(shard); err != nil {
		return 0, err
	}
	var seq uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		seq, err = appliedIn(txn, shard)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: reading log position of shard %d: %w", shard, err)
	}
	return seq, nil
}

// AppliedAll returns the position of every shard that has applied
// anything, from one snapshot.
func (s *Store) AppliedAll() (map[int]uint64, error) {
	out := map[int]uint64{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iterOpts([]byte(appliedPrefix)))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			shard, ok := splitAppliedKey(item.Key())
			if !ok {
				return fmt.Errorf("store: malformed log position key %q", item.Key())
			}
			if err := item.Value(func(v []byte) error {
				seq, err := decodeSeq(v)
				out[shard] = seq
				return err
			}); err != nil {
				return fmt.Errorf("store: log position of shard %d: %w", shard, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SkipAt records pos as applied without changing any subject: for a
// message that is refused before it reaches the store. It fails with
// ErrAlreadyApplied if pos is not beyond the shard's position.
func (s *Store) SkipAt(pos LogPosition) error {
	if err := pos.validate(); err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error { return advance(txn, pos) })
}

// CreateAt is Create applying the log message at pos: in one durable
// transaction it checks that pos is beyond the shard's position
// (ErrAlreadyApplied otherwise, nothing changed), stores the subject and
// records pos. If the id exists it records pos all the same and fails with
// ErrExists. A subject that fails validation fails with ErrInvalid and
// changes nothing, position included (see SkipAt).
//
// If sub.Created is set (the coordinating node's clock, carried in the
// log) it is the subject's Created and Updated, so that every replica
// stores the same record; otherwise now.
func (s *Store) CreateAt(pos LogPosition, sub Subject) (Subject, error) {
	if err := pos.validate(); err != nil {
		return Subject{}, err
	}
	now := sub.Created
	if now.IsZero() {
		now = time.Now()
	}
	p, err := newCreateTime(sub, now)
	if err != nil {
		return Subject{}, err
	}
	var refused error
	err = s.update(func(txn *badger.Txn) error {
		refused = nil
		if err := advance(txn, pos); err != nil {
			return err
		}
		switch _, err := txn.Get(p.key); {
		case err == nil:
			refused = fmt.Errorf("%w: %q", ErrExists, p.sub.ID)
			return nil // the position is recorded all the same
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		return setSubject(txn, p)
	})
	switch {
	case errors.Is(err, ErrAlreadyApplied):
		return Subject{}, err
	case err != nil:
		return Subject{}, fmt.Errorf("store: creating %q at %v: %w", p.sub.ID, pos, err)
	case refused != nil:
		return Subject{}, refused
	}
	return *p.sub, nil
}

// DeleteAt is Delete applying the log message at pos: in one durable
// transaction it checks that pos is beyond the shard's position
// (ErrAlreadyApplied otherwise, nothing changed), removes the subject and
// records pos. If there is no such subject it records pos all the same and
// fails with ErrNotFound.
func (s *Store) DeleteAt(pos LogPosition, id string) (Subject, error) {
	if err := pos.validate(); err != nil {
		return Subject{}, err
	}
	var sub Subject
	var refused error
	err := s.update(func(txn *badger.Txn) error {
		refused = nil
		if err := advance(txn, pos); err != nil {
			return err
		}
		var err error
		if validID(id) != nil {
			refused = fmt.Errorf("%w: %q", ErrNotFound, id)
			return nil
		}
		sub, err = deleteSubject(txn, id, true)
		if errors.Is(err, ErrNotFound) {
			refused = err
			return nil
		}
		return err
	})
	switch {
	case errors.Is(err, ErrAlreadyApplied):
		return Subject{}, err
	case err != nil:
		return Subject{}, fmt.Errorf("store: deleting %q at %v: %w", id, pos, err)
	case refused != nil:
		return Subject{}, refused
	}
	s.deletes.Add(1) // for Purge (gc.go)
	return sub, nil
}

// ForgetApplied removes the recorded positions of shards: a replica that
// no longer holds them (the shard map moved them away) must replay them
// from the start should they ever come back.
func (s *Store) ForgetApplied(shards []int) error {
	for _, sh := range shards {
		if err := validShard(sh); err != nil {
			return err
		}
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, sh := range shards {
			if err := txn.Delete(appliedKey(sh)); err != nil {
				return err
			}
		}
		return nil
	})
}
