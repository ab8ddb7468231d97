package cluster

// The shard map (issue 15, "adding partitions"; design scale-out.md §3.3):
// which partition owns which logical shard, under an epoch. It changes only
// when an operator plans a new map (Plan) and applies it (ApplyPlan, a
// compare-and-set in the JetStream KV bucket BM_SHARDMAP); nothing here moves
// data or changes the map by itself, on a timeout or otherwise.
//
// Layout scheme: balanced HRW-ranked stealing. NewShardMap(S, P) is, by
// definition, the map of one partition planned up to P partitions one at a
// time. Adding partition n takes shards one by one from the currently most
// loaded partition (ties: lowest partition index) until the new partition's
// load is within one of every other's; from that donor it takes the shard
// with the highest rendezvous (HRW) score xxhash64(shard, n). Hence:
//
//   - every partition owns ⌊S/P⌋ or ⌈S/P⌉ shards (balanced within ±1; plain
//     HRW only balances in expectation: 256 shards over 8 partitions would
//     give 32 ± 5.3 per partition);
//   - going from P to P+1 moves exactly the ⌊S/(P+1)⌋ (or ⌈…⌉) shards the
//     new partition must own, all to the new partition, none between old
//     partitions — the minimum any balanced scheme can move;
//   - the result is a pure function of (S, P), so every node and the bmctl
//     that plans it compute the same map.
//
// Shrinking (fewer partitions) hands the shards of the removed partitions to
// the least loaded remaining ones (ties: lowest index), in shard order.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// Shard map storage and format.
const (
	// ShardMapBucket is the JetStream KV bucket holding the shard map.
	ShardMapBucket = "BM_SHARDMAP"
	// ShardMapKey is the key of the current map in ShardMapBucket; the
	// bucket's history keeps the previous epochs.
	ShardMapKey = "current"
	// ShardMapHistory is how many epochs the bucket remembers (KV maximum 64).
	ShardMapHistory = 64
	// ShardMapVersion is the "v" EncodeShardMap writes.
	ShardMapVersion = 1
	// MaxShardMapSize bounds an encoded map (65536 shards × "65535," < 400 KiB).
	MaxShardMapSize = 1 << 20
)

// ErrNoShardMap: the bucket or the map does not exist yet (StoreInitial).
var ErrNoShardMap = errors.New("cluster: no shard map stored")

// ShardMap assigns every logical shard to a partition under an epoch.
type ShardMap struct {
	// Epoch numbers the map; the first map has epoch 1, each applied plan
	// adds one. Search requests carry it (search.go).
	Epoch uint64
	// Shards is the number of logical shards (Config.Shards, fixed forever).
	Shards int
	// Partitions is the number of partitions.
	Partitions int
	// Owner[shard] is the partition owning the shard.
	Owner []int
}

// Move is one shard changing partition between two epochs.
type Move struct {
	Shard int `json:"shard"`
	From  int `json:"from"`
	To    int `json:"to"`
}

// Validate checks the map: sizes in range, every shard owned by a partition
// in 0..Partitions-1, every partition owning at least one shard, epoch ≥ 1.
func (m *ShardMap) Validate() error {
	switch {
	case m.Epoch == 0:
		return errors.New("cluster: shard map: epoch 0 (the first map has epoch 1)")
	case m.Shards < 1 || m.Shards > MaxShards:
		return fmt.Errorf("cluster: shard map: shards %d, want 1..%d", m.Shards, MaxShards)
	case m.Partitions < 1 || m.Partitions > m.Shards:
		return fmt.Errorf("cluster: shard map: partitions %d, want 1..shards (%d)", m.Partitions, m.Shards)
	case len(m.Owner) != m.Shards:
		return fmt.Errorf("cluster: shard map: %d owners for %d shards", len(m.Owner), m.Shards)
	}
	load := make([]int, m.Partitions)
	for s, p := range m.Owner {
		if p < 0 || p >= m.Partitions {
			return fmt.Errorf("cluster: shard map: shard %d owned by partition %d, want 0..%d", s, p, m.Partitions-1)
		}
		load[p]++
	}
	for p, n := range load {
		if n == 0 {
			return fmt.Errorf("cluster: shard map: partition %d owns no shard", p)
		}
	}
	return nil
}

