package cluster

// Reconciliation primitives (issue 15): is every replica holding what the
// enrolment log says it should? `watchlist cluster verify` asks any node,
// through an admin RPC, to run Reconcile, which
//
//  1. replays the stream from its first message (StreamDigests), applying
//     enrolments and deletions per shard as a replica does, into per-shard
//     digests (store.ShardDigest: count, sum of id hashes, sum of content
//     hashes);
//  2. asks every node for the digests of the shards it owns (every node
//     runs ServeDigests on DigestSubject, without a queue group, so all
//     answer one request), polling until each node has applied its shards
//     up to the stream's last message of each, or the wait runs out;
//  3. compares the replicas of each shard with each other (count, ids,
//     content) and with the stream (count, ids, content).
//
// Content from the stream: a replica stores the templates the log carries
// decoded and re-encoded (store.prepare: UnmarshalBinary, MarshalBinary),
// in sample order, with watchlists sorted and deduplicated; the replay does
// the same, so for messages the engine accepts its content digest equals a
// replica's (TestReconcile checks it). A message the replay accepts but the
// engine refuses (a template of an algorithm not loaded: the replica stops;
// a quality rule of the engine's) shows as a divergence from the stream,
// which is what an operator should look at anyway.
//
// Reply wire format (JSON, version 1):
//
//	{"v":1,"node":"n1","partition":0,"replica":1,
//	 "shards":{"17":{"count":41,"ids":"<hex>","content":"<hex>","applied":4242}},
//	 "error":"…"}

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

const (
	// DigestSubject is where every node answers digest requests.
	DigestSubject = "bm.admin.digest"
	// digestWireVersion is the "v" of a digest reply.
	digestWireVersion = 1
)

// NodeInfo is what a node says about itself in a digest reply.
type NodeInfo struct {
	Node      string
	Partition int
	Replica   int
	// Owned are the shards the node applies (ShardMap.ShardsOf).
	Owned []int
	// Shards is the number of logical shards (Config.Shards), for ShardOf.
	Shards int
}

// DigestSource is what a node digests: *engine.Engine.
type DigestSource interface {
	ShardDigests(shardOf func(id string) int) (map[int]store.ShardDigest, error)
}

type wireShardDigest struct {
	Count   int    `json:"count"`
	IDs     string `json:"ids"`
	Content string `json:"content"`
	Applied uint64 `json:"applied"`
}

type digestReply struct {
	V         int                     `json:"v"`
	Node      string                  `json:"node"`
	Partition int                     `json:"partition"`
	Replica   int                     `json:"replica"`
	Shards    map[int]wireShardDigest `json:"shards,omitempty"`
	Error     string                  `json:"error,omitempty"`
}

// ServeDigests answers every request on DigestSubject with the digests of
// the shards info.Owned (an owned shard without subjects has count 0) and
// how far each is applied (applied: Engine.AppliedAll). Requests are
// answered one at a time, in the subscription's goroutine; unsubscribe the
// returned subscription to stop.
func ServeDigests(nc *nats.Conn, info NodeInfo, eng DigestSource, applied func() (map[int]uint64, error)) (*nats.Subscription, error) {
	switch {
	case info.Shards < 1 || info.Shards > MaxShards:
		return nil, fmt.Errorf("cluster: serve digests: shards %d, want 1..%d", info.Shards, MaxShards)
	case len(info.Owned) == 0:
		return nil, fmt.Errorf("cluster: serve digests: node %q owns no shard", info.Node)
	case eng == nil || applied == nil:
		return nil, errors.New("cluster: serve digests: no engine or applied function")
	}
	for _, s := range info.Owned {
		if s < 0 || s >= info.Shards {
			return nil, fmt.Errorf("cluster: serve digests: owned shard %d, want 0..%d", s, info.Shards-1)
		}
	}
	owned := slices.Clone(info.Owned)
	shards := info.Shards
	sub, err := nc.Subscribe(DigestSubject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		rep := digestReply{V: digestWireVersion, Node: info.Node, Partition: info.Partition, Replica: info.Replica}
		ds, err := eng.ShardDigests(func(id string) int { return ShardOf(id, shards) })
		var pos map[int]uint64
		if err == nil {
			pos, err = applied()
		}
		if err != nil {
			rep.Error = err.Error()
		} else {
			rep.Shards = make(map[int]wireShardDigest, len(owned))
			for _, s := range owned {
				d := ds[s]
				rep.Shards[s] = wireShardDigest{Count: d.Count, IDs: hex.EncodeToString(d.IDs[:]),
					Content: hex.EncodeToString(d.Content[:]), Applied: pos[s]}
			}
		}
		b, _ := json.Marshal(rep) // plain fields only
		_ = m.Respond(b)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: serve digests: %w", err)
	}
	return sub, nil
}

