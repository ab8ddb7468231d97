package server

// matchd as a node of a cluster (issue 15; package cluster has the parts).
//
// A node holds one partition of the gallery: the logical shards the shard
// map gives it, applied from the replicated enrolment log into its own
// Badger store and index by a cluster.Replica. It answers the same gRPC API
// as a single node, coordinating each call:
//
//   - Enroll and DeleteSubject are checked against the partition owning
//     the id, made into templates here (once, on the coordinating node) and
//     appended to the log, durable once a quorum has synced them; the
//     answer carries the write's consistency token.
//   - Identify by face is sent to every partition (cluster.Coordinator) and
//     merged; the answer says its coverage. A missing partition is
//     UNAVAILABLE unless the request allows a partial answer.
//   - Verify against a subject and GetSubject go to the partition owning the
//     id; ListSubjects and ListWatchlists to every partition, merged.
//
// A token passed with a call makes the partition owning the token's shard
// wait until it has applied that write (read-your-writes).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
)

// clusterNode is a matchd's place in a cluster.
type clusterNode struct {
	cfg    cluster.Config
	ns     *natsserver.Server // the embedded JetStream server, or nil
	nc     *nats.Conn
	log    *cluster.Log
	eng    *engine.Engine
	local  *Service // the single-node service over this node's partition
	logger zerolog.Logger
	coord  *cluster.Coordinator

	mu    sync.RWMutex
	smap  cluster.ShardMap
	owned map[int]bool

	rep     *cluster.Replica
	backups *cluster.BackupServer
	resp    *cluster.Responder
	calls   *cluster.CallServer
	digests *nats.Subscription

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped chan struct{} // closed when the replica stopped for good
	stopErr error
	metrics *Metrics
}

// startCluster joins the cluster: it starts the embedded JetStream server
// if configured, opens the log, loads (or stores the first) shard map,
// applies the log up to its end and only then answers other nodes'
// searches and calls.
func startCluster(ctx context.Context, cfg cluster.Config, eng *engine.Engine, m *Metrics, logger zerolog.Logger) (_ *clusterNode, err error) {
	cfg.Logger = logger
	n := &clusterNode{cfg: cfg, eng: eng, local: NewService(eng), metrics: m, stopped: make(chan struct{}),
		logger: logger.With().Str("node", cfg.Node).Int("partition", cfg.Partition).Logger()}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if cfg.Embedded != nil {
		if n.ns, err = cluster.StartEmbedded(cfg); err != nil {
			return nil, err
		}
	}
	if n.nc, err = cluster.Connect(cfg, n.ns); err != nil {
		return nil, err
	}
	if n.log, err = cluster.Open(ctx, n.nc, cfg); err != nil {
		return nil, err
	}
	smap, err := loadOrStoreShardMap(ctx, n.log, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Partition >= smap.Partitions {
		return nil, fmt.Errorf("cluster: partition %d: the shard map (epoch %d) has %d partitions", cfg.Partition, smap.Epoch, smap.Partitions)
	}
	n.setMap(smap)
	m.registerCluster(n)
	n.coord = &cluster.Coordinator{NC: n.nc, Partitions: smap.Partitions, Epoch: smap.Epoch}
	if err := n.dropForeignShards(ctx); err != nil {
		return nil, err
	}
	if err := n.bootstrap(ctx); err != nil {
		return nil, err
	}
	shards := smap.ShardsOf(cfg.Partition)
	if n.rep, err = cluster.NewReplica(n.log, eng, shards, n.logger); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.runReplica(runCtx) }()

	start := time.Now()
	n.logger.Info().Int("shards", len(shards)).Uint64("epoch", smap.Epoch).Msg("cluster: catching up with the log before answering")
	if err := n.catchUp(ctx); err != nil {
		return nil, err
	}
	n.logger.Info().Dur("took_ms", time.Since(start)).Int("subjects", eng.Subjects()).Msg("cluster: caught up")

	opt := cluster.ServeOptions{Wait: n.rep.WaitApplied, Owns: n.owns}
	if n.resp, err = cluster.ServeWith(n.nc, cfg, eng, smap.Epoch, opt); err != nil {
		return nil, err
	}
	if n.calls, err = cluster.ServeCalls(n.nc, cfg.Partition, cluster.CallOptions{
		Epoch: n.epoch, Owns: n.owns, Wait: n.rep.WaitApplied, Handler: n.handleCall, Logger: n.logger,
	}); err != nil {
		return nil, err
	}
	if n.backups, err = cluster.ServeBackups(n.nc, n.log.JetStream(), cfg, eng); err != nil {
		return nil, err
	}
	if n.digests, err = cluster.ServeDigests(n.nc, cluster.NodeInfo{Node: cfg.Node, Partition: cfg.Partition, Replica: cfg.Replica,
		Owned: shards, Shards: cfg.Shards}, eng, eng.AppliedAll); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := cluster.WatchShardMap(runCtx, n.log.JetStream(), n.onShardMap); err != nil && runCtx.Err() == nil {
			n.logger.Error().Err(err).Msg("cluster: watching the shard map stopped")
		}
	}()
	return n, nil
}

