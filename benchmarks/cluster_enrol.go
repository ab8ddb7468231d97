package benchmarks

// bmbench cluster's durable-enrolment run: three JetStream servers, an R3
// stream synced on every write, clients appending, one replica applying.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// clusterPorts are n free loopback ports.
func clusterPorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func clusterEnrol(ctx context.Context, opt ClusterOptions, dir string, rep *ClusterReport, progress io.Writer) error {
	const servers = 3
	en := ClusterEnrol{Servers: servers, StreamReplicas: cluster.DefaultStreamReplicas, Clients: opt.Concurrency, Seconds: opt.Duration.Seconds()}
	ports, err := clusterPorts(2 * servers)
	if err != nil {
		return err
	}
	cfgs := make([]cluster.Config, servers)
	var urls []string
	for i := range servers {
		c := cluster.DefaultConfig()
		c.Node, c.Logger = fmt.Sprintf("bmbench-n%d", i), zerolog.Nop()
		e := &cluster.Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[servers+i]), StoreDir: filepath.Join(dir, fmt.Sprintf("nats-%d", i))}
		for j := range servers {
			if j != i {
				e.Routes = append(e.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[servers+j]))
			}
		}
		c.Embedded = e
		cfgs[i] = c
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	srvs := make([]*server.Server, servers)
	for i, c := range cfgs {
		s, err := cluster.StartEmbedded(c)
		if err != nil {
			return err
		}
		srvs[i] = s
		defer s.Shutdown()
	}
	connect := func(name string) (*nats.Conn, error) {
		return nats.Connect(strings.Join(urls, ","), nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	}
	// One connection and one Log per client.
	logs := make([]*cluster.Log, opt.Concurrency)
	for c := range logs {
		nc, err := connect("bmbench client " + strconv.Itoa(c))
		if err != nil {
			return err
		}
		defer nc.Close()
		if logs[c], err = cluster.Open(ctx, nc, cfgs[0]); err != nil {
			return err
		}
	}
	fmt.Fprintf(progress, "cluster: %d JetStream servers, R%d stream, %d clients ready\n", servers, en.StreamReplicas, opt.Concurrency)

	// A real 192-d template per enrolment (the clients' own vectors).
	lats := make([][]time.Duration, opt.Concurrency)
	errs := make([]int, opt.Concurrency)
	var firstErr atomic.Value
	var tbytes atomic.Int64
	start := time.Now()
	deadline := start.Add(opt.Duration)
	var wg sync.WaitGroup
	for c := range opt.Concurrency {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 0x656e726f6c))
			v := make([]float32, DefaultSearchDim)
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				randUnit(r, v)
				t, err := clusterTemplate(v)
				if err != nil {
					errs[c]++
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				tbytes.Store(int64(len(t)))
				id := fmt.Sprintf("e%02d-%07d", c, n)
				req := engine.EnrollRequest{SubjectID: id, Samples: []engine.Sample{{Template: t}}}
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				_, _, err = cluster.EnrollThroughLog(actx, logs[c], req, "req-"+id)
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs[c]++
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lats[c] = append(lats[c], d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	var all []time.Duration
	for c := range lats {
		all = append(all, lats[c]...)
		en.Errors += errs[c]
	}
	en.Acknowledged = len(all)
	en.PerSec = float64(len(all)) / elapsed.Seconds()
	en.AckP50, en.AckP99 = quantileMS(all, 0.5), quantileMS(all, 0.99)
	en.TemplateBytes = int(tbytes.Load())
	if en.Acknowledged == 0 {
		err, _ := firstErr.Load().(error)
		return fmt.Errorf("no enrolment acknowledged: %v", err)
	}
	if en.StreamLastSeq, err = logs[0].LastSequence(ctx); err != nil {
		return err
	}
	fmt.Fprintf(progress, "cluster: %d enrolments acknowledged in %v (%.1f/s, ack p50 %.2f ms, p99 %.2f ms, %d errors)\n",
		en.Acknowledged, elapsed.Round(time.Millisecond), en.PerSec, en.AckP50, en.AckP99, en.Errors)

	// One replica of every shard applies the log into a fresh engine.
	rs, err := openClusterEngine(filepath.Join(dir, "replica"))
	if err != nil {
		return err
	}
	defer rs.close()
	if err := rs.load(); err != nil {
		return err
	}
	rnc, err := connect("bmbench replica")
	if err != nil {
		return err
	}
	defer rnc.Close()
	rlog, err := cluster.Open(ctx, rnc, cfgs[0])
	if err != nil {
		return err
	}
	shards := make([]int, cluster.DefaultShards)
	for i := range shards {
		shards[i] = i
	}
	replica, err := cluster.NewReplica(rlog, rs.eng, shards, zerolog.Nop())
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	start = time.Now()
	go func() { runErr <- replica.Run(rctx) }()
	target := uint64(en.StreamLastSeq)
	limit := time.Now().Add(max(10*time.Minute, 10*opt.Duration))
	for {
		st := replica.Stats()
		if st.Applied+st.Refused+st.Malformed+st.Skipped >= target {
			break
		}
		select {
		case err := <-runErr:
			return fmt.Errorf("replica stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(limit) {
			return fmt.Errorf("replica: %+v of %d after %v", st, target, time.Since(start))
		}
	}
	en.ApplySeconds = time.Since(start).Seconds()
	cancel()
	<-runErr
	st := replica.Stats()
	en.Applied, en.Refused, en.Malformed = st.Applied, st.Refused, st.Malformed
	en.AppliedPerSec = float64(st.Applied) / en.ApplySeconds
	en.ReplicaIndexed = rs.eng.Subjects()
	rep.Enrol = en
	fmt.Fprintf(progress, "cluster: one replica applied %d enrolments in %.2f s (%.1f/s)\n", en.Applied, en.ApplySeconds, en.AppliedPerSec)
	return nil
}
