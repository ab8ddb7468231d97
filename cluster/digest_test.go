package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bordermatch/bordermatch/engine"
)

// TestReconcile: 2 partitions × 2 replicas of real engines apply a real log;
// the cluster reconciles clean after enrolments and deletions, and a
// subject deleted behind the log's back on one replica is named, with its
// node and shard.
func TestReconcile(t *testing.T) {
	start := time.Now()
	lc := startLogCluster(t, 2)
	m, err := NewShardMap(lc.cfg.Shards, 2)
	if err != nil {
		t.Fatal(err)
	}
	var reps [2][2]*partReplica
	var subs [2][2]*nats.Subscription
	for p := range 2 {
		for r := range 2 {
			reps[p][r] = newPartReplica(t, lc.log, m.ShardsOf(p))
			reps[p][r].start()
			info := NodeInfo{Node: fmt.Sprintf("node-%d%c", p, 'a'+r), Partition: p, Replica: r,
				Owned: m.ShardsOf(p), Shards: lc.cfg.Shards}
			sub, err := ServeDigests(lc.nc, info, reps[p][r].eng, reps[p][r].eng.AppliedAll)
			if err != nil {
				t.Fatal(err)
			}
			subs[p][r] = sub
			t.Cleanup(func() { sub.Unsubscribe() })
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Nothing enrolled yet: clean.
	rep, err := Reconcile(ctx, lc.nc, lc.log, m, 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || len(rep.Nodes) != 4 {
		t.Fatalf("empty: %d nodes, %v, missing %v", len(rep.Nodes), rep.Divergences, rep.Missing)
	}

	const n = 120
	for i := range n {
		id := fmt.Sprint("R-", i)
		req := engine.EnrollRequest{SubjectID: id, Name: "Name " + id, Watchlists: []string{"wl", "a", "wl"},
			Metadata: map[string]string{"k": id}, Samples: []engine.Sample{{Template: faceTpl(t, i)}}}
		if _, _, err := EnrollThroughLog(ctx, lc.log, req, "enrol-"+id); err != nil {
			t.Fatal(err)
		}
	}
	// Deletions, a deletion of a subject never enrolled, a second
	// enrolment of an existing id (refused), and a malformed message.
	for i := 0; i < n; i += 10 {
		id := fmt.Sprint("R-", i)
		if _, _, err := DeleteThroughLog(ctx, lc.log, id, "delete-"+id); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := DeleteThroughLog(ctx, lc.log, "nobody", "delete-nobody"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnrollThroughLog(ctx, lc.log, engine.EnrollRequest{SubjectID: "R-1", Name: "Other",
		Samples: []engine.Sample{{Template: faceTpl(t, 9999)}}}, "enrol-R-1-again"); err != nil {
		t.Fatal(err)
	}
	bad, err := Encode(Message{Kind: KindEnrol, SubjectID: "R-bad", Request: []byte(`{"v":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.log.Append(ctx, ShardOf("R-bad", lc.cfg.Shards), "bad", bad); err != nil {
		t.Fatal(err)
	}

	stream, err := StreamDigests(ctx, lc.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, d := range stream {
		total += d.Count
	}
	if want := n - n/10; total != want {
		t.Fatalf("stream replay: %d subjects, want %d", total, want)
	}

	t0 := time.Now()
	rep, err = Reconcile(ctx, lc.nc, lc.log, m, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("after enrolments and deletions: %v, missing %v", rep.Divergences, rep.Missing)
	}
	t.Logf("clean reconcile of %d nodes, %d shards in %v", len(rep.Nodes), rep.Shards, time.Since(t0).Round(time.Millisecond))
	// Content is compared with the stream too: the replicas store what the
	// replay computes.
	for _, nd := range rep.Nodes {
		for s, d := range nd.Shards {
			if d.Content != stream[s].Content || d.Count != stream[s].Count {
				t.Fatalf("node %s shard %d: %+v, stream %+v", nd.Node, s, d, stream[s])
			}
		}
	}

	// Behind the log's back: delete a subject on one replica.
	victim := "R-33"
	p := m.PartitionOf(victim)
	shard := ShardOf(victim, lc.cfg.Shards)
	if _, err := reps[p][1].eng.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rep, err = Reconcile(ctx, lc.nc, lc.log, m, 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() {
		t.Fatal("a corrupted replica reconciled clean")
	}
	node := fmt.Sprintf("node-%db", p)
	for _, d := range rep.Divergences {
		t.Logf("divergence: %v", d)
		if d.Shard != shard || d.Nodes[0] != node {
			t.Errorf("divergence %v, want shard %d on %s", d, shard, node)
		}
	}
	if len(rep.Divergences) != 2 || !strings.Contains(rep.Divergences[0].What+rep.Divergences[1].What, "vs stream") {
		t.Fatalf("divergences %v, want count vs stream and vs the other replica", rep.Divergences)
	}

	// Put back with another name: the count and ids agree, the content not.
	if _, err := reps[p][1].eng.Enroll(ctx, engine.EnrollRequest{SubjectID: victim, Name: "Someone else",
		Samples: []engine.Sample{{Template: faceTpl(t, 33)}}}); err != nil {
		t.Fatal(err)
	}
	rep, err = Reconcile(ctx, lc.nc, lc.log, m, 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Divergences) != 2 || rep.Divergences[0].What != "content differs from the stream's" ||
		rep.Divergences[1].What != "content differs from node-"+fmt.Sprint(p)+"a" || rep.Divergences[0].Nodes[0] != node {
		t.Fatalf("content: %v", rep.Divergences)
	}

	// A node that does not answer is missing by name; the others are
	// still compared.
	if err := subs[1-p][0].Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	rep, err = Reconcile(ctx, lc.nc, lc.log, m, 2, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("partition %d replica 0", 1-p); len(rep.Missing) != 1 || rep.Missing[0] != want || len(rep.Nodes) != 3 {
		t.Fatalf("missing %v (%d nodes), want %q", rep.Missing, len(rep.Nodes), want)
	}
	if len(rep.Divergences) != 2 {
		t.Fatalf("with a node missing: %v", rep.Divergences)
	}
	t.Logf("TestReconcile took %v", time.Since(start).Round(time.Millisecond))
}
