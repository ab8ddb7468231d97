package main

// A real cluster of real processes (issue 15): 3 nats-server processes (a
// JetStream cluster, R3, sync always) and 4 matchd nodes (2 partitions × 2
// replicas), under SIGKILL of any of them and under a network partition of
// the NATS routes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/internal/synthetic"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
)

// natsServer builds the NATS server of the module's dependency once.
var natsServer = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "nats-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building nats-server: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is a process the cluster tests start, SIGKILL and restart with the
// same arguments; its output goes to a log file kept across restarts.
type proc struct {
	name    string
	bin     string
	args    []string
	logFile string
	cmd     *exec.Cmd
	done    chan error
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "----- start %s\n", time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	p.done = done
	cmd := p.cmd
	go func() { done <- cmd.Wait() }()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// exited reports whether the process is gone, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logFile)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitFor polls ok until it is true or the process exits or time is up.
func (p *proc) waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if gone, err := p.exited(); gone {
			t.Fatalf("%s exited while waiting for %s: %v\n%s", p.name, what, err, p.tail())
		}
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: no %s within %v\n%s", p.name, what, timeout, p.tail())
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// tcpProxy forwards a listen address to a target; cut closes every
// connection and refuses new ones until heal.
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *tcpProxy) serve(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil || !p.track(u) {
		c.Close()
		if u != nil {
			u.Close()
		}
		return
	}
	go func() { io.Copy(u, c); u.Close(); c.Close() }()
	io.Copy(c, u)
	u.Close()
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// testCluster is 3 nats-server and 4 matchd processes.
type testCluster struct {
	t        *testing.T
	dir      string
	nats     []*proc
	natsURLs []string
	natsMon  []string // monitoring host:port
	// proxies[i][j] carries server i's route to server j (network
	// partition test only).
	proxies [][]*tcpProxy
	nodes   []*proc
	addrs   []string
	conns   []*grpc.ClientConn
	clients []pb.MatcherClient
}

type clusterOptions struct {
	proxies bool
	// servers[i], when set, are the only NATS servers matchd i connects to.
	servers map[int][]int
}

func startRealCluster(t *testing.T, opt clusterOptions) *testCluster {
	t.Helper()
	bin, err := natsServer()
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, dir: t.TempDir()}
	t.Cleanup(func() {
		for _, cn := range c.conns {
			cn.Close()
		}
		for _, p := range c.nodes {
			p.kill()
		}
		for _, p := range c.nats {
			p.kill()
		}
		if t.Failed() {
			for _, p := range append(append([]*proc{}, c.nats...), c.nodes...) {
				t.Logf("log of %s (end):\n%s", p.name, p.tail())
			}
		}
	})
	routeAddrs := make([]string, 3)
	clientAddrs := make([]string, 3)
	for i := range 3 {
		clientAddrs[i], routeAddrs[i] = freeAddr(t), freeAddr(t)
		c.natsMon = append(c.natsMon, freeAddr(t))
		c.natsURLs = append(c.natsURLs, "nats://"+clientAddrs[i])
	}
	if opt.proxies {
		c.proxies = make([][]*tcpProxy, 3)
		for i := range 3 {
			c.proxies[i] = make([]*tcpProxy, 3)
			for j := range 3 {
				if i != j {
					c.proxies[i][j] = startProxy(t, routeAddrs[j])
				}
			}
		}
	}
	for i := range 3 {
		var routes []string
		for j := range 3 {
			switch {
			case i == j:
			case opt.proxies:
				routes = append(routes, `"nats-route://`+c.proxies[i][j].addr()+`"`)
			default:
				routes = append(routes, `"nats-route://`+routeAddrs[j]+`"`)
			}
		}
		advertise := ""
		if opt.proxies {
			// Gossip must not tell the others the real route address:
			// they would route around the proxies. A closed port.
			advertise = fmt.Sprintf("  advertise: %q\n", freeAddr(t))
		}
		host, port, _ := net.SplitHostPort(clientAddrs[i])
		mhost, mport, _ := net.SplitHostPort(c.natsMon[i])
		conf := fmt.Sprintf(`server_name: nats-%d
host: %s
port: %s
http: "%s:%s"
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: bordermatch
  listen: %q
%s  routes: [%s]
}
`, i, host, port, mhost, mport, filepath.Join(c.dir, fmt.Sprintf("nats-%d", i)), routeAddrs[i], advertise, strings.Join(routes, ", "))
		confPath := filepath.Join(c.dir, fmt.Sprintf("nats-%d.conf", i))
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c.nats = append(c.nats, &proc{name: fmt.Sprintf("nats-%d", i), bin: bin, args: []string{"-c", confPath},
			logFile: filepath.Join(c.dir, fmt.Sprintf("nats-%d.log", i))})
	}
	for i := range 3 {
		c.nats[i].start(t)
	}
	for i := range 3 {
		c.waitNATS(i)
	}

	for i := range 4 {
		servers := c.natsURLs
		if only, ok := opt.servers[i]; ok {
			servers = nil
			for _, s := range only {
				servers = append(servers, c.natsURLs[s])
			}
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "node: node-%d\npartition: %d\nreplica: %d\npartitions: 2\nstream_replicas: 3\nready_timeout: 60s\nservers:\n", i, i%2, i/2)
		for _, s := range servers {
			fmt.Fprintf(&sb, "  - %s\n", s)
		}
		yml := filepath.Join(c.dir, fmt.Sprintf("node-%d.yaml", i))
		if err := os.WriteFile(yml, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		data := filepath.Join(c.dir, fmt.Sprintf("data-%d", i))
		c.addrs = append(c.addrs, addr)
		c.nodes = append(c.nodes, &proc{name: fmt.Sprintf("node-%d", i), bin: filepath.Join(binDir, "matchd"),
			args: []string{"--insecure", "--listen", addr, "--data", data, "--models", modelsDir(t), "--cluster", yml,
				"--face-model", "dlib", "--rate-limit", "0", "--log-format", "json"},
			logFile: filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i))})
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
				Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}}))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, conn)
		c.clients = append(c.clients, pb.NewMatcherClient(conn))
	}
	for i := range 4 {
		c.nodes[i].start(t)
	}
	for i := range 4 {
		c.waitNode(i)
	}
	return c
}

