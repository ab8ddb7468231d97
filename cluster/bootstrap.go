package cluster

// Bootstrapping a new replica (issue 15): instead of replaying the whole
// enrolment log, a node with a brand-new data directory copies a live peer's
// backup (engine.Backup: the gallery and the applied log position of every
// shard, one consistent snapshot) and then runs its Replica, which resumes
// from the restored positions and applies only what came after the backup.
//
// The copy goes through a JetStream Object Store bucket (BackupBucket): the
// new node requests bm.backup.<partition>; one replica of the partition (a
// queue group) streams its backup into an object under a unique name and
// replies with the name; the new node reads the object into its engine's
// Restore and deletes it. Objects a bootstrap abandoned expire after
// BackupTTL.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/store"
)

// Backup transfer settings.
const (
	// BackupSubjectPrefix + partition is the subject a partition's replicas
	// answer backup requests on: bm.backup.0, bm.backup.1, …
	BackupSubjectPrefix = "bm.backup."
	// BackupBucket is the Object Store bucket backups are copied through.
	BackupBucket = "BM_BACKUPS"
	// BackupTTL is how long a backup object lives: one a bootstrap did not
	// delete (it failed, its node died) goes away by itself.
	BackupTTL = time.Hour
	// DefaultBackupTimeout bounds one backup written by a BackupServer.
	DefaultBackupTimeout = BackupTTL
)

// ErrNoReplica is wrapped by Bootstrap's error when no replica of the
// partition answers (NATS: no responders).
var ErrNoReplica = errors.New("cluster: no live replica")

// noReplicaError names the partition nobody answered for.
type noReplicaError struct{ partition int }

func (e noReplicaError) Error() string {
	return fmt.Sprintf("cluster: bootstrap: no live replica of partition %d to copy (nobody answers %s)", e.partition, BackupSubject(e.partition))
}

func (noReplicaError) Is(target error) bool {
	return target == ErrNoReplica || target == nats.ErrNoResponders
}

// BackupSubject is the subject partition p's replicas answer backup
// requests on.
func BackupSubject(p int) string { return BackupSubjectPrefix + strconv.Itoa(p) }

// BackupSource writes a consistent backup of a gallery (*engine.Engine).
type BackupSource interface {
	Backup(ctx context.Context, w io.Writer) (store.BackupStats, error)
}

// Restorer loads a backup into an empty gallery (*engine.Engine).
type Restorer interface {
	Restore(ctx context.Context, r io.Reader) (store.BackupStats, error)
}

// BackupBucketConfig is the backup bucket's configuration for cfg: file
// storage, cfg.StreamReplicas replicas, objects expiring after BackupTTL.
func BackupBucketConfig(cfg Config) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      BackupBucket,
		Description: "Bordermatch backups copied to bootstrapping replicas",
		TTL:         BackupTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.StreamReplicas,
	}
}

// backupRequest is what Bootstrap sends (its node name, for the logs).
type backupRequest struct {
	Node string `json:"node,omitempty"`
}

