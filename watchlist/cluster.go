package watchlist

// `watchlist cluster`: a cluster's state, its reconciler and the planned
// change of its partitions (admin; matchd --cluster).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *app) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show, verify and re-partition a matchd cluster (admin)",
		Long: `cluster talks to any node of a matchd cluster (matchd --cluster).

  status   the node's shard map, its replica's lag, and every node that answers
  verify   the reconciler: compares the replicas of every shard with each other
           and with the enrolment log; exits 1 naming every divergence
  plan N   the shard map for N partitions and the shards that would move
  apply N  stores that map as the next epoch (nodes whose shards change stop
           answering until restarted with them; no data moves by itself)`,
		Args: exactArgs(0, "cluster takes a subcommand: status, verify, plan or apply"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.clusterStatusCmd(), a.clusterVerifyCmd(), a.clusterPlanCmd(false), a.clusterPlanCmd(true))
	return cmd
}

type clusterNodeJSON struct {
	Node      string `json:"node"`
	Partition int32  `json:"partition"`
	Replica   int32  `json:"replica"`
	Subjects  int64  `json:"subjects"`
	Shards    int32  `json:"shards"`
	Applied   uint64 `json:"applied"`
}

func nodesJSON(ns []*pb.ClusterNode) []clusterNodeJSON {
	out := []clusterNodeJSON{}
	for _, n := range ns {
		out = append(out, clusterNodeJSON{n.GetNode(), n.GetPartition(), n.GetReplica(), n.GetSubjects(), n.GetShards(), n.GetApplied()})
	}
	return out
}

func (a *app) printNodes(ns []*pb.ClusterNode) {
	t := newTable(a.stdout, "NODE", "PARTITION", "REPLICA", "SHARDS", "SUBJECTS")
	for _, n := range ns {
		t.row(n.GetNode(), fmt.Sprint(n.GetPartition()), fmt.Sprint(n.GetReplica()), fmt.Sprint(n.GetShards()), fmt.Sprint(n.GetSubjects()))
	}
	t.flush()
}

func (a *app) clusterStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's view of the cluster",
		Args:  exactArgs(0, "cluster status takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			st, err := c.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
			if err != nil {
				return a.callError(err, "cluster status")
			}
			if a.json {
				return a.printJSON(map[string]any{
					"node": st.GetNode(), "partition": st.GetPartition(), "replica": st.GetReplica(),
					"epoch": st.GetEpoch(), "partitions": st.GetPartitions(), "shards": st.GetShards(),
					"owned_shards": len(st.GetOwnedShards()), "stream_last_sequence": st.GetStreamLastSequence(),
					"apply_lag": st.GetApplyLag(), "nats_connected": st.GetNatsConnected(),
					"stream_replicas": st.GetStreamReplicas(), "nodes": nodesJSON(st.GetNodes()),
				})
			}
			w := a.stdout
			fmt.Fprintf(w, "Node %s: partition %d, replica %d; %d of %d shards\n", st.GetNode(), st.GetPartition(), st.GetReplica(), len(st.GetOwnedShards()), st.GetShards())
			fmt.Fprintf(w, "Shard map: epoch %d, %d partitions\n", st.GetEpoch(), st.GetPartitions())
			nats := "connected"
			if !st.GetNatsConnected() {
				nats = "NOT connected"
			}
			fmt.Fprintf(w, "Enrolment log: last sequence %d, R%d; this node %d messages behind; NATS %s\n",
				st.GetStreamLastSequence(), st.GetStreamReplicas(), st.GetApplyLag(), nats)
			fmt.Fprintf(w, "Nodes answering (%d):\n", len(st.GetNodes()))
			a.printNodes(st.GetNodes())
			return nil
		},
	}
}

