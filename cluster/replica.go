package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
)

// ErrReplicaStopped is wrapped by Run's error when a message cannot be
// applied by this replica at all (a template of an algorithm it has not
// loaded, a request of a newer version): Run stops rather than skip the
// message and diverge from its peers; retrying will not help, reconfiguring
// or upgrading the node will.
var ErrReplicaStopped = errors.New("cluster: replica stopped")

// Replica applies the enrolment log of some shards to one engine, exactly
// once in effect: the engine records each message's position in the same
// Badger transaction as its change (engine/apply.go).
type Replica struct {
	log    *Log
	eng    *engine.Engine
	shards []int
	logger zerolog.Logger

	running atomic.Bool
	// from, when set (tests), is the first sequence Run asks for instead
	// of the smallest applied one + 1.
	from uint64

	mu      sync.Mutex
	applied map[int]uint64 // last position handled per shard, as the engine has it
	changed chan struct{}  // closed and replaced whenever applied moves

	stats replicaCounters
}

type replicaCounters struct {
	applied, skipped, refused, malformed atomic.Uint64
}

// ReplicaStats counts what Run did with the messages it was handed since
// the replica was made.
type ReplicaStats struct {
	// Applied: enrolments and deletions that changed the engine.
	Applied uint64
	// Skipped: messages this replica had applied already (redelivery).
	Skipped uint64
	// Refused: messages the engine refused for good (invalid, exists,
	// not found), their positions recorded.
	Refused uint64
	// Malformed: messages that did not decode, their positions recorded.
	Malformed uint64
}

// NewReplica returns a replica applying the log's messages of shards to
// eng. Call Run to apply.
func NewReplica(l *Log, eng *engine.Engine, shards []int, logger zerolog.Logger) (*Replica, error) {
	if len(shards) == 0 {
		return nil, errors.New("cluster: replica: no shards")
	}
	own := slices.Clone(shards)
	slices.Sort(own)
	own = slices.Compact(own)
	for _, s := range own {
		if s < 0 || s >= l.shards {
			return nil, fmt.Errorf("cluster: replica: shard %d, want 0..%d", s, l.shards-1)
		}
	}
	return &Replica{log: l, eng: eng, shards: own, logger: logger, changed: make(chan struct{})}, nil
}

// Shards are the replica's shards, ascending.
func (r *Replica) Shards() []int { return slices.Clone(r.shards) }

// Stats returns the replica's counters.
func (r *Replica) Stats() ReplicaStats {
	return ReplicaStats{Applied: r.stats.applied.Load(), Skipped: r.stats.skipped.Load(),
		Refused: r.stats.refused.Load(), Malformed: r.stats.malformed.Load()}
}

func (r *Replica) owns(shard int) bool {
	_, ok := slices.BinarySearch(r.shards, shard)
	return ok
}

// Run applies the log to the engine until ctx ends or a message cannot be
// applied now. It subscribes from the smallest applied sequence of its
// shards + 1 (a message of a shard that is further on is skipped without
// touching the engine) and, per message:
//   - already applied: skipped;
//   - not decoding (envelope or request), or a request for another subject
//     than the envelope's: its position is recorded (SkipApplied) and it is
//     logged;
//   - refused for good by the engine (ErrInvalid, ErrResourceExhausted,
//     ErrExists, ErrNotFound): the engine has recorded its position; logged;
//   - ErrIncompatible, or a request of a newer version: Run returns an error
//     wrapping ErrReplicaStopped (and the cause);
//   - any other error (ErrUnavailable, a cancelled context, ErrBusy):
//     Run returns it; calling Run again resumes with that message.
//
// Only one Run at a time.
func (r *Replica) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("cluster: replica: Run is running already")
	}
	defer r.running.Store(false)
	all, err := r.eng.AppliedAll()
	if err != nil {
		return fmt.Errorf("cluster: replica: %w", err)
	}
	// A shard the stream holds no message of does not hold the start
	// back: otherwise one empty shard would replay the partition's whole
	// log at every start. The stream's last sequence is read first: a
	// shard still empty after it will only ever get messages after it.
	last, lerr := r.log.LastSequence(ctx)
	var lasts []uint64
	if lerr == nil {
		lasts, lerr = r.log.lastOfShards(ctx, r.shards)
	}
	r.mu.Lock()
	r.applied = make(map[int]uint64, len(r.shards))
	from := uint64(0)
	if lerr == nil {
		from = last
	}
	for i, s := range r.shards {
		r.applied[s] = all[s]
		if lerr == nil && lasts[i] == 0 {
			continue
		}
		if lerr != nil && i == 0 || all[s] < from {
			from = all[s]
		}
	}
	r.mu.Unlock()
	from++
	if r.from != 0 {
		from = r.from
	}
	r.logger.Info().Ints("shards", r.shards).Uint64("from", from).Msg("cluster: replica applying the log")
	return r.log.SubscribeEach(ctx, r.shards, from, func(seq uint64, shard int, m Message, bad error) error {
		return r.handle(ctx, store.LogPosition{Shard: shard, Seq: seq}, m, bad)
	})
}

