package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// The enrolment stream.
const (
	// StreamName is the JetStream stream holding every enrolment and deletion.
	StreamName = "BM_ENROL"
	// SubjectPrefix + shard is a shard's subject: bm.enrol.0 … bm.enrol.255.
	SubjectPrefix = "bm.enrol."
	// DedupWindow is how long a request id is remembered: a retry with the
	// same id inside it is acknowledged with the first sequence, not stored.
	DedupWindow = 2 * time.Minute
)

// ShardSubject is the stream subject of a shard.
func ShardSubject(shard int) string { return SubjectPrefix + strconv.Itoa(shard) }

// Log is the replicated enrolment log: one JetStream stream, one subject per
// logical shard, totally ordered by the stream sequence.
type Log struct {
	js     jetstream.JetStream
	shards int
	log    zerolog.Logger
}

// StreamConfig is the enrolment stream's configuration for cfg: file
// storage, cfg.StreamReplicas replicas, no limits (nothing is ever discarded
// to make room; were a limit set, new writes would be refused), purges
// denied, a 2-minute dedup window, 16 MiB messages.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Bordermatch enrolment log: one subject per logical shard",
		Subjects:    []string{SubjectPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.StreamReplicas,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		MaxMsgSize:  MaxMessageSize,
		Duplicates:  DedupWindow,
		DenyPurge:   true,
	}
}

// Open waits until JetStream answers (a meta leader is elected; bounded by
// cfg.ReadyTimeout and ctx), then creates the stream or updates it to
// StreamConfig(cfg).
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := WaitReady(ctx, js); err != nil {
		return nil, err
	}
	// The stream and the buckets every node uses are made here, once per
	// node start, each create retried: right after the meta leader answers
	// a stream's peers may not all be current, and a request the leader
	// drops meanwhile is never answered.
	assets := []struct {
		what string
		make func(context.Context) error
	}{
		{"stream " + StreamName, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg))
			return err
		}},
		{"bucket " + ShardMapBucket, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateKeyValue(ctx, ShardMapBucketConfig(cfg))
			return err
		}},
		{"bucket " + BackupBucket, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateObjectStore(ctx, BackupBucketConfig(cfg))
			return err
		}},
	}
	for _, a := range assets {
		if err := retryJS(ctx, a.make); err != nil {
			return nil, fmt.Errorf("cluster: %s: %w", a.what, err)
		}
	}
	return &Log{js: js, shards: cfg.Shards, log: cfg.Logger}, nil
}

// retryJS calls a JetStream API call until it succeeds or ctx ends, each
// attempt bounded by a few seconds.
func retryJS(ctx context.Context, call func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := call(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReady polls JetStream's account info until the meta leader answers or
// ctx ends (an immediate call after start times out while servers elect).
func WaitReady(ctx context.Context, js jetstream.JetStream) error {
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: JetStream not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Append publishes an encoded message (Encode) on the shard's subject with
// Nats-Msg-Id = requestID and returns its stream sequence once a quorum of
// the stream's replicas has fsynced it. A retry with the same request id
// inside DedupWindow returns the first append's sequence and stores nothing.
// The message must decode and belong to the shard (ShardOf its subject id).
func (l *Log) Append(ctx context.Context, shard int, requestID string, payload []byte) (uint64, error) {
	if shard < 0 || shard >= l.shards {
		return 0, fmt.Errorf("cluster: append: shard %d, want 0..%d", shard, l.shards-1)
	}
	if requestID == "" {
		return 0, errors.New("cluster: append: empty request id (retries could not be deduplicated)")
	}
	m, err := Decode(payload)
	if err != nil {
		return 0, fmt.Errorf("cluster: append: %w", err)
	}
	if s := ShardOf(m.SubjectID, l.shards); s != shard {
		return 0, fmt.Errorf("cluster: append: subject %q is in shard %d, not %d", m.SubjectID, s, shard)
	}
	ack, err := l.js.Publish(ctx, ShardSubject(shard), payload,
		jetstream.WithMsgID(requestID), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return 0, fmt.Errorf("cluster: append to shard %d: %w", shard, err)
	}
	return ack.Sequence, nil
}

// LastSequence is the stream's last sequence (0 when empty).
func (l *Log) LastSequence(ctx context.Context) (uint64, error) {
	st, err := l.js.Stream(ctx, StreamName)
	if err != nil {
		return 0, fmt.Errorf("cluster: stream %s: %w", StreamName, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: stream %s: %w", StreamName, err)
	}
	return info.State.LastSeq, nil
}

// Subscribe delivers the messages of the given shards with stream sequence
// ≥ from (from 0 or 1: from the start), in stream order, each once, to
// apply; it blocks until ctx ends (returning ctx's error) or apply returns an
// error (returning it). It uses an ordered consumer, which the client
// re-creates from the last delivered sequence after a server or leader
// failure, so delivery resumes without gaps or repeats. A message that does
// not decode, or whose subject id is not in the shard it was published on, is
// logged and skipped.
func (l *Log) Subscribe(ctx context.Context, shards []int, from uint64, apply func(seq uint64, shard int, msg Message) error) error {
	return l.SubscribeEach(ctx, shards, from, func(seq uint64, shard int, m Message, bad error) error {
		if bad != nil {
			l.log.Error().Err(bad).Uint64("seq", seq).Int("shard", shard).Msg("cluster: malformed log message, skipped")
			return nil
		}
		return apply(seq, shard, m)
	})
}

// SubscribeEach is Subscribe that also hands apply the messages of the
// shards that do not decode or are in the wrong shard, with bad (wrapping
// ErrMalformed) set, so that an apply loop can record their positions as
// applied. (Only a message without metadata or on a subject that names no
// shard is still logged and skipped here: it has no position.)
func (l *Log) SubscribeEach(ctx context.Context, shards []int, from uint64, apply func(seq uint64, shard int, msg Message, bad error) error) error {
	if len(shards) == 0 {
		return errors.New("cluster: subscribe: no shards")
	}
	filters := make([]string, len(shards))
	for i, s := range shards {
		if s < 0 || s >= l.shards {
			return fmt.Errorf("cluster: subscribe: shard %d, want 0..%d", s, l.shards-1)
		}
		filters[i] = ShardSubject(s)
	}
	oc := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		oc.DeliverPolicy, oc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := l.js.OrderedConsumer(ctx, StreamName, oc)
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("cluster: subscribe: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			l.log.Error().Err(err).Str("subject", msg.Subject()).Msg("cluster: log message without metadata, skipped")
			continue
		}
		seq := meta.Sequence.Stream
		shard, err := strconv.Atoi(strings.TrimPrefix(msg.Subject(), SubjectPrefix))
		if err != nil || shard < 0 || shard >= l.shards {
			l.log.Error().Uint64("seq", seq).Str("subject", msg.Subject()).Msg("cluster: log message on an unknown subject, skipped")
			continue
		}
		m, bad := Decode(msg.Data())
		if bad == nil {
			if s := ShardOf(m.SubjectID, l.shards); s != shard {
				bad = malformed("subject %q is in shard %d, published on %d", m.SubjectID, s, shard)
			}
		}
		if bad != nil {
			m = Message{}
		}
		if err := apply(seq, shard, m, bad); err != nil {
			return err
		}
	}
}

// JetStream is the log's JetStream context, for the shard map's bucket
// (shardmap.go) on the same connection.
func (l *Log) JetStream() jetstream.JetStream { return l.js }
