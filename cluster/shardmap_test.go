package cluster

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func checkBalanced(t *testing.T, m ShardMap) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("S=%d P=%d: %v", m.Shards, m.Partitions, err)
	}
	load := m.Load()
	lo, hi := slices.Min(load), slices.Max(load)
	if hi-lo > 1 || lo != m.Shards/m.Partitions {
		t.Fatalf("S=%d P=%d: loads %v, want %d or %d each", m.Shards, m.Partitions, load, m.Shards/m.Partitions, (m.Shards+m.Partitions-1)/m.Partitions)
	}
	seen := 0
	for p := range m.Partitions {
		ss := m.ShardsOf(p)
		if len(ss) != load[p] || !slices.IsSorted(ss) {
			t.Fatalf("ShardsOf(%d) = %v, load %d", p, ss, load[p])
		}
		for _, s := range ss {
			if m.Owner[s] != p {
				t.Fatalf("ShardsOf(%d) lists shard %d owned by %d", p, s, m.Owner[s])
			}
		}
		seen += len(ss)
	}
	if seen != m.Shards {
		t.Fatalf("ShardsOf covers %d of %d shards", seen, m.Shards)
	}
}

func TestShardMapLayout(t *testing.T) {
	for _, s := range []int{1, 7, 64, 256, 1000} {
		for _, p := range []int{1, 2, 3, 4, 5, 8, 16, 128} {
			if p > s {
				continue
			}
			m, err := NewShardMap(s, p)
			if err != nil {
				t.Fatal(err)
			}
			if m.Epoch != 1 {
				t.Fatalf("initial epoch %d", m.Epoch)
			}
			checkBalanced(t, m)
			again, _ := NewShardMap(s, p)
			if !slices.Equal(again.Owner, m.Owner) {
				t.Fatalf("S=%d P=%d: layout not deterministic", s, p)
			}
		}
	}
	m, _ := NewShardMap(256, 4)
	for i := range 100 {
		id := "P-" + strconv.Itoa(i)
		if m.PartitionOf(id) != m.Owner[ShardOf(id, 256)] {
			t.Fatal("PartitionOf disagrees with ShardOf")
		}
	}
	for _, bad := range [][2]int{{0, 1}, {256, 0}, {256, 257}, {MaxShards + 1, 1}} {
		if _, err := NewShardMap(bad[0], bad[1]); err == nil {
			t.Fatalf("NewShardMap(%d, %d) accepted", bad[0], bad[1])
		}
	}
}

