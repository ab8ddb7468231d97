package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/internal/synthetic"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// testNode is an in-process matchd cluster node: a real engine on a Badger
// directory, its cluster parts, and the gRPC services on a loopback port.
type testNode struct {
	cfg    cluster.Config
	dir    string
	node   *clusterNode
	eng    *engine.Engine
	st     *store.Store
	gs     *grpc.Server
	conn   *grpc.ClientConn
	client pb.MatcherClient
	admin  pb.AdminClient
	m      *Metrics
	once   sync.Once
}

func (n *testNode) stop() {
	n.once.Do(func() {
		n.gs.Stop()
		n.conn.Close()
		n.node.close()
		n.eng.Close()
		n.st.Close()
	})
}

// startTestNode starts a node on dir (reused across restarts).
func startTestNode(t testing.TB, cfg cluster.Config, dir string) *testNode {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := NewMetrics(nil)
	node, err := startCluster(ctx, cfg, eng, m, zerolog.Nop())
	if err != nil {
		eng.Close()
		st.Close()
		t.Fatalf("node %s: %v", cfg.Node, err)
	}
	svc := NewService(eng)
	svc.node = node
	admin := NewAdmin(eng)
	admin.node = node
	gs, _ := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: 4 << 20, Logger: zerolog.Nop()})
	pb.RegisterAdminServer(gs, admin)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{cfg: cfg, dir: dir, node: node, eng: eng, st: st, gs: gs, conn: conn, m: m,
		client: pb.NewMatcherClient(conn), admin: pb.NewAdminClient(conn)}
	t.Cleanup(n.stop)
	return n
}

func freeTCPPorts(t testing.TB, n int) []int {
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// clusterConfigs are the configurations of 4 nodes, 2 partitions × 2
// replicas: nodes 0-2 each run an embedded JetStream server (the three
// route to each other, R3 stream), node 3 connects to them.
func clusterConfigs(t testing.TB) []cluster.Config {
	ports := freeTCPPorts(t, 6)
	var urls []string
	for i := range 3 {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	cfgs := make([]cluster.Config, 4)
	for i := range cfgs {
		c := cluster.DefaultConfig()
		c.Node = "node-" + strconv.Itoa(i)
		c.Partitions, c.Partition, c.Replica = 2, i%2, i/2
		c.ReadyTimeout = time.Minute
		if i < 3 {
			e := &cluster.Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), StoreDir: t.TempDir()}
			for j := range 3 {
				if j != i {
					e.Routes = append(e.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+j]))
				}
			}
			c.Embedded = e
		} else {
			c.Servers = urls
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgs[i] = c
	}
	return cfgs
}

