package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func enrolMsg(t testing.TB, id string) []byte {
	b, err := Encode(Message{Kind: KindEnrol, SubjectID: id, Request: []byte("req " + id)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type delivery struct {
	seq   uint64
	shard int
	msg   Message
}

// collect subscribes until n messages arrived or the deadline passed.
func collect(t *testing.T, l *Log, shards []int, from uint64, n int, timeout time.Duration) []delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []delivery
	done := errors.New("done")
	err := l.Subscribe(ctx, shards, from, func(seq uint64, shard int, m Message) error {
		got = append(got, delivery{seq, shard, m})
		if len(got) == n {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("subscribe: %v after %d of %d messages", err, len(got), n)
	}
	return got
}

func allShards(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestLogSingleServer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Logger = "solo", 1, testLogger(t)
	cfg.Embedded = &Embedded{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	s, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := Connect(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	l, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Opening again (another node, a restart) updates to the same stream.
	if _, err := Open(ctx, nc, cfg); err != nil {
		t.Fatalf("second open: %v", err)
	}

	const n = 200
	start := time.Now()
	var seqs []uint64
	for i := range n {
		id := "P-" + strconv.Itoa(i)
		seq, err := l.Append(ctx, ShardOf(id, cfg.Shards), "req-"+id, enrolMsg(t, id))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	t.Logf("single server, SyncAlways: %d sequential appends, %.2f ms each", n, time.Since(start).Seconds()*1000/n)
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("append %d got sequence %d", i, q)
		}
	}

	// A retry with the same request id is acknowledged with the first sequence.
	seq, err := l.Append(ctx, ShardOf("P-7", cfg.Shards), "req-P-7", enrolMsg(t, "P-7"))
	if err != nil || seq != seqs[7] {
		t.Fatalf("retry: seq %d, %v; want %d", seq, err, seqs[7])
	}
	if last, _ := l.LastSequence(ctx); last != n {
		t.Fatalf("after a duplicate: last sequence %d, want %d", last, n)
	}

	// Refused appends.
	if _, err := l.Append(ctx, ShardOf("P-1", cfg.Shards)+1, "x", enrolMsg(t, "P-1")); err == nil {
		t.Fatal("append to the wrong shard accepted")
	}
	if _, err := l.Append(ctx, 0, "x", []byte("garbage")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage append: %v", err)
	}
	if _, err := l.Append(ctx, ShardOf("P-1", cfg.Shards), "", enrolMsg(t, "P-1")); err == nil {
		t.Fatal("append without request id accepted")
	}

	// Malformed and misplaced messages published behind the log's back are
	// skipped; the loop keeps going.
	js, _ := jetstream.New(nc)
	js.Publish(ctx, ShardSubject(5), []byte("not an envelope"))
	wrong := "P-1" // not in shard 6
	if ShardOf(wrong, cfg.Shards) == 6 {
		t.Fatal("pick another subject")
	}
	js.Publish(ctx, ShardSubject(6), enrolMsg(t, wrong))
	idAfter := "after-garbage"
	seqAfter, err := l.Append(ctx, ShardOf(idAfter, cfg.Shards), "req-after", enrolMsg(t, idAfter))
	if err != nil {
		t.Fatal(err)
	}

	// Everything, in order, once.
	got := collect(t, l, allShards(cfg.Shards), 0, n+1, 10*time.Second)
	for i, d := range got[:n] {
		id := "P-" + strconv.Itoa(i)
		if d.seq != uint64(i+1) || d.msg.SubjectID != id || d.shard != ShardOf(id, cfg.Shards) ||
			d.msg.Kind != KindEnrol || string(d.msg.Request) != "req "+id {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}
	if d := got[n]; d.seq != seqAfter || d.msg.SubjectID != idAfter {
		t.Fatalf("after the skipped messages: %+v, want seq %d", d, seqAfter)
	}

	// From a sequence, and only some shards.
	got = collect(t, l, allShards(cfg.Shards), 150, 51, 10*time.Second)
	if got[0].seq != 150 || got[50].seq != 200 {
		t.Fatalf("from 150: first %d, 51st %d", got[0].seq, got[50].seq)
	}
	want := 0
	for i := range n {
		if ShardOf("P-"+strconv.Itoa(i), cfg.Shards) < 8 {
			want++
		}
	}
	got = collect(t, l, allShards(8), 0, want, 10*time.Second)
	for _, d := range got {
		if d.shard >= 8 {
			t.Fatalf("shard %d delivered to a subscriber of 0..7", d.shard)
		}
	}

	// apply's error stops the loop with that error; a cancelled context
	// stops it with the context's.
	stopErr := errors.New("stop")
	if err := l.Subscribe(ctx, []int{0, 1, 2, 3}, 0, func(uint64, int, Message) error { return stopErr }); !errors.Is(err, stopErr) {
		t.Fatalf("apply error: %v", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := l.Subscribe(cctx, []int{0}, 1<<40, func(uint64, int, Message) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled subscribe: %v", err)
	}
}

func freePorts(t *testing.T, n int) []int {
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

// TestLogThreeServers runs three clustered in-process JetStream servers with
// an R3 stream: appends are acknowledged by a quorum, the stream leader is
// shut down mid-run, appends succeed again after re-election, and after the
// server is back every appended message is delivered once, in order, both to
// a subscriber that ran throughout and to a new one.
func TestLogThreeServers(t *testing.T) {
	ports := freePorts(t, 6)
	cfgs := make([]Config, 3)
	var urls []string
	for i := range 3 {
		c := DefaultConfig()
		c.Node, c.Logger = fmt.Sprintf("n%d", i), testLogger(t)
		e := &Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), StoreDir: t.TempDir()}
		for j := range 3 {
			if j != i {
				e.Routes = append(e.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+j]))
			}
		}
		c.Embedded = e
		cfgs[i] = c
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	start := time.Now()
	servers := make([]*server.Server, 3)
	for i, c := range cfgs {
		s, err := StartEmbedded(c)
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
	}
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
			}
		}
	}()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	l, err := Open(ctx, nc, cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 servers + R3 stream ready in %v", time.Since(start).Round(time.Millisecond))

	// A second connection for a subscriber that runs throughout.
	snc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer snc.Close()
	sl, err := Open(ctx, snc, cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	const perRound = 300
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		last uint64
		bad  []string
	)
	sctx, scancel := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() {
		subDone <- sl.Subscribe(sctx, allShards(DefaultShards), 0, func(seq uint64, _ int, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if seq <= last {
				bad = append(bad, fmt.Sprintf("seq %d after %d", seq, last))
			}
			last = seq
			seen[m.SubjectID]++
			return nil
		})
	}()

	acked := map[string]uint64{}
	appendAll := func(round int) {
		t0 := time.Now()
		for i := range perRound {
			id := fmt.Sprintf("r%d-%d", round, i)
			for attempt := 0; ; attempt++ {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				seq, err := l.Append(actx, ShardOf(id, DefaultShards), "req-"+id, enrolMsg(t, id))
				cancel()
				if err == nil {
					if attempt > 0 {
						t.Logf("append %s acked after %d retries, %v after the first try", id, attempt, time.Since(t0).Round(time.Millisecond))
					}
					acked[id] = seq
					break
				}
				if attempt > 100 {
					t.Fatalf("append %s: %v", id, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if i == 0 {
				t0 = time.Now()
			}
		}
	}
	t0 := time.Now()
	appendAll(0)
	t.Logf("R3, SyncAlways: %d sequential appends, %.2f ms each", perRound, time.Since(t0).Seconds()*1000/perRound)

	leader := -1
	for i, s := range servers {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, StreamName) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no stream leader")
	}
	stopped := time.Now()
	servers[leader].Shutdown()
	servers[leader].WaitForShutdown()
	servers[leader] = nil
	first := true
	for i := range perRound {
		id := fmt.Sprintf("r1-%d", i)
		for attempt := 0; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			seq, err := l.Append(actx, ShardOf(id, DefaultShards), "req-"+id, enrolMsg(t, id))
			cancel()
			if err == nil {
				acked[id] = seq
				break
			}
			if attempt > 100 {
				t.Fatalf("append %s after stopping the leader: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if first {
			t.Logf("stream leader n%d shut down; first append acked %v later", leader, time.Since(stopped).Round(time.Millisecond))
			first = false
		}
	}

	// The stopped server comes back with its store.
	s, err := StartEmbedded(cfgs[leader])
	if err != nil {
		t.Fatal(err)
	}
	servers[leader] = s
	appendAll(2)

	total := 3 * perRound
	if len(acked) != total {
		t.Fatalf("%d acked ids, want %d", len(acked), total)
	}
	if q, _ := l.LastSequence(ctx); q != uint64(total) {
		t.Fatalf("stream last sequence %d, want %d (lost or duplicated appends)", q, total)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	scancel()
	<-subDone
	mu.Lock()
	check := func(who string, seen map[string]int) {
		for id := range acked {
			if seen[id] != 1 {
				t.Errorf("%s: %s delivered %d times", who, id, seen[id])
			}
		}
		if len(seen) != total {
			t.Errorf("%s: %d distinct subjects, want %d", who, len(seen), total)
		}
	}
	check("subscriber through the failover", seen)
	if len(bad) > 0 {
		t.Errorf("out of order: %v", bad[:min(5, len(bad))])
	}
	mu.Unlock()

	// A fresh subscriber, through the restarted server only.
	rnc, err := nats.Connect(servers[leader].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer rnc.Close()
	rl, err := Open(ctx, rnc, cfgs[leader])
	if err != nil {
		t.Fatal(err)
	}
	fresh := map[string]int{}
	for i, d := range collect(t, rl, allShards(DefaultShards), 0, total, 20*time.Second) {
		if d.seq != uint64(i+1) || acked[d.msg.SubjectID] != d.seq {
			t.Fatalf("fresh delivery %d: seq %d subject %s (acked as %d)", i, d.seq, d.msg.SubjectID, acked[d.msg.SubjectID])
		}
		fresh[d.msg.SubjectID]++
	}
	check("fresh subscriber", fresh)
	t.Logf("%d acked, %d delivered once to each subscriber, 0 lost", len(acked), total)
}
