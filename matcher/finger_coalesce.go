package matcher

import (
	"context"
	"fmt"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// DefaultFingerCoalesce is how many searches a FingerCoalescer runs
// together at most. A finger search's first stage costs about a
// thirtieth of a full comparison per template and probe finger, and a
// batch shares it; the second stages stay one per search, so larger
// batches gain little and make their callers wait longer
// (BenchmarkFingerConcurrentSearch).
const DefaultFingerCoalesce = 8

// FingerCoalescer gathers concurrent finger searches with the same
// options into one FingerIndex.SearchFingersBatch, so that they share one
// pass over the gallery's records, as Coalescer does for faces: a search
// that finds none running with its options runs at once, alone; those
// that arrive while one runs queue, and when it ends the first of them
// runs the queue (up to max searches) as one batch. There is no timer.
type FingerCoalescer struct {
	coalescer[fingerProbes]
	ix *FingerIndex
	// Observe, if set, is told the size of every batch: 1 for a search
	// that ran alone. Set it before the first search.
	Observe func(searches int)
}

// fingerProbes are one search's probe fingers.
type fingerProbes = map[minutiae.Position]*FingerTemplate

// NewFingerCoalescer returns a FingerCoalescer over ix that batches up to
// max searches (<= 0: DefaultFingerCoalesce).
func NewFingerCoalescer(ix *FingerIndex, max int) *FingerCoalescer {
	if max <= 0 {
		max = DefaultFingerCoalesce
	}
	c := &FingerCoalescer{ix: ix}
	c.coalescer = coalescer[fingerProbes]{max: max, run: c.run, queues: map[string]*coalesceQueue[fingerProbes]{}}
	return c
}

// Search is SearchFingers with one probe finger of unknown position.
func (c *FingerCoalescer) Search(ctx context.Context, probe *FingerTemplate, opt SearchOptions) ([]Hit, error) {
	return c.SearchFingers(ctx, fingerProbes{minutiae.PositionUnknown: probe}, opt)
}

// SearchFingers is FingerIndex.SearchFingers, run in a batch with the
// concurrent searches of the same options; the result is the same. A
// caller that waits leaves when ctx ends, with ctx.Err() wrapped, as with
// Coalescer.Search; a batch whose search panics gives each of its callers
// a *PanicError.
func (c *FingerCoalescer) SearchFingers(ctx context.Context, probes fingerProbes, opt SearchOptions) ([]Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("matcher: search not started: %w", err)
	}
	// A bad probe fails alone, before it can join a batch.
	if _, err := probeList(probes); err != nil {
		return nil, err
	}
	return c.search(ctx, probes, opt)
}

// run searches a batch, setting each call's hits and err.
func (c *FingerCoalescer) run(batch []*coalesceCall[fingerProbes], opt SearchOptions) {
	if c.Observe != nil {
		c.Observe(len(batch))
	}
	probes := make([]fingerProbes, len(batch))
	for i, b := range batch {
		probes[i] = b.probe
	}
	hits, err := c.ix.SearchFingersBatch(probes, opt)
	for i, b := range batch {
		if err != nil {
			// One bad probe fails a batch; each call gets its own
			// answer instead.
			b.hits, b.err = c.ix.SearchFingers(b.probe, opt)
		} else {
			b.hits = hits[i]
		}
	}
}
