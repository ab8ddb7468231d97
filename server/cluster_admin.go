package server

// The Admin service's cluster calls (admin.proto: ClusterStatus,
// ClusterVerify, ClusterPlan, ClusterApply), behind `watchlist cluster`.

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/cluster"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *Admin) clusterNode() (*clusterNode, error) {
	if a.node == nil {
		return nil, status.Error(codes.FailedPrecondition, "this matchd is a single node, not a cluster node (matchd --cluster)")
	}
	return a.node, nil
}

func clusterNodesProto(nodes []cluster.NodeDigest) []*pb.ClusterNode {
	var out []*pb.ClusterNode
	for _, d := range nodes {
		cn := &pb.ClusterNode{Node: d.Node, Partition: int32(d.Partition), Replica: int32(d.Replica), Shards: int32(len(d.Shards))}
		for _, sh := range d.Shards {
			cn.Subjects += int64(sh.Count)
			cn.Applied += sh.Applied
		}
		out = append(out, cn)
	}
	return out
}

// ClusterStatus implements pb.AdminServer.
func (a *Admin) ClusterStatus(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	n, err := a.clusterNode()
	if err != nil {
		return nil, err
	}
	m := n.shardMap()
	resp := &pb.ClusterStatusResponse{
		Node: n.cfg.Node, Partition: int32(n.cfg.Partition), Replica: int32(n.cfg.Replica),
		Epoch: m.Epoch, Partitions: int32(m.Partitions), Shards: int32(m.Shards),
		NatsConnected: n.nc.IsConnected(), StreamReplicas: int32(n.cfg.StreamReplicas),
	}
	for _, s := range m.ShardsOf(n.cfg.Partition) {
		resp.OwnedShards = append(resp.OwnedShards, int32(s))
	}
	if last, err := n.log.LastSequence(ctx); err == nil {
		resp.StreamLastSequence = last
	}
	if lag, err := n.rep.Lag(ctx); err == nil {
		for _, l := range lag {
			resp.ApplyLag += l
		}
	}
	nodes, err := cluster.GatherDigests(ctx, n.nc, 2*time.Second)
	if err != nil {
		return nil, err
	}
	resp.Nodes = clusterNodesProto(nodes)
	return resp, nil
}

// ClusterVerify implements pb.AdminServer: the reconciler.
func (a *Admin) ClusterVerify(ctx context.Context, req *pb.ClusterVerifyRequest) (*pb.ClusterVerifyResponse, error) {
	n, err := a.clusterNode()
	if err != nil {
		return nil, err
	}
	wait := time.Duration(req.GetWaitSeconds()) * time.Second
	if wait <= 0 {
		wait = 30 * time.Second
	}
	replicas := int(req.GetReplicas())
	if replicas <= 0 {
		// As many as answer: the most replicas any partition has.
		nodes, err := cluster.GatherDigests(ctx, n.nc, 2*time.Second)
		if err != nil {
			return nil, err
		}
		per := map[int]int{}
		replicas = 1
		for _, d := range nodes {
			per[d.Partition]++
			replicas = max(replicas, per[d.Partition])
		}
	}
	rep, err := cluster.Reconcile(ctx, n.nc, n.log, n.shardMap(), replicas, wait)
	if err != nil {
		return nil, err
	}
	resp := &pb.ClusterVerifyResponse{Clean: rep.Clean(), Nodes: clusterNodesProto(rep.Nodes), Missing: rep.Missing,
		ShardsCompared: int32(rep.Shards), StreamLastSequence: rep.StreamLast, StreamSubjects: int64(rep.StreamSubjects)}
	for _, d := range rep.Divergences {
		resp.Divergences = append(resp.Divergences, &pb.ClusterDivergence{Shard: int32(d.Shard), Nodes: d.Nodes, What: d.What})
	}
	return resp, nil
}

func planProto(cur, next cluster.ShardMap, moves []cluster.Move) *pb.ClusterPlanResponse {
	resp := &pb.ClusterPlanResponse{CurrentEpoch: cur.Epoch, NextEpoch: next.Epoch,
		PartitionsBefore: int32(cur.Partitions), PartitionsAfter: int32(next.Partitions)}
	for _, mv := range moves {
		resp.Moves = append(resp.Moves, &pb.ClusterMove{Shard: int32(mv.Shard), From: int32(mv.From), To: int32(next.Owner[mv.Shard])})
	}
	for _, l := range next.Load() {
		resp.Load = append(resp.Load, int32(l))
	}
	return resp
}

// ClusterPlan implements pb.AdminServer.
func (a *Admin) ClusterPlan(ctx context.Context, req *pb.ClusterPlanRequest) (*pb.ClusterPlanResponse, error) {
	n, err := a.clusterNode()
	if err != nil {
		return nil, err
	}
	cur, _, err := cluster.LoadShardMap(ctx, n.log.JetStream())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "loading the shard map: %v", err)
	}
	next, moves, err := cluster.Plan(cur, int(req.GetPartitions()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "plan: %v", err)
	}
	return planProto(cur, next, moves), nil
}

// ClusterApply implements pb.AdminServer.
func (a *Admin) ClusterApply(ctx context.Context, req *pb.ClusterApplyRequest) (*pb.ClusterPlanResponse, error) {
	n, err := a.clusterNode()
	if err != nil {
		return nil, err
	}
	js := n.log.JetStream()
	cur, _, err := cluster.LoadShardMap(ctx, js)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "loading the shard map: %v", err)
	}
	if cur.Epoch != req.GetExpectedEpoch() {
		return nil, status.Errorf(codes.FailedPrecondition, "the shard map is at epoch %d, the plan was made at %d: plan again", cur.Epoch, req.GetExpectedEpoch())
	}
	next, moves, err := cluster.Plan(cur, int(req.GetPartitions()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "plan: %v", err)
	}
	if err := cluster.ApplyPlan(ctx, js, req.GetExpectedEpoch(), next); err != nil {
		if errors.Is(err, cluster.ErrStaleEpoch) {
			return nil, status.Errorf(codes.FailedPrecondition, "%v: plan again", err)
		}
		return nil, status.Errorf(codes.Unavailable, "apply: %v", err)
	}
	n.logger.Warn().Uint64("epoch", next.Epoch).Int("partitions", next.Partitions).Int("moves", len(moves)).Msg("cluster: shard map applied")
	resp := planProto(cur, next, moves)
	resp.Applied = true
	return resp, nil
}