// startTestCluster starts the 4 nodes: the three with JetStream servers at
// once (JetStream needs a quorum of them to answer), then the fourth.
func startTestCluster(t testing.TB) []*testNode {
	t.Helper()
	cfgs := clusterConfigs(t)
	nodes := make([]*testNode, 4)
	var wg sync.WaitGroup
	for i := range 3 {
		dir := t.TempDir()
		wg.Go(func() { nodes[i] = startTestNode(t, cfgs[i], dir) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	nodes[3] = startTestNode(t, cfgs[3], t.TempDir())
	return nodes
}

func synthTemplate(t testing.TB, i int) []byte {
	t.Helper()
	v := make([]float32, templates.FaceDim)
	synthetic.Vector(i, v)
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func synthID(i int) string { return synthetic.ID(i) }

func enrolSynth(ctx context.Context, c pb.MatcherClient, t testing.TB, i int) (*pb.EnrollResponse, error) {
	return c.Enroll(ctx, &pb.EnrollRequest{SubjectId: synthID(i), Name: "S" + strconv.Itoa(i), Watchlists: []string{"wl" + strconv.Itoa(i%3)},
		RequestId: "req-" + synthID(i), Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: synthTemplate(t, i)}}}})
}

// TestClusterInProcess: 3 embedded JetStream servers (sync always, R3) and
// 4 nodes (2 partitions × 2 replicas) on loopback with real Badger: every
// subject enrolled through any node is found rank 1 from every node; the
// merged top 10 equals one engine's over the same gallery; the reconciler
// is clean; a whole partition down is UNAVAILABLE unless a partial answer
// is allowed, and then it is marked partial.
func TestClusterInProcess(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	nodes := startTestCluster(t)
	ctx := context.Background()

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := enrolSynth(ctx, nodes[(i+w)%4].client, t, i); err != nil {
					t.Errorf("enrol %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d enrolments through 4 nodes in %v (%.0f/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())

	// The reconciler waits for every replica to apply the log.
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	rep, err := nodes[3].admin.ClusterVerify(vctx, &pb.ClusterVerifyRequest{WaitSeconds: 90, Replicas: 2})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.GetClean() || rep.GetStreamSubjects() != int64(n) || len(rep.GetNodes()) != 4 {
		t.Fatalf("reconciler: clean %v, %d subjects in the log, %d nodes, divergences %v, missing %v",
			rep.GetClean(), rep.GetStreamSubjects(), len(rep.GetNodes()), rep.GetDivergences(), rep.GetMissing())
	}
	var held int64
	for _, nd := range rep.GetNodes() {
		held += nd.GetSubjects()
	}
	if held != 2*int64(n) {
		t.Fatalf("the 4 nodes hold %d subjects, want %d (each subject on both replicas of its partition)", held, 2*n)
	}

	// Every subject rank 1 from every node.
	start = time.Now()
	thr := float32(-1)
	next.Store(0)
	var misses atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= 4*n {
					return
				}
				i, node := k/4, k%4
				_ = w
				res, err := nodes[node].client.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &thr,
					Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, i)}}})
				if err != nil {
					t.Errorf("identify %d at node %d: %v", i, node, err)
					return
				}
				if len(res.Candidates) == 0 || res.Candidates[0].SubjectId != synthID(i) {
					misses.Add(1)
				}
				if cv := res.GetCoverage(); cv.GetAnswered() != 2 || cv.GetTotal() != 2 || cv.GetPartial() {
					t.Errorf("coverage %v", cv)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d identifications (every subject from every node) in %v", 4*n, time.Since(start).Round(time.Millisecond))
	if m := misses.Load(); m > 0 {
		t.Fatalf("%d of %d identifications did not find the subject rank 1", m, 4*n)
	}

	// The merged top 10 is one engine's top 10 over the same gallery.
	whole := wholeGallery(t, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for p := range 100 {
		v := make([]float32, templates.FaceDim)
		synthetic.Vector(rng.IntN(n), v)
		for j := range v {
			v[j] += float32(rng.NormFloat64() * 0.05)
		}
		probe, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := nodes[p%4].client.Identify(ctx, &pb.IdentifyRequest{TopK: 10, Threshold: &thr,
			Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: probe}}})
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}},
			Query: engine.Query{TopK: 10, Threshold: &thr}})
		if err != nil {
			t.Fatal(err)
		}
		var g, w []string
		for _, c := range got.Candidates {
			g = append(g, c.SubjectId)
		}
		for _, c := range want.Candidates {
			w = append(w, c.SubjectID)
		}
		if !slices.Equal(g, w) {
			t.Fatalf("probe %d: cluster top 10 %v, one engine's %v", p, g, w)
		}
		// The merged answer states the rule and each candidate's decision
		// FMR as one engine does (issue 18: one consistent decision).
		if got.Rule != want.Decision.Rule || got.Rule == "" {
			t.Fatalf("probe %d: cluster rule %q, one engine's %q", p, got.Rule, want.Decision.Rule)
		}
		for i, c := range got.Candidates {
			if c.DecisionFmr != want.Candidates[i].DecisionFMR {
				t.Fatalf("probe %d: %s decision FMR %g in the cluster, %g in one engine", p, c.SubjectId, c.DecisionFmr, want.Candidates[i].DecisionFMR)
			}
		}
	}

	// Subject calls go to the owning partition from any node.
	for node := range 4 {
		got, err := nodes[node].client.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: synthID(7)})
		if err != nil || got.Subject.GetName() != "S7" {
			t.Fatalf("get from node %d: %v %v", node, got, err)
		}
		// Export too reaches the owner: enrolled from templates, the
		// subject has no sample to export (a wrong partition would answer
		// NotFound).
		_, err = nodes[node].client.ExportSubject(ctx, &pb.ExportSubjectRequest{SubjectId: synthID(7)})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no kept sample") {
			t.Fatalf("export from node %d: %v", node, err)
		}
	}
	lists, err := nodes[1].client.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range lists.Watchlists {
		total += l.SubjectCount
	}
	if total != int64(n) {
		t.Fatalf("watchlists count %d subjects, want %d: %v", total, n, lists.Watchlists)
	}
	seen := 0
	tok := ""
	prev := ""
	for {
		page, err := nodes[2].client.ListSubjects(ctx, &pb.ListSubjectsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Subjects {
			if s.Id <= prev {
				t.Fatalf("list out of order: %q after %q", s.Id, prev)
			}
			prev = s.Id
		}
		seen += len(page.Subjects)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if seen != n {
		t.Fatalf("listed %d subjects, want %d", seen, n)
	}
	if _, err := enrolSynth(ctx, nodes[0].client, t, 5); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("enrolling an existing id: %v", err)
	}
	clusterWatchlists(t, nodes, n)

	// A whole partition down: UNAVAILABLE, or a partial answer if allowed.
	nodes[1].stop()
	nodes[3].stop()
	probe := &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, 3)}}
	if _, err := nodes[0].client.Identify(ctx, &pb.IdentifyRequest{Probe: probe}); status.Code(err) != codes.Unavailable {
		t.Fatalf("identify with partition 1 down: %v", err)
	}
	res, err := nodes[2].client.Identify(ctx, &pb.IdentifyRequest{Probe: probe, AllowPartial: true, Threshold: &thr})
	if err != nil {
		t.Fatal(err)
	}
	if cv := res.GetCoverage(); !cv.GetPartial() || cv.GetAnswered() != 1 || !slices.Equal(cv.GetMissing(), []int32{1}) {
		t.Fatalf("partial answer's coverage: %v", cv)
	}
}