// dropForeignShards removes what this node holds of shards its partition
// no longer owns (the shard map changed while it was down or before its
// restart), so that it never answers from them; their positions are
// forgotten, so a shard coming back is replayed from the start.
func (n *clusterNode) dropForeignShards(ctx context.Context) error {
	applied, err := n.eng.AppliedAll()
	if err != nil {
		return err
	}
	n.mu.RLock()
	owned := maps.Clone(n.owned)
	n.mu.RUnlock()
	foreign := 0
	for sh := range applied {
		if !owned[sh] {
			foreign++
		}
	}
	if foreign == 0 {
		return nil
	}
	shards := n.cfg.Shards
	removed, err := n.eng.DropShards(ctx, func(id string) int { return cluster.ShardOf(id, shards) }, owned)
	if err != nil {
		return fmt.Errorf("cluster: dropping the shards partition %d no longer owns: %w", n.cfg.Partition, err)
	}
	n.logger.Warn().Int("shards", foreign).Int("subjects", removed).Msg("cluster: dropped the shards this partition no longer owns")
	return nil
}

// bootstrap copies a live peer's gallery of this partition (its backup,
// with the log positions it had applied) into a brand-new data directory,
// so that the replica then applies only the log after it. Without a live
// peer (the partition's first node) the replica applies the whole log.
func (n *clusterNode) bootstrap(ctx context.Context) error {
	applied, err := n.eng.AppliedAll()
	if err != nil {
		return err
	}
	if !cluster.NeedsBootstrap(applied, n.eng.Subjects()) {
		return nil
	}
	st, err := cluster.Bootstrap(ctx, n.nc, n.log.JetStream(), n.cfg.Partition, n.eng)
	switch {
	case errors.Is(err, cluster.ErrNoReplica):
		n.logger.Info().Msg("cluster: empty data directory and no live peer of this partition: applying the whole log")
		return nil
	case err != nil:
		return fmt.Errorf("cluster: bootstrapping from a peer: %w", err)
	}
	n.logger.Info().Str("peer", st.Peer).Int64("subjects", st.Subjects).Int64("bytes", st.Bytes).Dur("took_ms", st.Took).
		Msg("cluster: bootstrapped from a peer's backup; applying the log from its positions")
	return nil
}