func (a *app) clusterVerifyCmd() *cobra.Command {
	var wait, replicas int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare every shard's replicas with each other and with the enrolment log",
		Long: `verify waits (up to --wait seconds) until every node has applied the
enrolment log, then compares, shard by shard, the replicas' subject counts and
hashes (ids; ids with names, lists and templates) with each other and with the
log. It exits 0 when they agree and 1 naming every divergence and every
expected node that did not answer (--replicas per partition).`,
		Args: exactArgs(0, "cluster verify takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			// The reconciler waits for the nodes: at least --wait and
			// a margin, whatever --timeout says.
			ctx, cancel := context.WithTimeout(cmd.Context(), max(a.timeout, time.Duration(wait+30)*time.Second))
			defer cancel()
			rep, err := c.ClusterVerify(ctx, &pb.ClusterVerifyRequest{WaitSeconds: int32(wait), Replicas: int32(replicas)})
			if err != nil {
				return a.callError(err, "cluster verify")
			}
			if a.json {
				type div struct {
					Shard int32    `json:"shard"`
					Nodes []string `json:"nodes"`
					What  string   `json:"what"`
				}
				divs := []div{}
				for _, d := range rep.GetDivergences() {
					divs = append(divs, div{d.GetShard(), d.GetNodes(), d.GetWhat()})
				}
				if err := a.printJSON(map[string]any{"clean": rep.GetClean(), "nodes": nodesJSON(rep.GetNodes()),
					"divergences": divs, "missing": nonNil(rep.GetMissing()), "shards_compared": rep.GetShardsCompared(),
					"stream_last_sequence": rep.GetStreamLastSequence(), "stream_subjects": rep.GetStreamSubjects()}); err != nil {
					return err
				}
			} else {
				w := a.stdout
				fmt.Fprintf(w, "Compared %d shards on %d nodes with the enrolment log (last sequence %d, %d subjects).\n",
					rep.GetShardsCompared(), len(rep.GetNodes()), rep.GetStreamLastSequence(), rep.GetStreamSubjects())
				a.printNodes(rep.GetNodes())
				for _, m := range rep.GetMissing() {
					fmt.Fprintf(w, "MISSING  %s did not answer\n", m)
				}
				for _, d := range rep.GetDivergences() {
					fmt.Fprintf(w, "DIVERGES shard %d on %s: %s\n", d.GetShard(), strings.Join(d.GetNodes(), ", "), d.GetWhat())
				}
				if rep.GetClean() {
					fmt.Fprintln(w, "Clean: every replica agrees with the others and with the log.")
				}
			}
			if !rep.GetClean() {
				return &exitError{code: ExitFailure, err: fmt.Errorf("cluster verify: %d divergences, %d nodes missing", len(rep.GetDivergences()), len(rep.GetMissing()))}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&wait, "wait", 30, "`seconds` to wait for the nodes to catch up with the log")
	cmd.Flags().IntVar(&replicas, "replicas", 0, "replicas expected per partition (0: as many as answer)")
	return cmd
}

func (a *app) clusterPlanCmd(apply bool) *cobra.Command {
	use, short := "plan PARTITIONS", "Show the shard map for PARTITIONS partitions and the shards that would move"
	if apply {
		use, short = "apply PARTITIONS --epoch E", "Store the planned shard map as the next epoch"
	}
	var epoch uint64
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, "cluster plan/apply takes the number of partitions"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var parts int
			if _, err := fmt.Sscan(args[0], &parts); err != nil || parts < 1 {
				return usageError("partitions %q: want a number ≥ 1", args[0])
			}
			if apply && !cmd.Flags().Changed("epoch") {
				return usageError("cluster apply needs --epoch, the current epoch that `cluster plan` showed")
			}
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			var p *pb.ClusterPlanResponse
			if apply {
				p, err = c.ClusterApply(ctx, &pb.ClusterApplyRequest{Partitions: int32(parts), ExpectedEpoch: epoch})
			} else {
				p, err = c.ClusterPlan(ctx, &pb.ClusterPlanRequest{Partitions: int32(parts)})
			}
			if err != nil {
				return a.callError(err, "cluster "+cmd.Name())
			}
			if a.json {
				type move struct {
					Shard, From, To int32
				}
				moves := []move{}
				for _, m := range p.GetMoves() {
					moves = append(moves, move{m.GetShard(), m.GetFrom(), m.GetTo()})
				}
				return a.printJSON(map[string]any{"current_epoch": p.GetCurrentEpoch(), "next_epoch": p.GetNextEpoch(),
					"partitions_before": p.GetPartitionsBefore(), "partitions_after": p.GetPartitionsAfter(),
					"moves": moves, "load": p.GetLoad(), "applied": p.GetApplied()})
			}
			w := a.stdout
			verb := "Plan"
			if p.GetApplied() {
				verb = "Applied"
			}
			fmt.Fprintf(w, "%s: epoch %d → %d, %d → %d partitions, %d shards move\n", verb, p.GetCurrentEpoch(), p.GetNextEpoch(),
				p.GetPartitionsBefore(), p.GetPartitionsAfter(), len(p.GetMoves()))
			for i, l := range p.GetLoad() {
				fmt.Fprintf(w, "  partition %d: %d shards\n", i, l)
			}
			byRoute := map[[2]int32][]string{}
			var routes [][2]int32
			for _, m := range p.GetMoves() {
				k := [2]int32{m.GetFrom(), m.GetTo()}
				if _, ok := byRoute[k]; !ok {
					routes = append(routes, k)
				}
				byRoute[k] = append(byRoute[k], fmt.Sprint(m.GetShard()))
			}
			for _, k := range routes {
				fmt.Fprintf(w, "  %d → %d: shards %s\n", k[0], k[1], strings.Join(byRoute[k], " "))
			}
			if !p.GetApplied() && len(p.GetMoves()) > 0 {
				fmt.Fprintf(w, "Apply with: watchlist cluster apply %d --epoch %d\n", p.GetPartitionsAfter(), p.GetCurrentEpoch())
			}
			if p.GetApplied() {
				fmt.Fprintln(w, "Restart the nodes whose shards changed, and start the new partitions' nodes on empty data directories.")
			}
			return nil
		},
	}
	if apply {
		cmd.Flags().Uint64Var(&epoch, "epoch", 0, "the shard map's current `epoch`, as `cluster plan` showed it")
	}
	return cmd
}
