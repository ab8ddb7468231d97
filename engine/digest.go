package engine

import "github.com/bordermatch/bordermatch/store"

// ShardDigests returns the per-shard digests of the engine's store
// (store.ShardDigests): what a cluster's reconciler compares between the
// replicas of a shard and with the enrolment log. shardOf maps a subject id
// to its shard. It reads one consistent snapshot of the store, not the
// in-memory indexes. Errors are of the engine's kinds.
func (s *Engine) ShardDigests(shardOf func(id string) int) (map[int]store.ShardDigest, error) {
	if shardOf == nil {
		return nil, invalid("shard digests: no shard function")
	}
	d, err := s.store.ShardDigests(shardOf)
	return d, kindOf("shard digests", err)
}