// loadOrStoreShardMap returns the cluster's shard map, storing the first
// one (cfg's shards over cfg's partitions) when there is none.
func loadOrStoreShardMap(ctx context.Context, l *cluster.Log, cfg cluster.Config) (cluster.ShardMap, error) {
	js := l.JetStream()
	first, err := cluster.NewShardMap(cfg.Shards, cfg.Partitions)
	if err != nil {
		return cluster.ShardMap{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	var m cluster.ShardMap
	for {
		m, _, err = cluster.LoadShardMap(ctx, js)
		if !errors.Is(err, cluster.ErrNoShardMap) {
			break
		}
		// Another node may store it at the same moment: the create is a
		// compare-and-set, and a replica of the bucket may show it a
		// moment later; load until it is there.
		if err := cluster.StoreInitial(ctx, js, cfg, first); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return cluster.ShardMap{}, err
		}
		select {
		case <-ctx.Done():
			return cluster.ShardMap{}, fmt.Errorf("cluster: shard map: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		return cluster.ShardMap{}, err
	}
	if m.Shards != cfg.Shards {
		return cluster.ShardMap{}, fmt.Errorf("cluster: shards %d, but the cluster's shard map has %d (shards are fixed for a cluster's life)", cfg.Shards, m.Shards)
	}
	return m, nil
}

func (n *clusterNode) setMap(m cluster.ShardMap) {
	owned := map[int]bool{}
	for _, s := range m.ShardsOf(n.cfg.Partition) {
		owned[s] = true
	}
	n.mu.Lock()
	n.smap, n.owned = m, owned
	n.mu.Unlock()
}

func (n *clusterNode) shardMap() cluster.ShardMap {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.smap
}

func (n *clusterNode) epoch() uint64 { return n.shardMap().Epoch }

func (n *clusterNode) owns(shard int) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.owned[shard]
}

// onShardMap takes a new epoch of the shard map. Moving data is the
// operator's planned step (watchlist cluster plan/apply): a node whose
// shards change stops answering until it is restarted with them, rather
// than answer from a partition it does not hold in full.
func (n *clusterNode) onShardMap(m cluster.ShardMap) {
	cur := n.shardMap()
	if m.Epoch <= cur.Epoch {
		return
	}
	before, after := cur.ShardsOf(n.cfg.Partition), m.ShardsOf(n.cfg.Partition)
	n.logger.Warn().Uint64("epoch", m.Epoch).Uint64("was", cur.Epoch).Int("partitions", m.Partitions).
		Int("shards_before", len(before)).Int("shards_after", len(after)).Msg("cluster: new shard map")
	if slices.Equal(before, after) {
		n.setMap(m)
		n.resp.SetEpoch(m.Epoch)
		n.coordSet(m)
		return
	}
	// This node leaves its partition's queue groups: it must not answer
	// from shards it no longer holds in full, and a replica that refuses
	// (stale epoch) would still be picked by the queue group. The
	// coordinator moves on, so this node still coordinates calls.
	n.coordSet(m)
	n.resp.Close()
	n.calls.Close()
	n.logger.Error().Ints("shards", after).Msg("cluster: this node's shards changed: restart it to take them (it answers other nodes' searches no more)")
}

func (n *clusterNode) coordSet(m cluster.ShardMap) {
	n.mu.Lock()
	n.coord = &cluster.Coordinator{NC: n.nc, Partitions: m.Partitions, Epoch: m.Epoch}
	n.mu.Unlock()
}

func (n *clusterNode) coordinator() *cluster.Coordinator {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.coord
}

// runReplica applies the log until the node stops, retrying after errors
// that pass (NATS reconnecting, a busy store); an error that will not pass
// (a template this node cannot read, a message of a newer version) stops
// it and makes the node not ready.
func (n *clusterNode) runReplica(ctx context.Context) {
	defer close(n.stopped)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := n.rep.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, cluster.ErrReplicaStopped) {
			n.stopErr = err
			n.logger.Error().Err(err).Msg("cluster: replica stopped: this node no longer applies the log")
			return
		}
		n.logger.Warn().Err(err).Dur("retry_in_ms", backoff).Msg("cluster: applying the log")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// catchUp waits until the replica has applied what the log held of its
// shards, or the replica stopped.
func (n *clusterNode) catchUp(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- n.rep.CatchUp(ctx) }()
	select {
	case err := <-done:
		return err
	case <-n.stopped:
		return fmt.Errorf("cluster: catching up: %w", n.stopErr)
	}
}

func (n *clusterNode) close() {
	if n.cancel != nil {
		n.cancel()
	}
	if n.digests != nil {
		n.digests.Unsubscribe()
	}
	if n.calls != nil {
		n.calls.Close()
	}
	if n.backups != nil {
		n.backups.Close()
	}
	if n.resp != nil {
		n.resp.Close()
	}
	n.wg.Wait()
	if n.nc != nil {
		n.nc.Drain()
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
}