// PartitionOf is the partition owning the subject's shard (ShardOf).
func (m *ShardMap) PartitionOf(subjectID string) int {
	return m.Owner[ShardOf(subjectID, m.Shards)]
}

// ShardsOf lists the partition's shards in increasing order (the shards a
// replica of the partition applies from the log).
func (m *ShardMap) ShardsOf(partition int) []int {
	var out []int
	for s, p := range m.Owner {
		if p == partition {
			out = append(out, s)
		}
	}
	return out
}

// Load is the number of shards of each partition.
func (m *ShardMap) Load() []int {
	load := make([]int, m.Partitions)
	for _, p := range m.Owner {
		if p >= 0 && p < m.Partitions {
			load[p]++
		}
	}
	return load
}

// NewShardMap is the initial layout of shards over partitions, epoch 1 (see
// the package comment above for the scheme and its guarantees).
func NewShardMap(shards, partitions int) (ShardMap, error) {
	if shards < 1 || shards > MaxShards {
		return ShardMap{}, fmt.Errorf("cluster: shard map: shards %d, want 1..%d", shards, MaxShards)
	}
	if partitions < 1 || partitions > shards {
		return ShardMap{}, fmt.Errorf("cluster: shard map: partitions %d, want 1..shards (%d)", partitions, shards)
	}
	m := ShardMap{Epoch: 1, Shards: shards, Partitions: 1, Owner: make([]int, shards)}
	for m.Partitions < partitions {
		addPartition(&m)
	}
	return m, nil
}

// hrwScore is shard's rendezvous score for partition p.
func hrwScore(shard, p int) uint64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(shard))
	binary.BigEndian.PutUint64(b[8:], uint64(p))
	return xxhash.Sum64(b[:])
}

// addPartition adds partition m.Partitions, stealing shards as described.
func addPartition(m *ShardMap) {
	n := m.Partitions
	m.Partitions++
	load := m.Load()
	// Each donor's shards, best HRW score for n first.
	byDonor := make([][]int, n)
	for s, p := range m.Owner {
		byDonor[p] = append(byDonor[p], s)
	}
	for p := range byDonor {
		slices.SortFunc(byDonor[p], func(a, b int) int {
			sa, sb := hrwScore(a, n), hrwScore(b, n)
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return a - b
		})
	}
	for {
		donor := 0
		for p := 1; p < n; p++ {
			if load[p] > load[donor] {
				donor = p
			}
		}
		if load[donor]-load[n] <= 1 {
			return
		}
		s := byDonor[donor][0]
		byDonor[donor] = byDonor[donor][1:]
		m.Owner[s] = n
		load[donor]--
		load[n]++
	}
}

// Plan computes the map of the given number of partitions that follows cur,
// with epoch cur.Epoch+1, and the shard moves between them (in shard order).
// It changes nothing anywhere: the operator reviews the moves, the new
// owners catch up on the moved shards, then ApplyPlan flips the epoch.
// Growing by one partition moves only the new partition's share, all to it;
// cur need not have the NewShardMap layout (any valid map is planned from).
func Plan(cur ShardMap, partitions int) (ShardMap, []Move, error) {
	if err := cur.Validate(); err != nil {
		return ShardMap{}, nil, fmt.Errorf("cluster: plan: current map: %w", err)
	}
	if partitions < 1 || partitions > cur.Shards {
		return ShardMap{}, nil, fmt.Errorf("cluster: plan: partitions %d, want 1..shards (%d)", partitions, cur.Shards)
	}
	next := ShardMap{Epoch: cur.Epoch + 1, Shards: cur.Shards, Partitions: cur.Partitions, Owner: slices.Clone(cur.Owner)}
	for next.Partitions < partitions {
		addPartition(&next)
	}
	if partitions < next.Partitions {
		next.Partitions = partitions
		load := next.Load()
		for s, p := range next.Owner {
			if p < partitions {
				continue
			}
			to := 0
			for q := 1; q < partitions; q++ {
				if load[q] < load[to] {
					to = q
				}
			}
			next.Owner[s] = to
			load[to]++
		}
	}
	var moves []Move
	for s := range next.Owner {
		if next.Owner[s] != cur.Owner[s] {
			moves = append(moves, Move{Shard: s, From: cur.Owner[s], To: next.Owner[s]})
		}
	}
	return next, moves, nil
}

