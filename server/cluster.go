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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

// Methods of the partition-addressed calls (cluster.Call).
const (
	callGetSubject     = "GetSubject"
	callVerify         = "Verify"
	callListSubjects   = "ListSubjects"
	callListWatchlists = "ListWatchlists"
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
	n.logger.Info().Dur("took", time.Since(start)).Int("subjects", eng.Subjects()).Msg("cluster: caught up")

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
	n.logger.Info().Str("peer", st.Peer).Int64("subjects", st.Subjects).Int64("bytes", st.Bytes).Dur("took", st.Took).
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
		n.logger.Warn().Err(err).Dur("retry_in", backoff).Msg("cluster: applying the log")
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

// partitionOf is the partition owning a subject id under the node's map.
func (n *clusterNode) partitionOf(id string) int {
	m := n.shardMap()
	return m.PartitionOf(id)
}

// token parses a request's consistency token; a malformed one is
// InvalidArgument.
func token(s string) (cluster.Token, error) {
	t, err := cluster.ParseToken(s)
	if err != nil {
		return t, status.Errorf(codes.InvalidArgument, "consistency_token: %v", err)
	}
	return t, nil
}

// call sends a call to the partition owning id and decodes the answer.
func (n *clusterNode) call(ctx context.Context, partition int, method string, req, resp proto.Message, tok cluster.Token) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: encoding %s: %w", engine.ErrInternal, method, err)
	}
	audit.NoteCluster(ctx, n.cfg.Node, partition)
	out, err := cluster.Call(ctx, n.nc, partition, n.epoch(), method, body, tok)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("%w: %s answer of partition %d: %w", engine.ErrInternal, method, partition, err)
	}
	return nil
}

// handleCall answers another node's call with this node's partition.
func (n *clusterNode) handleCall(ctx context.Context, method string, body []byte) ([]byte, error) {
	var (
		resp proto.Message
		err  error
	)
	switch method {
	case callGetSubject:
		var req pb.GetSubjectRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.GetSubject(ctx, &req)
	case callVerify:
		var req pb.VerifyRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.Verify(ctx, &req)
	case callListSubjects:
		var req pb.ListSubjectsRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.ListSubjects(ctx, &req)
	case callListWatchlists:
		resp, err = n.local.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	default:
		return nil, status.Errorf(codes.Unimplemented, "cluster call %q: no such method", method)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return proto.Marshal(resp)
}

func allPartitions(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// requestIDOf is the log's deduplication id of a write: the client's, or a
// new one.
func requestIDOf(id string) (string, error) {
	if id == "" {
		b := make([]byte, 16)
		rand.Read(b)
		return hex.EncodeToString(b), nil
	}
	if len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
		return "", status.Errorf(codes.InvalidArgument, "request_id: 1-128 characters without spaces")
	}
	return id, nil
}

// appendTimeout bounds an append to the log: a stream without a quorum
// (its leader cut off, or stepping down) may never answer a publish, and the
// client is told UNAVAILABLE rather than left waiting for its own deadline.
const appendTimeout = 10 * time.Second

// logError is an append's error as the client sees it: a log without a
// quorum is UNAVAILABLE, saying nothing was acknowledged.
func logError(what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return status.Errorf(codes.Unavailable, "%s: the enrolment log did not acknowledge the write (no quorum of the stream?); it may or may not be stored: retry with the same request_id: %v", what, err)
}

func (n *clusterNode) enroll(ctx context.Context, req *pb.EnrollRequest, samples []engine.Sample) (*pb.EnrollResponse, error) {
	rid, err := requestIDOf(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	ereq := engine.EnrollRequest{
		SubjectID: req.GetSubjectId(), Name: req.GetName(), Metadata: req.GetMetadata(),
		Watchlists: req.GetWatchlists(), Samples: samples, ReturnTemplates: req.GetReturnTemplates(),
		Created: time.Now().UTC(),
	}
	if ereq.SubjectID == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	// The id must be free in the partition owning it. Two enrolments of one
	// id racing each other both pass this; the log orders them and the
	// second is refused when applied (the replicas log it).
	p := n.partitionOf(ereq.SubjectID)
	var got pb.GetSubjectResponse
	switch err := n.call(ctx, p, callGetSubject, &pb.GetSubjectRequest{SubjectId: ereq.SubjectID}, &got, cluster.Token{}); {
	case err == nil:
		return nil, status.Errorf(codes.AlreadyExists, "subject %q already exists", ereq.SubjectID)
	case codeOf(err) != codes.NotFound:
		return nil, err
	}
	logReq, res, err := n.eng.PrepareEnroll(ctx, ereq)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, appendTimeout)
	shard, seq, err := cluster.EnrollThroughLog(actx, n.log, logReq, rid)
	cancel()
	if err != nil {
		return nil, logError("enrol", err)
	}
	resp := &pb.EnrollResponse{Subject: subjectProto(res.Subject), Templates: res.Templates,
		ConsistencyToken: cluster.Token{Shard: shard, Seq: seq}.String()}
	for _, q := range res.FaceQuality {
		resp.Quality = append(resp.Quality, faceQualityProto(&q))
	}
	resp.FingerQuality = fingerQualityProto(res.FingerQuality)
	return resp, nil
}

func (n *clusterNode) deleteSubject(ctx context.Context, req *pb.DeleteSubjectRequest) (*pb.DeleteSubjectResponse, error) {
	rid, err := requestIDOf(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	id := req.GetSubjectId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	var got pb.GetSubjectResponse
	if err := n.call(ctx, n.partitionOf(id), callGetSubject, &pb.GetSubjectRequest{SubjectId: id}, &got, tok); err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, appendTimeout)
	shard, seq, err := cluster.DeleteThroughLog(actx, n.log, id, rid)
	cancel()
	if err != nil {
		return nil, logError("delete", err)
	}
	return &pb.DeleteSubjectResponse{Subject: got.Subject, ConsistencyToken: cluster.Token{Shard: shard, Seq: seq}.String()}, nil
}

func (n *clusterNode) identify(ctx context.Context, req *pb.IdentifyRequest, p engine.Probe) (*pb.IdentifyResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	q := engine.Query{TopK: int(req.GetTopK()), Watchlists: req.GetWatchlists(), Threshold: req.Threshold, MaxFMR: req.MaxFmr}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	tpl, quality, err := n.eng.ProbeTemplate(ctx, p)
	if err != nil {
		return nil, err
	}
	coord := n.coordinator()
	audit.NoteCluster(ctx, n.cfg.Node, allPartitions(coord.Partitions)...)
	res, err := coord.Identify(ctx, cluster.SearchRequest{Template: tpl, Query: q, AllowPartial: req.GetAllowPartial(), Token: tok})
	n.metrics.observeCoverage(res.Coverage.Answered, coord.Partitions, err)
	if err != nil {
		return nil, err
	}
	resp := &pb.IdentifyResponse{
		Threshold:    defaultThreshold(n.eng),
		Searched:     res.Searched,
		ProbeQuality: faceQualityProto(quality),
		Coverage: &pb.Coverage{Answered: int32(res.Coverage.Answered), Total: int32(res.Coverage.Total),
			Partial: res.Partial, Coordinator: n.cfg.Node},
	}
	if q.Threshold != nil {
		resp.Threshold = *q.Threshold
	}
	if q.MaxFMR != nil {
		resp.Fused, resp.MaxFmr = true, *q.MaxFMR
	}
	for _, m := range res.Missing {
		resp.Coverage.Missing = append(resp.Coverage.Missing, int32(m))
	}
	for _, c := range res.Candidates {
		pc := &pb.Candidate{Rank: int32(c.Rank), SubjectId: c.SubjectID, Name: c.Name, Score: c.Score, Watchlists: c.Watchlists}
		fillScores(&c.Scores, &pc.FaceScore, &pc.FaceFmr, &pc.FingerScores, &pc.FingerScore, &pc.FusedFmr, &pc.FusedScore)
		if c.HasFace {
			pc.FaceAlgorithm = c.FaceAlgorithm.String()
		}
		resp.Candidates = append(resp.Candidates, pc)
	}
	return resp, nil
}

func (n *clusterNode) verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	var resp pb.VerifyResponse
	if err := n.call(ctx, n.partitionOf(req.GetSubjectId()), callVerify, req, &resp, tok); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (n *clusterNode) getSubject(ctx context.Context, req *pb.GetSubjectRequest) (*pb.GetSubjectResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	var resp pb.GetSubjectResponse
	if err := n.call(ctx, n.partitionOf(req.GetSubjectId()), callGetSubject, req, &resp, tok); err != nil {
		return nil, err
	}
	return &resp, nil
}

// callAll sends a call to every partition.
func (n *clusterNode) callAll(ctx context.Context, method string, req proto.Message) ([][]byte, error) {
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s: %w", engine.ErrInternal, method, err)
	}
	m := n.shardMap()
	audit.NoteCluster(ctx, n.cfg.Node, allPartitions(m.Partitions)...)
	return cluster.CallAll(ctx, n.nc, m.Partitions, m.Epoch, method, body, cluster.Token{})
}

