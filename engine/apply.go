package engine

// Applying the enrolment log of a cluster (issue 15).
//
// In a cluster every enrolment and deletion is a message of an ordered log
// (a NATS JetStream stream) with a position (logical shard, stream
// sequence), and every replica of the shard applies it to its own store and
// indexes with ApplyEnroll and ApplyDelete. These do what Enroll and Delete
// do, through the store's positioned writes (store/applied.go): the
// position is checked and recorded in the Badger transaction of the change,
// so a message delivered again changes nothing (ErrAlreadyApplied, of kind
// ErrExists) and never touches the index, and the applied positions survive
// restarts and backups.
//
// Extraction happens once, on the coordinating node (Enroll's templates,
// with ReturnTemplates): the log carries templates, so that replicas store
// identical templates and no replica pays for extraction. ApplyEnroll takes
// samples that are templates only (Sample.Template, or a FingerSample with
// only Template); anything else is refused as ErrInvalid. Source samples
// are therefore not kept on replicas (see Options' keeping of samples):
// re-templating a cluster needs them carried in the log too, later.
//
// A message is refused for good when it is malformed (ErrInvalid,
// ErrResourceExhausted) or its change does not fit the state (ErrExists,
// ErrNotFound): its position is recorded all the same, so the apply loop
// logs it and moves on. ErrIncompatible (a template of an algorithm this
// replica has not loaded) is NOT recorded: replicas configured differently
// must not silently diverge, so the loop should stop and say so. Other
// errors (ErrUnavailable, a cancelled context) are transient: the loop
// retries the message.
//
// A shard's messages must be applied in order and one at a time; shards
// may be applied concurrently. The per-subject lock orders an apply against
// a plain Enroll or Delete of the same id, as it orders those.

import (
	"context"
	"errors"

	"github.com/bordermatch/bordermatch/store"
)

// ApplyEnroll is Enroll applying the log message at pos (see the top of
// this file): req's samples must be templates.
func (s *Engine) ApplyEnroll(ctx context.Context, pos store.LogPosition, req EnrollRequest) (EnrollResult, error) {
	if err := ctx.Err(); err != nil {
		return EnrollResult{}, err
	}
	sub, fingers, res, err := s.prepareEnroll(ctx, req, enrolFromLog)
	if err != nil {
		return res, s.refused(pos, err)
	}
	unlock := s.lock(sub.ID)
	defer unlock()
	created, err := s.store.CreateAt(pos, sub)
	if err != nil {
		// The store's own validation (a watchlist name, the name's
		// length) refuses before it records the position.
		return res, s.refused(pos, kindOf("apply enrol", err))
	}
	return s.indexEnrolled(res, created, fingers)
}

// refused records pos for a message refused as malformed (ErrInvalid,
// ErrResourceExhausted) and returns err, or what recording failed with
// (ErrAlreadyApplied on redelivery). Other errors are returned as they
// are, with nothing recorded.
func (s *Engine) refused(pos store.LogPosition, err error) error {
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrResourceExhausted) {
		return err
	}
	if serr := s.store.SkipAt(pos); serr != nil {
		return kindOf("apply enrol", serr)
	}
	return err
}

// ApplyDelete is Delete applying the log message at pos. A missing subject
// is ErrNotFound, with the position recorded.
func (s *Engine) ApplyDelete(ctx context.Context, pos store.LogPosition, id string) (store.Subject, error) {
	if err := ctx.Err(); err != nil {
		return store.Subject{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	sub, err := s.store.DeleteAt(pos, id)
	if err != nil {
		return store.Subject{}, kindOf("apply delete", err)
	}
	s.unindex(sub.ID)
	return sub, nil
}

// SkipApplied records pos as applied without changing anything: for a log
// message that does not even decode into a request.
func (s *Engine) SkipApplied(pos store.LogPosition) error {
	return kindOf("apply", s.store.SkipAt(pos))
}

// Applied returns the last log sequence applied of shard, 0 if none.
func (s *Engine) Applied(shard int) (uint64, error) {
	seq, err := s.store.Applied(shard)
	return seq, kindOf("", err)
}

// AppliedAll returns the log position of every shard that has applied
// anything.
func (s *Engine) AppliedAll() (map[int]uint64, error) {
	m, err := s.store.AppliedAll()
	return m, kindOf("", err)
}

// DropShards removes from this replica every subject whose shard (by
// shardOf) is not in keep, and forgets the positions of the shards not
// kept: after a planned change of the shard map, a node holds only its
// partition's shards. It returns the subjects removed.
func (s *Engine) DropShards(ctx context.Context, shardOf func(id string) int, keep map[int]bool) (int, error) {
	applied, err := s.store.AppliedAll()
	if err != nil {
		return 0, kindOf("drop shards", err)
	}
	var forget []int
	for sh := range applied {
		if !keep[sh] {
			forget = append(forget, sh)
		}
	}
	removed, after := 0, ""
	for {
		ids, err := s.store.IDs(after, 1000)
		if err != nil {
			return removed, kindOf("drop shards", err)
		}
		if len(ids) == 0 {
			break
		}
		after = ids[len(ids)-1]
		for _, id := range ids {
			if keep[shardOf(id)] {
				continue
			}
			if _, err := s.Delete(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
				return removed, err
			}
			removed++
		}
	}
	// Positions last: a crash before this leaves them, and the walk above
	// runs again at the next start.
	if len(forget) > 0 {
		if err := s.store.ForgetApplied(forget); err != nil {
			return removed, kindOf("drop shards", err)
		}
	}
	return removed, nil
}