// waitNATS waits until NATS server i answers /healthz (JetStream current).
func (c *testCluster) waitNATS(i int) {
	c.t.Helper()
	hc := http.Client{Timeout: time.Second}
	c.nats[i].waitFor(c.t, "healthy JetStream", 60*time.Second, func() bool {
		r, err := hc.Get("http://" + c.natsMon[i] + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

// waitNode waits until matchd i listens (it caught up with the log) and
// its health service says SERVING.
func (c *testCluster) waitNode(i int) {
	c.t.Helper()
	h := healthpb.NewHealthClient(c.conns[i])
	c.nodes[i].waitFor(c.t, "SERVING", 90*time.Second, func() bool {
		if !listening(c.addrs[i]) {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// verifyJSON is `watchlist cluster verify --json`.
type verifyJSON struct {
	Clean bool `json:"clean"`
	Nodes []struct {
		Node     string `json:"node"`
		Subjects int64  `json:"subjects"`
	} `json:"nodes"`
	Divergences    []any    `json:"divergences"`
	Missing        []string `json:"missing"`
	StreamSubjects int64    `json:"stream_subjects"`
	StreamLast     uint64   `json:"stream_last_sequence"`
}

func (c *testCluster) verify(node int) (verifyJSON, string, int) {
	c.t.Helper()
	out, errs, code := cli(c.t, c.addrs[node], "--insecure", "--json", "cluster", "verify", "--replicas", "2", "--wait", "60")
	var v verifyJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("cluster verify --json: %v\nstdout: %s\nstderr: %s", err, out, errs)
	}
	return v, out + errs, code
}

// streamMessages is the number of messages the enrolment stream holds, asked
// of NATS directly.
func (c *testCluster) streamMessages() uint64 {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.natsURLs, ","))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, cluster.StreamName)
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return info.State.Msgs
}

// moveStreamLeader asks the enrolment stream's leader to step down until
// the named server leads it.
func (c *testCluster) moveStreamLeader(server string) {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.natsURLs, ","))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	leader := ""
	for try := 0; try < 30; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if s, err := js.Stream(ctx, cluster.StreamName); err == nil {
			if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
				leader = info.Cluster.Leader
			}
		}
		cancel()
		if leader == server {
			return
		}
		if leader != "" {
			nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+cluster.StreamName, []byte(`{"placement":{"preferred":"`+server+`"}}`), 5*time.Second)
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatalf("the stream leader is %q, could not move it to %s", leader, server)
}

func clusterTemplate(i int) []byte {
	v := make([]float32, templates.FaceDim)
	synthetic.Vector(i, v)
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

func clusterEnrollRequest(i int) *pb.EnrollRequest {
	id := synthetic.ID(i)
	return &pb.EnrollRequest{SubjectId: id, Name: "S" + strconv.Itoa(i), Watchlists: []string{"wl"}, RequestId: "req-" + id,
		Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: clusterTemplate(i)}}}}
}