// backupReply is a BackupServer's answer: the object holding the backup,
// or an error.
type backupReply struct {
	Object   string `json:"object,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
	Subjects int64  `json:"subjects,omitempty"`
	Node     string `json:"node,omitempty"`
	Error    string `json:"error,omitempty"`
}

// BackupServer answers a partition's backup requests (ServeBackups).
type BackupServer struct {
	src       BackupSource
	obs       jetstream.ObjectStore
	node      string
	partition int
	log       zerolog.Logger
	timeout   time.Duration
	sub       *nats.Subscription

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// ServeBackups creates (or updates) the backup bucket and answers backup
// requests of cfg.Partition on BackupSubject(cfg.Partition), in the
// partition's queue group (one replica answers each request): it streams
// src's backup into a new object of the bucket and replies with its name.
// Close stops it.
func ServeBackups(nc *nats.Conn, js jetstream.JetStream, cfg Config, src BackupSource) (*BackupServer, error) {
	if cfg.Partition < 0 || cfg.Partitions < 1 || cfg.Partition >= cfg.Partitions {
		return nil, fmt.Errorf("cluster: serve backups: partition %d of %d", cfg.Partition, cfg.Partitions)
	}
	if cfg.StreamReplicas < 1 || cfg.StreamReplicas > MaxStreamReplicas {
		return nil, fmt.Errorf("cluster: serve backups: stream_replicas %d: want 1..%d", cfg.StreamReplicas, MaxStreamReplicas)
	}
	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var obs jetstream.ObjectStore
	err := retryJS(ctx, func(ctx context.Context) (err error) {
		obs, err = js.CreateOrUpdateObjectStore(ctx, BackupBucketConfig(cfg))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: serve backups: bucket %s: %w", BackupBucket, err)
	}
	b := &BackupServer{
		src:       src,
		obs:       obs,
		node:      cfg.Node,
		partition: cfg.Partition,
		log:       cfg.Logger.With().Str("component", "backup").Int("partition", cfg.Partition).Logger(),
		timeout:   DefaultBackupTimeout,
	}
	sub, err := nc.QueueSubscribe(BackupSubject(cfg.Partition), QueueGroup(cfg.Partition), b.handle)
	if err != nil {
		return nil, fmt.Errorf("cluster: serve backups: %w", err)
	}
	b.sub = sub
	return b, nil
}

// Close unsubscribes and waits for the backups under way.
func (b *BackupServer) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	err := b.sub.Unsubscribe()
	b.wg.Wait()
	return err
}

func (b *BackupServer) handle(m *nats.Msg) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		rep := b.serve(m)
		body, err := json.Marshal(rep)
		if err == nil {
			err = m.Respond(body)
		}
		if err != nil {
			b.log.Warn().Err(err).Msg("cluster: backup reply not sent")
		}
	}()
}

// serve writes one backup into a new object.
func (b *BackupServer) serve(m *nats.Msg) backupReply {
	var req backupRequest
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return backupReply{Node: b.node, Error: fmt.Sprintf("backup request: %v", err)}
		}
	}
	name, err := objectName(b.partition, b.node)
	if err != nil {
		return backupReply{Node: b.node, Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	start := time.Now()
	pr, pw := io.Pipe()
	type result struct {
		st  store.BackupStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := b.src.Backup(ctx, pw)
		pw.CloseWithError(err) // nil: EOF for the reader
		done <- result{st, err}
	}()
	info, perr := b.obs.Put(ctx, jetstream.ObjectMeta{
		Name:        name,
		Description: fmt.Sprintf("backup of partition %d by %s", b.partition, b.node),
	}, pr)
	// Unblock the backup if Put stopped reading early.
	pr.CloseWithError(errors.New("cluster: backup object write ended"))
	res := <-done
	if res.err != nil || perr != nil {
		err := res.err
		if err == nil {
			err = perr
		}
		if perr == nil {
			// Put saw EOF before the backup's failure surfaced; drop the object.
			if derr := b.obs.Delete(context.Background(), name); derr != nil {
				b.log.Warn().Err(derr).Str("object", name).Msg("cluster: failed backup object not deleted (it expires)")
			}
		}
		b.log.Error().Err(err).Str("requester", req.Node).Msg("cluster: backup for a bootstrapping replica failed")
		return backupReply{Node: b.node, Error: fmt.Sprintf("backup of partition %d on %s: %v", b.partition, b.node, err)}
	}
	b.log.Info().Str("requester", req.Node).Str("object", name).Uint64("bytes", info.Size).
		Int64("subjects", res.st.Subjects).Dur("took_ms", time.Since(start)).Msg("cluster: backup copied for a bootstrapping replica")
	return backupReply{Object: name, Bytes: int64(info.Size), Subjects: res.st.Subjects, Node: b.node}
}

func objectName(partition int, node string) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("cluster: backup object name: %w", err)
	}
	return fmt.Sprintf("p%d-%s-%s-%s", partition, node, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(r[:])), nil
}

// BootstrapStats describes a bootstrap.
type BootstrapStats struct {
	// Peer is the node whose backup was copied.
	Peer string
	// Object is the backup object's name (deleted once read).
	Object string
	// Bytes is the backup's size.
	Bytes int64
	// Subjects is the number of subjects restored.
	Subjects int64
	// Took is the whole bootstrap: the peer's backup, the copy, the restore.
	Took time.Duration
}

// Bootstrap fills dst, an empty gallery, with a copy of a live replica of
// partition: it requests BackupSubject(partition) (ctx bounds the whole
// bootstrap, including the peer's writing of its backup), reads the object
// the peer wrote into dst.Restore as a stream, and deletes the object. The
// restored gallery carries the peer's applied log positions, so a Replica
// run on dst afterwards applies only what the log got after the backup.
//
// No replica of the partition answering is an error wrapping ErrNoReplica;
// a dst that is not empty is refused by its Restore (engine.ErrIncompatible,
// wrapped) and left as it was.
func Bootstrap(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, partition int, dst Restorer) (BootstrapStats, error) {
	start := time.Now()
	var st BootstrapStats
	if partition < 0 {
		return st, fmt.Errorf("cluster: bootstrap: partition %d", partition)
	}
	body, _ := json.Marshal(backupRequest{Node: nc.Opts.Name})
	msg, err := nc.RequestWithContext(ctx, BackupSubject(partition), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return st, noReplicaError{partition}
	case err != nil:
		return st, fmt.Errorf("cluster: bootstrap: asking partition %d for a backup: %w", partition, err)
	}
	var rep backupReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return st, fmt.Errorf("cluster: bootstrap: partition %d's backup reply: %w", partition, err)
	}
	st.Peer, st.Object = rep.Node, rep.Object
	if rep.Error != "" {
		return st, fmt.Errorf("cluster: bootstrap: %s failed to back up partition %d: %s", rep.Node, partition, rep.Error)
	}
	if rep.Object == "" {
		return st, fmt.Errorf("cluster: bootstrap: %s replied without a backup object", rep.Node)
	}
	obs, err := js.ObjectStore(ctx, BackupBucket)
	if err != nil {
		return st, fmt.Errorf("cluster: bootstrap: bucket %s: %w", BackupBucket, err)
	}
	defer func() {
		// Delete even when ctx has ended; the TTL is the last resort.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = obs.Delete(dctx, rep.Object)
	}()
	// The peer's put is acknowledged by the bucket's quorum; the server
	// this node reads through may see the object a moment later.
	var obj jetstream.ObjectResult
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		obj, err = obs.Get(ctx, rep.Object)
		if !errors.Is(err, jetstream.ErrObjectNotFound) || wait > 3*time.Second {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err != nil {
		return st, fmt.Errorf("cluster: bootstrap: backup object %s of %s: %w", rep.Object, rep.Node, err)
	}
	defer obj.Close()
	rst, err := dst.Restore(ctx, obj)
	if err != nil {
		return st, fmt.Errorf("cluster: bootstrap from %s (partition %d, object %s): %w", rep.Node, partition, rep.Object, err)
	}
	st.Bytes, st.Subjects, st.Took = rst.Bytes, rst.Subjects, time.Since(start)
	if st.Bytes == 0 {
		st.Bytes = rep.Bytes
	}
	return st, nil
}

// NeedsBootstrap reports whether a node should bootstrap from a peer before
// applying the log: its gallery has no subjects and it has applied nothing
// (a brand-new data directory). applied is the engine's AppliedAll, subjects
// its subject count.
func NeedsBootstrap(applied map[int]uint64, subjects int) bool {
	if subjects != 0 {
		return false
	}
	for _, seq := range applied {
		if seq != 0 {
			return false
		}
	}
	return true
}