// streamSubject is what the replay keeps of a subject.
type streamSubject struct {
	id, content [32]byte
}

// StreamDigests replays the stream from its first message and returns the
// digest of every shard that ends up holding a subject, applying the
// messages of each shard with a sequence ≤ upTo[shard] as a replica does:
// an enrolment of an id the shard holds is refused, a deletion of one it
// does not hold changes nothing, and a message that does not decode (or
// that a store would refuse: a template that does not decode, a bad
// watchlist name, no or too many templates) is skipped. A nil upTo replays
// everything up to the stream's last message when called.
func StreamDigests(ctx context.Context, l *Log, upTo map[int]uint64) (map[int]store.ShardDigest, error) {
	if upTo == nil {
		all, err := l.lastOfShards(ctx, allShardsOf(l.shards))
		if err != nil {
			return nil, err
		}
		upTo = make(map[int]uint64, len(all))
		for s, q := range all {
			if q > 0 {
				upTo[s] = q
			}
		}
	}
	var last uint64
	var shards []int
	for s, q := range upTo {
		if q > 0 {
			last = max(last, q)
			shards = append(shards, s)
		}
	}
	out := map[int]store.ShardDigest{}
	if last == 0 {
		return out, nil
	}
	slices.Sort(shards)
	state := map[int]map[string]streamSubject{}
	done := errors.New("done")
	err := l.SubscribeEach(ctx, shards, 1, func(seq uint64, shard int, m Message, bad error) error {
		if seq <= upTo[shard] && bad == nil {
			subs := state[shard]
			if subs == nil {
				subs = map[string]streamSubject{}
				state[shard] = subs
			}
			switch m.Kind {
			case KindEnrol:
				if _, exists := subs[m.SubjectID]; !exists {
					if c, ok := streamContent(m); ok {
						subs[m.SubjectID] = streamSubject{id: store.IDHash(m.SubjectID), content: c}
					}
				}
			case KindDelete:
				if len(m.Request) == 0 {
					delete(subs, m.SubjectID)
				}
			}
		}
		if seq >= last {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		return nil, fmt.Errorf("cluster: stream digests: %w", err)
	}
	for shard, subs := range state {
		if len(subs) == 0 {
			continue
		}
		var d store.ShardDigest
		for _, s := range subs {
			d.Add(s.id, s.content)
		}
		out[shard] = d
	}
	return out, nil
}

// streamContent is the content hash a replica's store would have of an
// enrolment message, and false if a replica would refuse or skip it.
func streamContent(m Message) ([32]byte, bool) {
	req, err := DecodeEnroll(m.Request)
	if err != nil || req.SubjectID != m.SubjectID {
		return [32]byte{}, false
	}
	if n := len(req.Samples); n == 0 || n > store.MaxTemplates || len(req.Name) > store.MaxNameLen {
		return [32]byte{}, false
	}
	for _, w := range req.Watchlists {
		if store.ValidWatchlist(w) != nil {
			return [32]byte{}, false
		}
	}
	enc := make([][]byte, len(req.Samples))
	for i, s := range req.Samples {
		b := s.Template
		if s.Finger != nil {
			b = s.Finger.Template
		}
		var t templates.Template
		if err := t.UnmarshalBinary(b); err != nil {
			return [32]byte{}, false
		}
		// As the engine stores it: faces at unit norm (a template it
		// refuses is refused here too).
		t, err := t.Normalised()
		if err != nil {
			return [32]byte{}, false
		}
		if enc[i], err = t.MarshalBinary(); err != nil {
			return [32]byte{}, false
		}
	}
	sub := store.Subject{ID: req.SubjectID, Name: req.Name, Metadata: req.Metadata,
		Watchlists: slices.Compact(slices.Sorted(slices.Values(req.Watchlists)))}
	return store.ContentHash(&sub, enc), true
}

func allShardsOf(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// NodeShard is one shard as a node holds it.
type NodeShard struct {
	store.ShardDigest
	// Applied is the last stream sequence the node applied of the shard.
	Applied uint64
}

// NodeDigest is one node's answer.
type NodeDigest struct {
	Node      string
	Partition int
	Replica   int
	Shards    map[int]NodeShard
	// Error is the node's own failure to digest, if any.
	Error string
}

// Divergence is one disagreement about a shard.
type Divergence struct {
	Shard int
	// Nodes are the nodes concerned (the diverging one first).
	Nodes []string
	// What differs: "count 41 vs stream 42", "content differs from node-b".
	What string
}

func (d Divergence) String() string {
	return fmt.Sprintf("shard %d on %s: %s", d.Shard, strings.Join(d.Nodes, ", "), d.What)
}

// Report is the outcome of Reconcile.
type Report struct {
	// Nodes are the answers, by partition, replica and node name.
	Nodes []NodeDigest
	// Shards is the number of shards compared.
	Shards int
	// Divergences, by shard.
	Divergences []Divergence
	// Missing names the expected replicas (partition p replica r) that did
	// not answer, and nodes that failed to digest.
	Missing []string
	// StreamLast is the stream's last sequence compared up to, and
	// StreamSubjects the subjects the stream holds up to it.
	StreamLast     uint64
	StreamSubjects int
}

// Clean reports whether every expected node answered and nothing diverges.
func (r Report) Clean() bool { return len(r.Divergences) == 0 && len(r.Missing) == 0 }

// Reconcile compares every node's digests with each other and with the
// stream (see the top of this file). It expects m.Partitions ×
// replicasPerPartition nodes to answer, and polls them, for at most wait,
// until all answered and each has applied every shard it owns up to the
// stream's last message of that shard (read when Reconcile starts); a node
// still behind when the wait ends is a divergence ("applied 40 of 42"),
// not compared further on that shard. Writes during a Reconcile are not
// counted against anyone: the stream is replayed only to that point.
func Reconcile(ctx context.Context, nc *nats.Conn, l *Log, m ShardMap, replicasPerPartition int, wait time.Duration) (Report, error) {
	if err := m.Validate(); err != nil {
		return Report{}, fmt.Errorf("cluster: reconcile: %w", err)
	}
	if replicasPerPartition < 1 {
		return Report{}, fmt.Errorf("cluster: reconcile: %d replicas per partition, want ≥ 1", replicasPerPartition)
	}
	if m.Shards != l.shards {
		return Report{}, fmt.Errorf("cluster: reconcile: shard map of %d shards, log of %d", m.Shards, l.shards)
	}
	lasts, err := l.lastOfShards(ctx, allShardsOf(m.Shards))
	if err != nil {
		return Report{}, fmt.Errorf("cluster: reconcile: %w", err)
	}
	upTo := map[int]uint64{}
	for s, q := range lasts {
		if q > 0 {
			upTo[s] = q
		}
	}
	stream, err := StreamDigests(ctx, l, upTo)
	if err != nil {
		return Report{}, fmt.Errorf("cluster: reconcile: %w", err)
	}

	expected := m.Partitions * replicasPerPartition
	deadline := time.Now().Add(wait)
	var nodes []NodeDigest
	for {
		nodes, err = gatherDigests(ctx, nc, expected, deadline)
		if err != nil {
			return Report{}, err
		}
		if len(nodes) >= expected && caughtUp(nodes, upTo) || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Report{}, fmt.Errorf("cluster: reconcile: %w", ctx.Err())
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
	rep := compareDigests(m, replicasPerPartition, nodes, stream, upTo)
	for _, q := range upTo {
		rep.StreamLast = max(rep.StreamLast, q)
	}
	for _, d := range stream {
		rep.StreamSubjects += d.Count
	}
	return rep, nil
}

// GatherDigests asks every node for its digests and returns the answers
// that arrive within wait, by partition, replica and node.
func GatherDigests(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]NodeDigest, error) {
	return gatherDigests(ctx, nc, math.MaxInt, time.Now().Add(wait))
}

// caughtUp reports whether every node has applied each of its shards up to
// upTo.
func caughtUp(nodes []NodeDigest, upTo map[int]uint64) bool {
	for _, n := range nodes {
		for s, d := range n.Shards {
			if d.Applied < upTo[s] {
				return false
			}
		}
	}
	return true
}

// gatherDigests asks every node once and collects answers until expected
// nodes answered or the deadline (at least 200 ms from now) passes.
func gatherDigests(ctx context.Context, nc *nats.Conn, expected int, deadline time.Time) ([]NodeDigest, error) {
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 4*expected+16)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("cluster: reconcile: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(DigestSubject, inbox, nil); err != nil {
		return nil, fmt.Errorf("cluster: reconcile: %w", err)
	}
	timer := time.NewTimer(max(time.Until(deadline), 200*time.Millisecond))
	defer timer.Stop()
	byNode := map[string]NodeDigest{}
	for len(byNode) < expected {
		select {
		case msg := <-ch:
			var rep digestReply
			if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.V != digestWireVersion || rep.Node == "" {
				continue // not a reply this node can read: the node stays missing
			}
			nd := NodeDigest{Node: rep.Node, Partition: rep.Partition, Replica: rep.Replica, Error: rep.Error,
				Shards: make(map[int]NodeShard, len(rep.Shards))}
			for s, w := range rep.Shards {
				var d NodeShard
				d.Count, d.Applied = w.Count, w.Applied
				if hex.DecodedLen(len(w.IDs)) != 32 || hex.DecodedLen(len(w.Content)) != 32 {
					nd.Error = fmt.Sprintf("shard %d: digests of %d and %d hex digits", s, len(w.IDs), len(w.Content))
					continue
				}
				if _, err := hex.Decode(d.IDs[:], []byte(w.IDs)); err != nil {
					nd.Error = fmt.Sprintf("shard %d: ids: %v", s, err)
				}
				if _, err := hex.Decode(d.Content[:], []byte(w.Content)); err != nil {
					nd.Error = fmt.Sprintf("shard %d: content: %v", s, err)
				}
				nd.Shards[s] = d
			}
			byNode[rep.Node] = nd
		case <-timer.C:
			return sortedNodes(byNode), nil
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: reconcile: %w", ctx.Err())
		}
	}
	return sortedNodes(byNode), nil
}

func sortedNodes(by map[string]NodeDigest) []NodeDigest {
	out := make([]NodeDigest, 0, len(by))
	for _, n := range by {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		if a.Replica != b.Replica {
			return a.Replica < b.Replica
		}
		return a.Node < b.Node
	})
	return out
}

// compareDigests builds the report.
func compareDigests(m ShardMap, replicas int, nodes []NodeDigest, stream map[int]store.ShardDigest, upTo map[int]uint64) Report {
	rep := Report{Nodes: nodes, Shards: m.Shards}
	heard := map[[2]int]bool{}
	for _, n := range nodes {
		heard[[2]int{n.Partition, n.Replica}] = true
		if n.Error != "" {
			rep.Missing = append(rep.Missing, fmt.Sprintf("node %s (partition %d replica %d): %s", n.Node, n.Partition, n.Replica, n.Error))
		}
	}
	for p := range m.Partitions {
		for r := range replicas {
			if !heard[[2]int{p, r}] {
				rep.Missing = append(rep.Missing, fmt.Sprintf("partition %d replica %d", p, r))
			}
		}
	}
	div := func(shard int, what string, nodes ...string) {
		rep.Divergences = append(rep.Divergences, Divergence{Shard: shard, Nodes: nodes, What: what})
	}
	for s := range m.Shards {
		owner := m.Owner[s]
		want := stream[s]
		var first *NodeDigest
		var firstShard NodeShard
		for i := range nodes {
			n := &nodes[i]
			if n.Error != "" {
				continue
			}
			d, ok := n.Shards[s]
			if n.Partition != owner {
				if ok {
					div(s, fmt.Sprintf("served by partition %d, the map gives it to partition %d", n.Partition, owner), n.Node)
				}
				continue
			}
			if !ok {
				div(s, fmt.Sprintf("not served, the map gives it to partition %d", owner), n.Node)
				continue
			}
			if d.Applied < upTo[s] {
				div(s, fmt.Sprintf("applied %d of %d", d.Applied, upTo[s]), n.Node)
				continue
			}
			switch {
			case d.Count != want.Count:
				div(s, fmt.Sprintf("count %d vs stream %d", d.Count, want.Count), n.Node)
			case d.IDs != want.IDs:
				div(s, "ids differ from the stream's", n.Node)
			case d.Content != want.Content:
				div(s, "content differs from the stream's", n.Node)
			}
			if first == nil {
				first, firstShard = n, d
				continue
			}
			switch {
			case d.Count != firstShard.Count:
				div(s, fmt.Sprintf("count %d vs %d on %s", d.Count, firstShard.Count, first.Node), n.Node, first.Node)
			case d.IDs != firstShard.IDs:
				div(s, "ids differ from "+first.Node, n.Node, first.Node)
			case d.Content != firstShard.Content:
				div(s, "content differs from "+first.Node, n.Node, first.Node)
			}
		}
	}
	return rep
}