// wholeGallery is one engine holding the first n synthetic subjects.
func wholeGallery(t testing.TB, n int) *engine.Engine {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	subs := make([]store.Subject, n)
	for i := range subs {
		var tpl templates.Template
		if err := tpl.UnmarshalBinary(synthTemplate(t, i)); err != nil {
			t.Fatal(err)
		}
		subs[i] = store.Subject{ID: synthID(i), Name: "S" + strconv.Itoa(i), Watchlists: []string{"wl" + strconv.Itoa(i%3)},
			Templates: []templates.Template{tpl}}
	}
	if err := st.Import(subs); err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestClusterReadYourWrites: 1,000 enrolments through random nodes, each
// followed at once by an identification through another random node with
// the enrolment's consistency token: the subject is found every time.
func TestClusterReadYourWrites(t *testing.T) {
	nodes := startTestCluster(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	thr := float32(-1)
	pairs := 1000
	if testing.Short() {
		pairs = 200
	}
	misses := 0
	var firstToken string
	for i := range pairs {
		a, b := rng.IntN(4), rng.IntN(4)
		er, err := enrolSynth(ctx, nodes[a].client, t, 100_000+i)
		if err != nil {
			t.Fatal(err)
		}
		if er.ConsistencyToken == "" {
			t.Fatal("no consistency token in a cluster's enrolment answer")
		}
		if i == 0 {
			firstToken = er.ConsistencyToken
		}
		res, err := nodes[b].client.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &thr, ConsistencyToken: er.ConsistencyToken,
			Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, 100_000+i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Candidates) == 0 || res.Candidates[0].SubjectId != synthID(100_000+i) {
			misses++
			t.Errorf("enrolled %s through node %d (token %s), identified through node %d: %v (coverage %v)",
				synthID(100_000+i), a, er.ConsistencyToken, b, res.Candidates, res.GetCoverage())
		}
	}
	if misses > 0 {
		t.Fatalf("%d of %d identifications with the enrolment's token missed it", misses, pairs)
	}
	// Every node's metrics: connected, caught up, and the coverage of the
	// searches it coordinated.
	for i, nd := range nodes {
		fams, err := nd.m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			for _, mt := range f.GetMetric() {
				switch {
				case mt.GetGauge() != nil:
					got[f.GetName()] += mt.GetGauge().GetValue()
				case mt.GetCounter() != nil:
					got[f.GetName()] += mt.GetCounter().GetValue()
				case mt.GetHistogram() != nil:
					got[f.GetName()] += float64(mt.GetHistogram().GetSampleCount())
				}
			}
		}
		if got["bordermatch_cluster_nats_connected"] != 1 || got["bordermatch_cluster_shard_map_epoch"] != 1 ||
			got["bordermatch_cluster_applied_messages_total"] == 0 {
			t.Errorf("node %d metrics: %v", i, got)
		}
		if _, ok := got["bordermatch_cluster_apply_lag_messages"]; !ok {
			t.Errorf("node %d: no apply lag metric", i)
		}
		if got["bordermatch_cluster_search_coverage_ratio"] == 0 {
			t.Logf("node %d coordinated no search", i)
		}
	}

	// A deletion's token: a later GetSubject through another node sees it.
	// (The deletion passes the enrolment's token: the partition checks the
	// subject exists once it has applied the enrolment.)
	dr, err := nodes[0].client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: synthID(100_000), ConsistencyToken: firstToken})
	if err != nil {
		t.Fatal(err)
	}
	for node := range 4 {
		_, err := nodes[node].client.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: synthID(100_000), ConsistencyToken: dr.ConsistencyToken})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("node %d after the deletion: %v", node, err)
		}
	}
	if _, err := nodes[1].client.Identify(ctx, &pb.IdentifyRequest{ConsistencyToken: "v1.x.y",
		Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, 1)}}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a malformed token: %v", err)
	}
}

