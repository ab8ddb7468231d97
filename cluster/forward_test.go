package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// appliedGate is a node's applied position of one shard, moved by the test.
type appliedGate struct {
	mu      sync.Mutex
	applied uint64
	changed chan struct{}
}

func newAppliedGate() *appliedGate { return &appliedGate{changed: make(chan struct{})} }

func (g *appliedGate) set(seq uint64) {
	g.mu.Lock()
	g.applied = seq
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *appliedGate) wait(ctx context.Context, shard int, seq uint64) error {
	for {
		g.mu.Lock()
		got, ch := g.applied, g.changed
		g.mu.Unlock()
		if got >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("shard %d applied %d, waiting for %d: %w", shard, got, seq, ctx.Err())
		}
	}
}

type callCluster struct {
	nc      *nats.Conn // the caller's
	srv     [2][2]*CallServer
	conns   [2][2]*nats.Conn
	epoch   atomic.Uint64
	gate    *appliedGate // shard 3, owned by partition 1
	handled [2][2]atomic.Int64
}

func startCallCluster(t *testing.T) *callCluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Logger = "calls", 1, testLogger(t)
	cfg.Embedded = &Embedded{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	s, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	c := &callCluster{gate: newAppliedGate()}
	c.epoch.Store(3)
	for p := range 2 {
		for r := range 2 {
			nc, err := Connect(cfg, s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			srv, err := ServeCalls(nc, p, CallOptions{
				Epoch:  c.epoch.Load,
				Owns:   func(shard int) bool { return shard == 3 && p == 1 },
				Wait:   c.gate.wait,
				Logger: testLogger(t),
				Handler: func(ctx context.Context, method string, body []byte) ([]byte, error) {
					c.handled[p][r].Add(1)
					switch method {
					case "NotFound":
						return nil, status.Errorf(codes.NotFound, "subject %q not found", body)
					case "Plain":
						return nil, errors.New("plain failure")
					case "Panic":
						panic("boom")
					case "Slow":
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return []byte(fmt.Sprintf("p%d/r%d %s %s", p, r, method, body)), nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			c.srv[p][r], c.conns[p][r] = srv, nc
			t.Cleanup(func() { srv.Close() })
		}
	}
	nc, err := Connect(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func wantCode(t *testing.T, what string, err error, code codes.Code, contains string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("%s: %v (status %v), want %v containing %q", what, err, st.Code(), code, contains)
	}
}

func TestCallPartitions(t *testing.T) {
	c := startCallCluster(t)
	ctx := context.Background()
	for p := range 2 {
		for i := range 20 {
			out, err := Call(ctx, c.nc, p, 3, "Get", []byte(fmt.Sprint("S-", i)), Token{})
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("p%d/", p); !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), fmt.Sprint(" Get S-", i)) {
				t.Fatalf("partition %d answered %q", p, out)
			}
		}
	}
	all, err := CallAll(ctx, c.nc, 2, 3, "List", []byte("x"), Token{})
	if err != nil || len(all) != 2 || !strings.HasPrefix(string(all[0]), "p0/") || !strings.HasPrefix(string(all[1]), "p1/") {
		t.Fatalf("CallAll: %q, %v", all, err)
	}

	// Handler errors keep their code; a plain error is Unknown; a panic
	// is Internal and the server lives on.
	_, err = Call(ctx, c.nc, 0, 3, "NotFound", []byte("P-9"), Token{})
	wantCode(t, "not found", err, codes.NotFound, `subject "P-9" not found`)
	_, err = Call(ctx, c.nc, 0, 3, "Plain", nil, Token{})
	wantCode(t, "plain", err, codes.Unknown, "plain failure")
	_, err = Call(ctx, c.nc, 0, 3, "Panic", nil, Token{})
	wantCode(t, "panic", err, codes.Internal, "panicked on partition 0")
	_, err = CallAll(ctx, c.nc, 2, 3, "NotFound", []byte("P-9"), Token{})
	wantCode(t, "CallAll not found", err, codes.NotFound, "partition 0")
	// A handler running out of the caller's time.
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = Call(sctx, c.nc, 0, 3, "Slow", nil, Token{})
	cancel()
	wantCode(t, "slow", err, codes.DeadlineExceeded, "")

	// Malformed requests.
	for _, h := range []nats.Header{
		{HeaderEpoch: {"3"}},
		{HeaderMethod: {"Get"}},
		{HeaderMethod: {"Get"}, HeaderEpoch: {"three"}},
		{HeaderMethod: {"Get"}, HeaderEpoch: {"3"}, HeaderToken: {"v9.1.1"}},
		{HeaderMethod: {"Get"}, HeaderEpoch: {"3"}, HeaderTimeout: {"-5"}},
	} {
		rep, err := c.nc.RequestMsg(&nats.Msg{Subject: CallSubject(0), Header: h}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Header.Get(HeaderCode) != fmt.Sprint(int(codes.InvalidArgument)) {
			t.Fatalf("%v: code %q (%s)", h, rep.Header.Get(HeaderCode), rep.Header.Get(HeaderError))
		}
		t.Logf("%v: %s", h, rep.Header.Get(HeaderError))
	}
	if _, err := Call(ctx, c.nc, 0, 3, "Get", nil, Token{}); err != nil {
		t.Fatalf("after malformed requests: %v", err)
	}

	// Stale epoch: Unavailable, and ErrStaleEpoch for errors.Is.
	_, err = Call(ctx, c.nc, 1, 2, "Get", nil, Token{})
	wantCode(t, "stale", err, codes.Unavailable, "request epoch 2, partition 1 is at 3")
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale: %v does not wrap ErrStaleEpoch", err)
	}
	_, err = CallAll(ctx, c.nc, 2, 4, "List", nil, Token{})
	wantCode(t, "CallAll stale", err, codes.Unavailable, "2 of 2 partitions missing")
	if !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("CallAll stale: %v does not wrap ErrStaleEpoch", err)
	}

	// Token: partition 1 owns shard 3 and waits until it is applied;
	// partition 0 does not wait for it.
	tok := Token{Shard: 3, Seq: 10}
	if _, err := Call(ctx, c.nc, 0, 3, "Get", nil, tok); err != nil {
		t.Fatalf("token of another partition: %v", err)
	}
	sctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = Call(sctx, c.nc, 1, 3, "Get", nil, tok)
	cancel()
	wantCode(t, "token not applied", err, codes.Unavailable, "has not applied token v1.3.10")
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.gate.set(9)
		time.Sleep(100 * time.Millisecond)
		c.gate.set(10)
	}()
	start := time.Now()
	if _, err := Call(ctx, c.nc, 1, 3, "Get", nil, tok); err != nil {
		t.Fatalf("token: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("token answered after %v, before it was applied", d)
	}

	// Failover: with one replica of partition 0 closed, the other answers
	// every call; with both closed, the partition is unavailable by name.
	if err := c.srv[0][0].Close(); err != nil {
		t.Fatal(err)
	}
	c.conns[0][0].Flush()
	before := c.handled[0][0].Load()
	for range 20 {
		if out, err := Call(ctx, c.nc, 0, 3, "Get", nil, Token{}); err != nil || !strings.HasPrefix(string(out), "p0/r1") {
			t.Fatalf("failover: %q, %v", out, err)
		}
	}
	if c.handled[0][0].Load() != before {
		t.Fatal("a closed server handled calls")
	}
	c.srv[0][1].Close()
	c.conns[0][1].Flush()
	_, err = Call(ctx, c.nc, 0, 3, "Get", nil, Token{})
	wantCode(t, "partition down", err, codes.Unavailable, "partition 0 has no live replica")
	_, err = CallAll(ctx, c.nc, 2, 3, "List", nil, Token{})
	wantCode(t, "CallAll partition down", err, codes.Unavailable, "1 of 2 partitions missing: partition 0")
	t.Logf("partition down: %v", err)
	if _, err := Call(ctx, c.nc, 1, 3, "Get", nil, Token{}); err != nil {
		t.Fatalf("partition 1 after partition 0 went down: %v", err)
	}
}