// shardMapJSON is the wire and KV form of a ShardMap.
type shardMapJSON struct {
	V          int    `json:"v"`
	Epoch      uint64 `json:"epoch"`
	Shards     int    `json:"shards"`
	Partitions int    `json:"partitions"`
	Owner      []int  `json:"owner"`
}

// EncodeShardMap validates the map and returns its JSON form:
//
//	{"v":1,"epoch":E,"shards":S,"partitions":P,"owner":[p0,p1,…]}
func EncodeShardMap(m ShardMap) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(shardMapJSON{V: ShardMapVersion, Epoch: m.Epoch, Shards: m.Shards, Partitions: m.Partitions, Owner: m.Owner})
}

// DecodeShardMap parses and validates an encoded map; every error wraps
// ErrMalformed. Unknown fields and versions are refused.
func DecodeShardMap(b []byte) (ShardMap, error) {
	if len(b) > MaxShardMapSize {
		return ShardMap{}, fmt.Errorf("%w: shard map of %d bytes, max %d", ErrMalformed, len(b), MaxShardMapSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w shardMapJSON
	if err := dec.Decode(&w); err != nil {
		return ShardMap{}, fmt.Errorf("%w: shard map: %v", ErrMalformed, err)
	}
	if dec.More() {
		return ShardMap{}, fmt.Errorf("%w: shard map: trailing data", ErrMalformed)
	}
	if w.V != ShardMapVersion {
		return ShardMap{}, fmt.Errorf("%w: shard map version %d, want %d", ErrMalformed, w.V, ShardMapVersion)
	}
	m := ShardMap{Epoch: w.Epoch, Shards: w.Shards, Partitions: w.Partitions, Owner: w.Owner}
	if err := m.Validate(); err != nil {
		return ShardMap{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

// ShardMapBucketConfig is BM_SHARDMAP's configuration: file storage,
// cfg.StreamReplicas replicas, ShardMapHistory epochs kept.
func ShardMapBucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       ShardMapBucket,
		Description:  "Bordermatch shard map: shard → partition under an epoch",
		History:      ShardMapHistory,
		Storage:      jetstream.FileStorage,
		Replicas:     cfg.StreamReplicas,
		MaxValueSize: MaxShardMapSize,
	}
}

func shardMapKV(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, ShardMapBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w (bucket %s)", ErrNoShardMap, ShardMapBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: shard map bucket: %w", err)
	}
	return kv, nil
}

// StoreInitial creates the bucket (ShardMapBucketConfig(cfg)) if needed and
// stores m as the first map, only if no map is stored yet: a second
// StoreInitial, by another node or a restart, fails wrapping
// jetstream.ErrKeyExists and leaves the stored map alone.
func StoreInitial(ctx context.Context, js jetstream.JetStream, cfg Config, m ShardMap) error {
	b, err := EncodeShardMap(m)
	if err != nil {
		return err
	}
	if m.Shards != cfg.Shards {
		return fmt.Errorf("cluster: shard map of %d shards, config has %d", m.Shards, cfg.Shards)
	}
	var kv jetstream.KeyValue
	err = retryJS(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, ShardMapBucketConfig(cfg))
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: shard map bucket: %w", err)
	}
	if _, err := kv.Create(ctx, ShardMapKey, b); err != nil {
		return fmt.Errorf("cluster: store initial shard map (epoch %d): %w", m.Epoch, err)
	}
	return nil
}