func (r *Replica) handle(ctx context.Context, pos store.LogPosition, m Message, bad error) error {
	r.mu.Lock()
	done := pos.Seq <= r.applied[pos.Shard]
	r.mu.Unlock()
	if done {
		r.stats.skipped.Add(1)
		return nil
	}
	var req engine.EnrollRequest
	if bad == nil && m.Kind == KindEnrol {
		req, bad = DecodeEnroll(m.Request)
		if errors.Is(bad, ErrNewerRequest) {
			return fmt.Errorf("%w: shard %d seq %d: %w (upgrade this node)", ErrReplicaStopped, pos.Shard, pos.Seq, bad)
		}
		if bad == nil && req.SubjectID != m.SubjectID {
			bad = malformed("request for subject %q in a message for %q", req.SubjectID, m.SubjectID)
		}
	}
	if bad == nil && m.Kind == KindDelete && len(m.Request) > 0 {
		bad = malformed("delete with a request of %d bytes", len(m.Request))
	}
	var err error
	switch {
	case bad != nil:
		err = r.eng.SkipApplied(pos)
		if err == nil {
			r.stats.malformed.Add(1)
			r.logger.Error().Err(bad).Int("shard", pos.Shard).Uint64("seq", pos.Seq).Msg("cluster: malformed log message, skipped")
		}
	case m.Kind == KindEnrol:
		_, err = r.eng.ApplyEnroll(ctx, pos, req)
	default:
		_, err = r.eng.ApplyDelete(ctx, pos, m.SubjectID)
	}
	switch {
	case err == nil:
		if bad == nil {
			r.stats.applied.Add(1)
		}
	case errors.Is(err, engine.ErrAlreadyApplied):
		r.stats.skipped.Add(1)
	case errors.Is(err, engine.ErrIncompatible):
		return fmt.Errorf("%w: shard %d seq %d (%s %q): %w (is this node configured like its peers?)",
			ErrReplicaStopped, pos.Shard, pos.Seq, m.Kind, m.SubjectID, err)
	case errors.Is(err, engine.ErrInvalid), errors.Is(err, engine.ErrResourceExhausted),
		errors.Is(err, engine.ErrExists), errors.Is(err, engine.ErrNotFound):
		r.stats.refused.Add(1)
		r.logger.Warn().Err(err).Int("shard", pos.Shard).Uint64("seq", pos.Seq).Str("kind", m.Kind.String()).
			Str("subject", m.SubjectID).Msg("cluster: log message refused, skipped")
	default:
		return fmt.Errorf("cluster: replica: shard %d seq %d: %w", pos.Shard, pos.Seq, err)
	}
	r.mu.Lock()
	r.applied[pos.Shard] = pos.Seq
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// WaitApplied waits until the replica has applied shard up to seq (a
// consistency token from EnrollThroughLog): read-your-writes. It returns
// ctx's error if ctx ends first. Run must be running for it to progress.
func (r *Replica) WaitApplied(ctx context.Context, shard int, seq uint64) error {
	if !r.owns(shard) {
		return fmt.Errorf("cluster: replica: shard %d is not this replica's", shard)
	}
	for {
		// What the replica has applied in full, index included: the
		// store records a position in the transaction of its change, a
		// moment before the change reaches the index, so the store's
		// position is only used before Run starts (when the index was
		// loaded from the store).
		r.mu.Lock()
		ch := r.changed
		got, running := r.applied[shard], r.applied != nil
		r.mu.Unlock()
		if !running {
			var err error
			if got, err = r.eng.Applied(shard); err != nil {
				return fmt.Errorf("cluster: replica: %w", err)
			}
		}
		if got >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("cluster: replica: shard %d applied %d, waiting for %d: %w", shard, got, seq, ctx.Err())
		}
	}
}

// CatchUp waits until every shard of the replica has applied the last
// message the stream held of it when CatchUp was called: a restarted node
// calls it (with Run running) before answering searches.
func (r *Replica) CatchUp(ctx context.Context) error {
	targets, err := r.log.lastOfShards(ctx, r.shards)
	if err != nil {
		return err
	}
	for i, s := range r.shards {
		if err := r.WaitApplied(ctx, s, targets[i]); err != nil {
			return err
		}
	}
	return nil
}

// Lag returns, per shard of the replica, how many stream sequences its last
// message is ahead of what the engine has applied (0: caught up): the
// applied-sequence lag metric.
func (r *Replica) Lag(ctx context.Context) (map[int]uint64, error) {
	targets, err := r.log.lastOfShards(ctx, r.shards)
	if err != nil {
		return nil, err
	}
	lag := make(map[int]uint64, len(r.shards))
	for i, s := range r.shards {
		got, err := r.eng.Applied(s)
		if err != nil {
			return nil, fmt.Errorf("cluster: replica: %w", err)
		}
		if targets[i] > got {
			lag[s] = targets[i] - got
		} else {
			lag[s] = 0
		}
	}
	return lag, nil
}

// lastOfShards returns the stream sequence of the last message of each
// shard (0 for a shard without messages).
func (l *Log) lastOfShards(ctx context.Context, shards []int) ([]uint64, error) {
	st, err := l.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", StreamName, err)
	}
	out := make([]uint64, len(shards))
	for i, s := range shards {
		m, err := st.GetLastMsgForSubject(ctx, ShardSubject(s))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("cluster: last message of shard %d: %w", s, err)
		default:
			out[i] = m.Sequence
		}
	}
	return out, nil
}