var anyScore = float32(-1)

// identifyRank1 is an Identify of subject i's template through client cl.
func identifyRank1(ctx context.Context, cl pb.MatcherClient, i int, tok string) (*pb.IdentifyResponse, error) {
	return cl.Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &anyScore, ConsistencyToken: tok,
		Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: clusterTemplate(i)}}})
}

func isUnavailable(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
}

// acked is an acknowledged enrolment: the subject's index and the token.
type acked struct {
	i   int
	tok string
}

// loadStats counts what the clients saw.
type loadStats struct {
	enrolled, retried, landedOnRetry, enrolErrors atomic.Int64
	identOK, identUnavailable, identWrong         atomic.Int64
	// identDownNode counts the unavailable identifications sent to the
	// node that was down at the time (a client's own bad luck, not the
	// cluster's).
	identDownNode atomic.Int64
	// identSlow counts identifications that took over a second, and
	// identTokenWait the unavailable ones whose partition had not applied
	// the token in time.
	identSlow, identTokenWait atomic.Int64
}

// load runs enrolling and identifying clients until stop is closed; the
// enrolling clients finish the subject they are on (retrying until it is
// acknowledged) before they return.
type load struct {
	c     *testCluster
	rng   func(n int) int
	next  atomic.Int64
	mu    sync.Mutex
	acked []acked
	stats loadStats
	stop  chan struct{}
	wg    sync.WaitGroup
	down  [4]atomic.Bool // matchd i is killed
}

func (l *load) node() int { return l.rng(4) }