func TestShardMapPlanGrow(t *testing.T) {
	for _, tc := range []struct{ from, to, moves int }{
		{1, 2, 128}, {2, 3, 85}, {3, 4, 64}, {4, 5, 51}, {7, 8, 32}, {127, 128, 2},
	} {
		cur, err := NewShardMap(256, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		before := slices.Clone(cur.Owner)
		next, moves, err := Plan(cur, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cur.Owner, before) {
			t.Fatal("Plan changed the current map")
		}
		if next.Epoch != cur.Epoch+1 || next.Partitions != tc.to {
			t.Fatalf("next epoch %d partitions %d", next.Epoch, next.Partitions)
		}
		checkBalanced(t, next)
		if len(moves) != tc.moves {
			t.Fatalf("%d→%d: %d moves, want %d", tc.from, tc.to, len(moves), tc.moves)
		}
		for _, mv := range moves {
			if mv.To != tc.to-1 || mv.From != cur.Owner[mv.Shard] || next.Owner[mv.Shard] != mv.To {
				t.Fatalf("%d→%d: move %+v, want only moves to the new partition %d", tc.from, tc.to, mv, tc.to-1)
			}
		}
		// Planning from the initial layout gives the initial layout of the
		// larger cluster (the layout is a pure function of S and P).
		fresh, _ := NewShardMap(256, tc.to)
		if !slices.Equal(fresh.Owner, next.Owner) {
			t.Fatalf("%d→%d: planned map differs from NewShardMap", tc.from, tc.to)
		}
	}
	// Several at once: 2→4 moves 128 shards, all to partitions 2 and 3.
	cur, _ := NewShardMap(256, 2)
	next, moves, err := Plan(cur, 4)
	if err != nil {
		t.Fatal(err)
	}
	checkBalanced(t, next)
	if len(moves) != 128 {
		t.Fatalf("2→4: %d moves", len(moves))
	}
	for _, mv := range moves {
		if mv.To < 2 {
			t.Fatalf("2→4: move %+v between old partitions", mv)
		}
	}
}

func TestShardMapPlanShrinkAndErrors(t *testing.T) {
	cur, _ := NewShardMap(256, 4)
	next, moves, err := Plan(cur, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	if load := next.Load(); slices.Max(load)-slices.Min(load) > 1 {
		t.Fatalf("shrink loads %v", load)
	}
	if len(moves) != 64 {
		t.Fatalf("4→3: %d moves, want 64 (partition 3's shards)", len(moves))
	}
	for _, mv := range moves {
		if mv.From != 3 {
			t.Fatalf("4→3: move %+v not from the removed partition", mv)
		}
	}
	same, moves, err := Plan(cur, 4)
	if err != nil || len(moves) != 0 || same.Epoch != 2 {
		t.Fatalf("same partitions: %d moves, epoch %d, %v", len(moves), same.Epoch, err)
	}
	if _, _, err := Plan(cur, 0); err == nil {
		t.Fatal("plan to 0 partitions accepted")
	}
	if _, _, err := Plan(cur, 257); err == nil {
		t.Fatal("plan to more partitions than shards accepted")
	}
	bad := cur
	bad.Owner = slices.Clone(cur.Owner)
	bad.Owner[0] = 9
	if _, _, err := Plan(bad, 5); err == nil {
		t.Fatal("plan from an invalid map accepted")
	}
}

func TestShardMapValidate(t *testing.T) {
	good, _ := NewShardMap(8, 2)
	for name, mut := range map[string]func(*ShardMap){
		"epoch 0":         func(m *ShardMap) { m.Epoch = 0 },
		"no shards":       func(m *ShardMap) { m.Shards, m.Owner = 0, nil },
		"owner length":    func(m *ShardMap) { m.Owner = m.Owner[:7] },
		"owner range":     func(m *ShardMap) { m.Owner[3] = 2 },
		"negative owner":  func(m *ShardMap) { m.Owner[3] = -1 },
		"empty partition": func(m *ShardMap) { m.Owner = make([]int, 8) },
		"partitions>S":    func(m *ShardMap) { m.Partitions = 9 },
	} {
		m := good
		m.Owner = slices.Clone(good.Owner)
		mut(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestShardMapEncoding(t *testing.T) {
	m, _ := NewShardMap(256, 3)
	m.Epoch = 7
	b, err := EncodeShardMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"v":1,"epoch":7,"shards":256,"partitions":3,"owner":[`) {
		t.Fatalf("encoding %.80s", b)
	}
	got, err := DecodeShardMap(b)
	if err != nil || got.Epoch != 7 || got.Partitions != 3 || !slices.Equal(got.Owner, m.Owner) {
		t.Fatalf("round trip: %+v, %v", got.Epoch, err)
	}
	for _, tc := range []struct{ in, want string }{
		{``, "EOF"},
		{`[]`, "cannot unmarshal"},
		{`{"v":2,"epoch":1,"shards":1,"partitions":1,"owner":[0]}`, "version 2"},
		{`{"v":1,"epoch":1,"shards":1,"partitions":1,"owner":[0],"x":1}`, "unknown field"},
		{`{"v":1,"epoch":1,"shards":1,"partitions":1,"owner":[0]} {}`, "trailing"},
		{`{"v":1,"epoch":1,"shards":2,"partitions":1,"owner":[0]}`, "1 owners for 2 shards"},
		{`{"v":1,"epoch":0,"shards":1,"partitions":1,"owner":[0]}`, "epoch 0"},
		{`{"v":1,"epoch":1,"shards":1,"partitions":1,"owner":[1]}`, "owned by partition 1"},
		{strings.Repeat(" ", MaxShardMapSize+1), "bytes"},
	} {
		_, err := DecodeShardMap([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60q: %v, want ErrMalformed with %q", tc.in, err, tc.want)
		}
	}
	if _, err := EncodeShardMap(ShardMap{}); err == nil {
		t.Fatal("encoded an invalid map")
	}
}

func FuzzDecodeShardMap(f *testing.F) {
	m, _ := NewShardMap(16, 3)
	b, _ := EncodeShardMap(m)
	f.Add(b)
	f.Add([]byte(`{"v":1,"epoch":1,"shards":1,"partitions":1,"owner":[0]}`))
	f.Add([]byte(`{"v":1,"epoch":1,"shards":65536,"partitions":1,"owner":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeShardMap(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid map: %v", err)
		}
		out, err := EncodeShardMap(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeShardMap(out)
		if err != nil || again.Epoch != m.Epoch || !slices.Equal(again.Owner, m.Owner) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func TestShardMapKV(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Logger = "kv", 1, testLogger(t)
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
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitReady(ctx, js); err != nil {
		t.Fatal(err)
	}

	if _, _, err := LoadShardMap(ctx, js); !errors.Is(err, ErrNoShardMap) {
		t.Fatalf("load before store: %v", err)
	}
	if err := WatchShardMap(ctx, js, func(ShardMap) {}); !errors.Is(err, ErrNoShardMap) {
		t.Fatalf("watch before store: %v", err)
	}
	m2, _ := NewShardMap(cfg.Shards, 2)
	if err := StoreInitial(ctx, js, cfg, m2); err != nil {
		t.Fatal(err)
	}
	m1, _ := NewShardMap(cfg.Shards, 1)
	if err := StoreInitial(ctx, js, cfg, m1); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second StoreInitial: %v", err)
	}
	got, _, err := LoadShardMap(ctx, js)
	if err != nil || got.Epoch != 1 || got.Partitions != 2 {
		t.Fatalf("load: epoch %d partitions %d, %v", got.Epoch, got.Partitions, err)
	}

	// A watcher sees epoch 1, then each flip.
	seen := make(chan ShardMap, 8)
	wctx, wcancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- WatchShardMap(wctx, js, func(m ShardMap) { seen <- m }) }()
	next := func(want uint64) ShardMap {
		t.Helper()
		select {
		case m := <-seen:
			if m.Epoch != want {
				t.Fatalf("watch delivered epoch %d, want %d", m.Epoch, want)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("watch: no epoch %d", want)
		}
		return ShardMap{}
	}
	next(1)

	// Two operators plan from epoch 1; the first flip wins, the second is
	// refused as stale and the stored map is the first one's.
	p3, _, _ := Plan(got, 3)
	p4, _, _ := Plan(got, 4)
	if err := ApplyPlan(ctx, js, 1, p3); err != nil {
		t.Fatal(err)
	}
	err = ApplyPlan(ctx, js, 1, p4)
	if !errors.Is(err, ErrStaleEpoch) || !strings.Contains(err.Error(), "stored map is at epoch 2") {
		t.Fatalf("stale apply: %v", err)
	}
	if w := next(2); w.Partitions != 3 || !slices.Equal(w.Owner, p3.Owner) {
		t.Fatalf("watch delivered %d partitions", w.Partitions)
	}
	cur, rev, err := LoadShardMap(ctx, js)
	if err != nil || cur.Epoch != 2 || cur.Partitions != 3 || rev == 0 {
		t.Fatalf("after flip: epoch %d partitions %d rev %d, %v", cur.Epoch, cur.Partitions, rev, err)
	}

	// Refused without touching the store: wrong next epoch, other shard count.
	if err := ApplyPlan(ctx, js, 2, p3); err == nil {
		t.Fatal("applied a map whose epoch is not expected+1")
	}
	odd, _ := NewShardMap(128, 2)
	odd.Epoch = 3
	if err := ApplyPlan(ctx, js, 2, odd); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Fatalf("other shard count: %v", err)
	}

	// The revision CAS itself: a write between the read and the update.
	p4, _, _ = Plan(cur, 4)
	kv, err := js.KeyValue(ctx, ShardMapBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, ShardMapKey, mustEncode(t, cur), rev+1); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("raw CAS with a wrong revision: %v", err)
	}
	if err := ApplyPlan(ctx, js, 2, p4); err != nil {
		t.Fatal(err)
	}
	if w := next(3); w.Partitions != 4 {
		t.Fatalf("watch: %d partitions", w.Partitions)
	}

	// A malformed value stops the watcher with ErrMalformed.
	if _, err := kv.Put(ctx, ShardMapKey, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-werr:
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("watch on garbage: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on a malformed map")
	}
	wcancel()
	if _, _, err := LoadShardMap(ctx, js); !errors.Is(err, ErrMalformed) {
		t.Fatalf("load garbage: %v", err)
	}
}

func mustEncode(t *testing.T, m ShardMap) []byte {
	t.Helper()
	b, err := EncodeShardMap(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
