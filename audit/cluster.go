package audit

import (
	"context"
	"slices"
	"sync"
)

// clusterNote is what a cluster node's handler says of a call for its
// record: which node coordinated it and which partitions it asked.
type clusterNote struct {
	mu          sync.Mutex
	coordinator string
	partitions  []int
}

type clusterNoteKey struct{}

func withClusterNote(ctx context.Context) (context.Context, *clusterNote) {
	n := &clusterNote{}
	return context.WithValue(ctx, clusterNoteKey{}, n), n
}

func (n *clusterNote) get() (string, []int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	slices.Sort(n.partitions)
	return n.coordinator, slices.Compact(n.partitions)
}

// NoteCluster records, for the audit record of the call in ctx, the node
// that coordinates it and partitions it asked (added to those noted
// before). Outside an audited call it does nothing.
func NoteCluster(ctx context.Context, coordinator string, partitions ...int) {
	n, ok := ctx.Value(clusterNoteKey{}).(*clusterNote)
	if !ok {
		return
	}
	n.mu.Lock()
	n.coordinator = coordinator
	n.partitions = append(n.partitions, partitions...)
	n.mu.Unlock()
}