func (l *load) start(enrolers, identifiers int) {
	t := l.c.t
	for range enrolers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := int(l.next.Add(1)) - 1
				req := clusterEnrollRequest(i)
				deadline := time.Now().Add(2 * time.Minute)
				for attempt := 0; ; attempt++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp, err := l.c.clients[l.node()].Enroll(ctx, req)
					cancel()
					tok := resp.GetConsistencyToken()
					if status.Code(err) == codes.AlreadyExists && attempt > 0 {
						// An earlier attempt landed: success. No token: read
						// it back later by polling.
						l.stats.landedOnRetry.Add(1)
						err = nil
					}
					if err == nil {
						l.stats.enrolled.Add(1)
						if attempt > 0 {
							l.stats.retried.Add(1)
						}
						l.mu.Lock()
						l.acked = append(l.acked, acked{i, tok})
						l.mu.Unlock()
						break
					}
					if status.Code(err) == codes.AlreadyExists || time.Now().After(deadline) {
						l.stats.enrolErrors.Add(1)
						t.Errorf("enrol %s (attempt %d): %v", req.SubjectId, attempt, err)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(40 * time.Millisecond) // leave the 2 cores some room
			}
		})
	}
	for range identifiers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				n := len(l.acked)
				var a acked
				if n > 0 {
					a = l.acked[l.rng(n)]
				}
				l.mu.Unlock()
				if n == 0 || a.tok == "" {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				node := l.node()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				t0 := time.Now()
				res, err := identifyRank1(ctx, l.c.clients[node], a.i, a.tok)
				cancel()
				if time.Since(t0) > time.Second {
					l.stats.identSlow.Add(1)
				}
				if strings.Contains(status.Convert(err).Message(), "has not applied token") {
					l.stats.identTokenWait.Add(1)
				}
				cv := res.GetCoverage()
				switch {
				case err != nil && isUnavailable(err):
					l.stats.identUnavailable.Add(1)
					if l.down[node].Load() {
						l.stats.identDownNode.Add(1)
					}
				case err != nil:
					l.stats.identWrong.Add(1)
					t.Errorf("identify %s through node-%d: %v", synthetic.ID(a.i), node, err)
				case len(res.Candidates) == 0 || res.Candidates[0].SubjectId != synthetic.ID(a.i) || res.Candidates[0].Rank != 1 ||
					cv.GetAnswered() != 2 || cv.GetTotal() != 2 || cv.GetPartial():
					l.stats.identWrong.Add(1)
					t.Errorf("identify %s through node-%d (token %s): candidates %v, coverage %v: a wrong answer", synthetic.ID(a.i), node, a.tok, res.Candidates, cv)
				default:
					l.stats.identOK.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// checkAll checks every acknowledged enrolment through every node: present
// (GetSubject) and found rank 1 (Identify), with the enrolment's token, or
// polling briefly when the acknowledgement was an ALREADY_EXISTS.
func (c *testCluster) checkAll(all []acked) {
	t := c.t
	t.Helper()
	var wg sync.WaitGroup
	var bad atomic.Int64
	work := make(chan acked)
	for range 4 {
		wg.Go(func() {
			for a := range work {
				id := synthetic.ID(a.i)
				for node, cl := range c.clients {
					var err error
					var res *pb.IdentifyResponse
					for try := 0; try < 50; try++ {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err = cl.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: id, ConsistencyToken: a.tok})
						if err == nil {
							res, err = identifyRank1(ctx, cl, a.i, a.tok)
							if err == nil && (len(res.Candidates) == 0 || res.Candidates[0].SubjectId != id) {
								err = fmt.Errorf("identify: candidates %v coverage %v", res.Candidates, res.GetCoverage())
							}
						}
						cancel()
						if err == nil || a.tok != "" {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
					if err != nil {
						if bad.Add(1) <= 20 {
							t.Errorf("acknowledged %s through node-%d: %v", id, node, err)
						}
					}
				}
			}
		})
	}
	for _, a := range all {
		work <- a
	}
	close(work)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Errorf("%d checks of acknowledged enrolments failed", n)
	}
}

// TestClusterKill: clients enrol and identify through random nodes while
// a random matchd or NATS server is SIGKILLed and restarted, 20 rounds, and
// once both replicas of a partition at once. No identification is ever
// wrong with full coverage, every acknowledged enrolment is found through
// every node afterwards, and the log holds each subject once.
func TestClusterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("a real 7-process cluster under SIGKILL: not with -short")
	}
	start := time.Now()
	c := startRealCluster(t, clusterOptions{})
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var rmu sync.Mutex
	r := rand.New(rand.NewPCG(seed, 15))
	rng := func(n int) int { rmu.Lock(); defer rmu.Unlock(); return r.IntN(n) }

	l := &load{c: c, rng: rng, stop: make(chan struct{})}
	l.start(3, 2)
	time.Sleep(2 * time.Second)

	rounds := 20
	var natsKills, nodeKills int
	for round := range rounds {
		k := rng(7)
		var p *proc
		if k < 3 {
			natsKills++
			p = c.nats[k]
		} else {
			nodeKills++
			p = c.nodes[k-3]
		}
		t0 := time.Now()
		if k >= 3 {
			l.down[k-3].Store(true)
		}
		p.kill()
		time.Sleep(2*time.Second + time.Duration(rng(1000))*time.Millisecond)
		p.start(t)
		if k < 3 {
			c.waitNATS(k)
		} else {
			c.waitNode(k - 3)
			l.down[k-3].Store(false)
		}
		t.Logf("round %2d: killed %s, back after %v; %d acknowledged, identify ok %d unavailable %d (waiting for a token %d), over 1 s %d",
			round, p.name, time.Since(t0).Round(time.Millisecond), l.stats.enrolled.Load(), l.stats.identOK.Load(), l.stats.identUnavailable.Load(),
			l.stats.identTokenWait.Load(), l.stats.identSlow.Load())
		if t.Failed() {
			break
		}
	}

	// Both replicas of a partition at once, under the same load.
	part := rng(2)
	l.down[part].Store(true)
	l.down[part+2].Store(true)
	c.nodes[part].kill()
	c.nodes[part+2].kill()
	live := 1 - part // node-(1-part) is of the other partition and up
	l.mu.Lock()
	probeI := l.acked[0].i
	l.mu.Unlock()
	for _, node := range []int{live, live + 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		t0 := time.Now()
		_, err := identifyRank1(ctx, c.clients[node], probeI, "")
		if status.Code(err) != codes.Unavailable {
			t.Errorf("identify through node-%d with partition %d down: %v after %v, want UNAVAILABLE", node, part, err, time.Since(t0))
		}
		t1 := time.Now()
		res, perr := c.clients[node].Identify(ctx, &pb.IdentifyRequest{TopK: 1, Threshold: &anyScore, AllowPartial: true,
			Probe: &pb.Sample{Kind: &pb.Sample_Template{Template: clusterTemplate(probeI)}}})
		cancel()
		cv := res.GetCoverage()
		if perr != nil || !cv.GetPartial() || cv.GetAnswered() != 1 || cv.GetTotal() != 2 || !slices.Equal(cv.GetMissing(), []int32{int32(part)}) {
			t.Errorf("identify through node-%d allowing a partial answer with partition %d down: %v after %v, coverage %v", node, part, perr, time.Since(t1), cv)
		}
		t.Logf("partition %d down, through node-%d: %v after %v; allowing partial: coverage %v after %v", part, node, status.Code(err), t1.Sub(t0).Round(time.Millisecond), cv, time.Since(t1).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	c.nodes[part].start(t)
	c.nodes[part+2].start(t)
	c.waitNode(part)
	c.waitNode(part + 2)
	l.down[part].Store(false)
	l.down[part+2].Store(false)
	time.Sleep(time.Second)

	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	all := slices.Clone(l.acked)
	l.mu.Unlock()
	loadTook := time.Since(start)

	c.checkAll(all)
	v, out, code := c.verify(rng(4))
	var held int64
	for _, n := range v.Nodes {
		held += n.Subjects
	}
	msgs := c.streamMessages()
	if code != 0 || !v.Clean || v.StreamSubjects != int64(len(all)) || held != 2*v.StreamSubjects || msgs != uint64(len(all)) {
		t.Errorf("after the kills: verify exit %d, clean %v, %d subjects in the log (%d messages), the 4 nodes hold %d, %d acknowledged\n%s",
			code, v.Clean, v.StreamSubjects, msgs, held, len(all), out)
	}
	t.Logf("acknowledged %d enrolments (%d needed a retry, %d of them acknowledged by ALREADY_EXISTS), %d enrolment failures; "+
		"identify ok %d, unavailable %d (%d of them sent to the killed node, %d waiting for a token), wrong %d, over 1 s %d; rounds: %d NATS server kills, %d matchd kills, 1 whole-partition kill (partition %d); "+
		"stream %d messages, %d subjects; load phase %v, total %v",
		len(all), l.stats.retried.Load(), l.stats.landedOnRetry.Load(), l.stats.enrolErrors.Load(),
		l.stats.identOK.Load(), l.stats.identUnavailable.Load(), l.stats.identDownNode.Load(), l.stats.identTokenWait.Load(), l.stats.identWrong.Load(), l.stats.identSlow.Load(), natsKills, nodeKills, part,
		msgs, v.StreamSubjects, loadTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// partitionIDs are n subject indexes from base up whose ids partition p
// owns under the first shard map (cluster.DefaultShards over 2).
func partitionIDs(t *testing.T, p, base, n int) []int {
	m, err := cluster.NewShardMap(cluster.DefaultShards, 2)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for i := base; len(out) < n; i++ {
		if m.PartitionOf(synthetic.ID(i)) == p {
			out = append(out, i)
		}
	}
	return out
}

// TestClusterNetworkPartition: the NATS routes go through TCP proxies; one
// NATS server is cut off from the others. A matchd connected only to it
// refuses enrolments (UNAVAILABLE, the log did not acknowledge) while a
// matchd on the majority side enrols; healed, every replica converges and
// the formerly isolated node finds what the majority enrolled.
func TestClusterNetworkPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("a real 7-process cluster: not with -short")
	}
	start := time.Now()
	const iso = 2     // the isolated NATS server
	const isoNode = 3 // node-3 (partition 1) connects only to it
	// node-3 connects only to the server to be isolated, the others only
	// to the majority's, so that partition 1 keeps a replica there.
	c := startRealCluster(t, clusterOptions{proxies: true, servers: map[int][]int{0: {0, 1}, 1: {0, 1}, 2: {0, 1}, isoNode: {iso}}})
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	// Before: enrolments through both sides.
	for _, i := range []int{0, 1, 2, 3} {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := c.clients[i].Enroll(cctx, clusterEnrollRequest(i))
		cancel()
		if err != nil {
			t.Fatalf("enrol %d through node-%d before the partition: %v", i, i, err)
		}
	}

	// The hard case: the server cut off leads the stream.
	c.moveStreamLeader(fmt.Sprintf("nats-%d", iso))
	for j := range 3 {
		if j != iso {
			c.proxies[iso][j].setCut(true)
			c.proxies[j][iso].setCut(true)
		}
	}
	t.Logf("nats-%d isolated (it led the stream)", iso)
	cutAt := time.Now()

	// The isolated side: ids of node-3's own partition, so that the id
	// check is answered by node-3 itself and the log is what refuses.
	var refused []string
	for _, i := range partitionIDs(t, isoNode%2, 1000, 3) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		t0 := time.Now()
		_, err := c.clients[isoNode].Enroll(cctx, clusterEnrollRequest(i))
		cancel()
		switch {
		case status.Code(err) != codes.Unavailable:
			t.Errorf("enrol %s through the isolated node-%d: %v, want UNAVAILABLE", synthetic.ID(i), isoNode, err)
		// Until NATS declares the cut routes dead, the id check may go to
		// the partition's replica on the other side (a queue group spans
		// the cluster) and time out: refused before the log, equally
		// UNAVAILABLE, nothing stored.
		case !strings.Contains(status.Convert(err).Message(), "the enrolment log did not acknowledge") &&
			!strings.Contains(status.Convert(err).Message(), "did not answer within"):
			t.Errorf("enrol through the isolated node: UNAVAILABLE but the message says neither the log nor the id check failed: %q", status.Convert(err).Message())
		}
		refused = append(refused, fmt.Sprintf("%v after %v", err, time.Since(t0).Round(time.Millisecond)))
	}
	t.Logf("the isolated node refused: %s", strings.Join(refused, "; "))
	// An id of the other partition: the id check cannot reach it.
	other := partitionIDs(t, 1-isoNode%2, 1000, 1)[0]
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := c.clients[isoNode].Enroll(cctx, clusterEnrollRequest(other))
	cancel()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("enrol %s (the other partition) through the isolated node: %v, want UNAVAILABLE", synthetic.ID(other), err)
	}
	t.Logf("the isolated node, an id of the other partition: %v", err)

	// The majority side still enrols (the stream may first need a new
	// leader if the isolated server led it: retry with the same request id).
	var during []acked
	for k := range 20 {
		i := 2000 + k
		req := clusterEnrollRequest(i)
		var resp *pb.EnrollResponse
		var err error
		t0 := time.Now()
		for attempt := 0; time.Since(t0) < time.Minute; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err = c.clients[k%3].Enroll(cctx, req) // node-0, node-1, node-2: all reach the majority
			cancel()
			if err == nil || (attempt > 0 && status.Code(err) == codes.AlreadyExists) {
				err = nil
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("enrol %s through node-%d on the majority side: %v", req.SubjectId, k%3, err)
		}
		during = append(during, acked{i, resp.GetConsistencyToken()})
	}
	t.Logf("the majority side enrolled %d subjects during the partition (%v after the cut)", len(during), time.Since(cutAt).Round(time.Millisecond))

	for j := range 3 {
		if j != iso {
			c.proxies[iso][j].setCut(false)
			c.proxies[j][iso].setCut(false)
		}
	}
	healedAt := time.Now()
	c.waitNATS(iso)
	v, out, code := c.verify(isoNode)
	if code != 0 || !v.Clean {
		t.Fatalf("after healing: cluster verify exit %d\n%s", code, out)
	}
	t.Logf("healed; verify clean %v after %v: %d subjects in the log", v.Clean, time.Since(healedAt).Round(time.Millisecond), v.StreamSubjects)
	if v.StreamSubjects != int64(4+len(during)) {
		t.Errorf("the log holds %d subjects, want %d (4 before, %d during, none of the refused)", v.StreamSubjects, 4+len(during), len(during))
	}
	c.checkAll(append([]acked{{0, ""}, {1, ""}, {2, ""}, {3, ""}}, during...))
	// The refused enrolments stored nothing.
	for _, i := range partitionIDs(t, isoNode%2, 1000, 3) {
		if _, err := c.clients[isoNode].GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: synthetic.ID(i)}); status.Code(err) != codes.NotFound {
			t.Errorf("refused enrolment %s: GetSubject %v, want NOT_FOUND", synthetic.ID(i), err)
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