// LoadShardMap returns the stored map and its KV revision; ErrNoShardMap
// when none is stored.
func LoadShardMap(ctx context.Context, js jetstream.JetStream) (ShardMap, uint64, error) {
	kv, err := shardMapKV(ctx, js)
	if err != nil {
		return ShardMap{}, 0, err
	}
	e, err := kv.Get(ctx, ShardMapKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ShardMap{}, 0, ErrNoShardMap
	}
	if err != nil {
		return ShardMap{}, 0, fmt.Errorf("cluster: load shard map: %w", err)
	}
	m, err := DecodeShardMap(e.Value())
	if err != nil {
		return ShardMap{}, 0, fmt.Errorf("cluster: load shard map (revision %d): %w", e.Revision(), err)
	}
	return m, e.Revision(), nil
}

// ApplyPlan flips the stored map to next if the stored map's epoch is
// expectedEpoch (the epoch the operator planned from) and next.Epoch is
// expectedEpoch+1 with the same number of shards. The write is a
// compare-and-set on the KV revision read, so of two operators applying
// plans from the same epoch exactly one succeeds; the other, and anyone
// applying a plan from an older epoch, gets an error wrapping ErrStaleEpoch
// and must re-plan from the current map.
func ApplyPlan(ctx context.Context, js jetstream.JetStream, expectedEpoch uint64, next ShardMap) error {
	b, err := EncodeShardMap(next)
	if err != nil {
		return fmt.Errorf("cluster: apply plan: %w", err)
	}
	if next.Epoch != expectedEpoch+1 {
		return fmt.Errorf("cluster: apply plan: next epoch %d, want expected epoch %d + 1", next.Epoch, expectedEpoch)
	}
	kv, err := shardMapKV(ctx, js)
	if err != nil {
		return err
	}
	e, err := kv.Get(ctx, ShardMapKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrNoShardMap
	}
	if err != nil {
		return fmt.Errorf("cluster: apply plan: %w", err)
	}
	cur, err := DecodeShardMap(e.Value())
	if err != nil {
		return fmt.Errorf("cluster: apply plan: stored map (revision %d): %w", e.Revision(), err)
	}
	if cur.Epoch != expectedEpoch {
		return fmt.Errorf("cluster: apply plan: %w: planned from epoch %d, the stored map is at epoch %d; re-plan", ErrStaleEpoch, expectedEpoch, cur.Epoch)
	}
	if cur.Shards != next.Shards {
		return fmt.Errorf("cluster: apply plan: next map has %d shards, the stored one %d (shards are fixed forever)", next.Shards, cur.Shards)
	}
	if _, err := kv.Update(ctx, ShardMapKey, b, e.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("cluster: apply plan: %w: the map changed after epoch %d was read (another operator applied a plan); re-plan", ErrStaleEpoch, expectedEpoch)
		}
		return fmt.Errorf("cluster: apply plan (epoch %d → %d): %w", expectedEpoch, next.Epoch, err)
	}
	return nil
}

// WatchShardMap calls fn with the stored map, then with every newer map as
// it is applied, in epoch order (a map not newer than the last delivered is
// skipped). It blocks until ctx ends (returning ctx's error), the bucket is
// missing (ErrNoShardMap; create it first with StoreInitial), or a stored
// value is malformed (an error wrapping ErrMalformed: a node must not keep
// serving on a map it cannot read without knowing).
func WatchShardMap(ctx context.Context, js jetstream.JetStream, fn func(ShardMap)) error {
	kv, err := shardMapKV(ctx, js)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, ShardMapKey)
	if err != nil {
		return fmt.Errorf("cluster: watch shard map: %w", err)
	}
	defer w.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("cluster: watch shard map: watcher stopped")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // end of the initial values, or a delete/purge
			}
			m, err := DecodeShardMap(e.Value())
			if err != nil {
				return fmt.Errorf("cluster: watch shard map (revision %d): %w", e.Revision(), err)
			}
			if m.Epoch <= last {
				continue
			}
			last = m.Epoch
			fn(m)
		}
	}
}