// TestClusterRepartition: a cluster of one partition (3 replicas, each
// running a JetStream server) grows to two by a planned shard map: the plan
// moves only the new partition's shards, an apply from a stale epoch is
// refused, nodes whose shards changed stop answering other nodes until
// restarted, restarted nodes drop the shards they no longer own, a new
// node bootstraps from a peer's backup, and afterwards every subject is
// found rank 1 from every node, listed once, and the reconciler is clean.
func TestClusterRepartition(t *testing.T) {
	ctx := context.Background()
	cfgs := clusterConfigs(t)
	for i := range cfgs {
		cfgs[i].Partitions, cfgs[i].Partition, cfgs[i].Replica = 1, 0, i
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := make([]*testNode, 4)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { nodes[i] = startTestNode(t, cfgs[i], dirs[i]) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const n = 300
	for i := range n {
		if _, err := enrolSynth(ctx, nodes[i%3].client, t, i); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := nodes[0].admin.ClusterPlan(ctx, &pb.ClusterPlanRequest{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if plan.CurrentEpoch != 1 || plan.NextEpoch != 2 || len(plan.Moves) != 128 || !slices.Equal(plan.Load, []int32{128, 128}) {
		t.Fatalf("plan: epoch %d → %d, %d moves, load %v", plan.CurrentEpoch, plan.NextEpoch, len(plan.Moves), plan.Load)
	}
	for _, m := range plan.Moves {
		if m.From != 0 || m.To != 1 {
			t.Fatalf("move %v: only shards to the new partition should move", m)
		}
	}
	applied, err := nodes[1].admin.ClusterApply(ctx, &pb.ClusterApplyRequest{Partitions: 2, ExpectedEpoch: 1})
	if err != nil || !applied.Applied {
		t.Fatalf("apply: %v %v", applied, err)
	}
	if _, err := nodes[2].admin.ClusterApply(ctx, &pb.ClusterApplyRequest{Partitions: 2, ExpectedEpoch: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("apply of a plan from a stale epoch: %v", err)
	}

	// Restart the three as 2 partitions: node 0 and 1 partition 0, node 2
	// partition 1; one at a time, so JetStream keeps its quorum.
	for i, part := range []int{0, 0, 1} {
		nodes[i].stop()
		cfgs[i].Partitions, cfgs[i].Partition, cfgs[i].Replica = 2, part, map[int]int{0: 0, 1: 1, 2: 0}[i]
		nodes[i] = startTestNode(t, cfgs[i], dirs[i])
	}
	// A new node for partition 1 copies node 2's gallery, then the log.
	cfgs[3].Partitions, cfgs[3].Partition, cfgs[3].Replica = 2, 1, 1
	nodes[3] = startTestNode(t, cfgs[3], dirs[3])

	thr := float32(-1)
	for i := range n {
		for node := range 4 {
			res, err := nodes[node].client.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &thr,
				Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, i)}}})
			if err != nil {
				t.Fatalf("identify %d through node %d: %v", i, node, err)
			}
			if len(res.Candidates) == 0 || res.Candidates[0].SubjectId != synthID(i) || res.Coverage.GetTotal() != 2 {
				sh := cluster.ShardOf(synthID(i), cluster.DefaultShards)
				for k, nd := range nodes {
					_, gerr := nd.eng.Get(ctx, synthID(i))
					ap, _ := nd.eng.Applied(sh)
					t.Logf("node %d (partition %d): holds it: %v, shard %d applied %d, owns %v, subjects %d, replica %+v",
						k, nd.cfg.Partition, gerr == nil, sh, ap, nd.node.owns(sh), nd.eng.Subjects(), nd.node.rep.Stats())
				}
				t.Fatalf("identify %d through node %d: %v, coverage %v", i, node, res.Candidates, res.Coverage)
			}
		}
	}
	page, err := nodes[3].client.ListSubjects(ctx, &pb.ListSubjectsRequest{PageSize: 1000})
	if err != nil || len(page.Subjects) != n {
		t.Fatalf("list after the move: %d subjects, %v", len(page.GetSubjects()), err)
	}
	rep, err := nodes[0].admin.ClusterVerify(ctx, &pb.ClusterVerifyRequest{WaitSeconds: 30, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.StreamSubjects != n {
		t.Fatalf("reconciler after the move: clean %v, %d subjects in the log, divergences %v, missing %v", rep.Clean, rep.StreamSubjects, rep.Divergences, rep.Missing)
	}
	var held int64
	for _, nd := range rep.Nodes {
		held += nd.Subjects
	}
	if held != 2*n {
		t.Fatalf("the nodes hold %d subjects, want %d: a node kept shards it no longer owns", held, 2*n)
	}
}

// TestClusterBadMessages: malformed and oversized messages on the
// cluster's subjects — the log's, the searches', the partition calls' —
// are refused or skipped and logged, and the nodes go on applying the log
// and answering.
func TestClusterBadMessages(t *testing.T) {
	nodes := startTestCluster(t)
	ctx := context.Background()
	nc, err := nats.Connect(nodes[0].node.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Garbage in the log, behind the API's back, on a shard each
	// partition owns.
	for sh := range 4 {
		if _, err := js.Publish(ctx, cluster.ShardSubject(sh), []byte("not an envelope")); err != nil {
			t.Fatal(err)
		}
	}
	// Oversized: the stream refuses it.
	if _, err := js.Publish(ctx, cluster.ShardSubject(0), make([]byte, cluster.MaxMessageSize+1)); err == nil {
		t.Fatal("the stream took a message over its size limit")
	}
	// Garbage requests to the partitions.
	for _, subj := range []string{cluster.PartitionSearchSubject(0), cluster.PartitionSearchSubject(1), cluster.CallSubject(0), cluster.CallSubject(1)} {
		msg, err := nc.Request(subj, []byte("{not json"), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: no answer to a malformed request: %v", subj, err)
		}
		if len(msg.Data) == 0 && msg.Header.Get(cluster.HeaderCode) == "" {
			t.Fatalf("%s: an empty answer to a malformed request", subj)
		}
	}
	// The nodes go on: enrol and find through every node.
	thr := float32(-1)
	for i := range 20 {
		er, err := enrolSynth(ctx, nodes[i%4].client, t, 200_000+i)
		if err != nil {
			t.Fatal(err)
		}
		for node := range 4 {
			res, err := nodes[node].client.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &thr, ConsistencyToken: er.ConsistencyToken,
				Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, 200_000+i)}}})
			if err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectId != synthID(200_000+i) {
				t.Fatalf("after bad messages, identify through node %d: %v %v", node, res.GetCandidates(), err)
			}
		}
	}
	var malformed uint64
	for _, n := range nodes {
		malformed += n.node.rep.Stats().Malformed
	}
	if malformed != 8 { // 4 messages, each on the 2 replicas of its shard's partition
		t.Fatalf("%d malformed log messages recorded by the replicas, want 8", malformed)
	}
}