// listSubjects merges the partitions' pages: each lists in id order from
// the same token, the merged page takes the first ids of all, and its token
// continues every partition after the last of them.
func (n *clusterNode) listSubjects(ctx context.Context, req *pb.ListSubjectsRequest) (*pb.ListSubjectsResponse, error) {
	size := int(req.GetPageSize())
	if size <= 0 {
		size = store.DefaultPageSize
	}
	outs, err := n.callAll(ctx, callListSubjects, req)
	if err != nil {
		return nil, err
	}
	var all []*pb.Subject
	more, limit := false, ""
	for i, b := range outs {
		var r pb.ListSubjectsResponse
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%w: ListSubjects answer of partition %d: %w", engine.ErrInternal, i, err)
		}
		all = append(all, r.Subjects...)
		if r.NextPageToken != "" && len(r.Subjects) > 0 {
			// Beyond its last id this partition said nothing yet.
			if last := r.Subjects[len(r.Subjects)-1].Id; !more || last < limit {
				limit = last
			}
			more = true
		}
	}
	slices.SortFunc(all, func(a, b *pb.Subject) int { return strings.Compare(a.Id, b.Id) })
	if more {
		i, _ := slices.BinarySearchFunc(all, limit, func(s *pb.Subject, id string) int { return strings.Compare(s.Id, id) })
		all = all[:i+1]
	}
	resp := &pb.ListSubjectsResponse{}
	if len(all) > size {
		all, more = all[:size], true
	}
	resp.Subjects = all
	if more && len(all) > 0 {
		resp.NextPageToken = store.PageToken(req.GetWatchlist(), all[len(all)-1].Id)
	}
	return resp, nil
}

func (n *clusterNode) listWatchlists(ctx context.Context) (*pb.ListWatchlistsResponse, error) {
	outs, err := n.callAll(ctx, callListWatchlists, &pb.ListWatchlistsRequest{})
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for i, b := range outs {
		var r pb.ListWatchlistsResponse
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%w: ListWatchlists answer of partition %d: %w", engine.ErrInternal, i, err)
		}
		for _, w := range r.Watchlists {
			counts[w.Name] += w.SubjectCount
		}
	}
	resp := &pb.ListWatchlistsResponse{}
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		resp.Watchlists = append(resp.Watchlists, &pb.Watchlist{Name: name, SubjectCount: counts[name]})
	}
	return resp, nil
}
