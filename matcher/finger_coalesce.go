package matcher

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

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
	ix  *FingerIndex
	max int
	// Observe, if set, is told the size of every batch: 1 for a search
	// that ran alone. Set it before the first search.
	Observe func(searches int)

	mu     sync.Mutex
	queues map[string]*fingerQueue
}

type fingerQueue struct {
	busy    bool
	waiting []*fingerCall
}

type fingerCall struct {
	probes map[minutiae.Position]*FingerTemplate
	hits   []Hit
	err    error
	wake   chan struct{} // closed when hits and err are set, or to lead
	lead   bool          // set under FingerCoalescer.mu
}

// NewFingerCoalescer returns a FingerCoalescer over ix that batches up to
// max searches (<= 0: DefaultFingerCoalesce).
func NewFingerCoalescer(ix *FingerIndex, max int) *FingerCoalescer {
	if max <= 0 {
		max = DefaultFingerCoalesce
	}
	return &FingerCoalescer{ix: ix, max: max, queues: map[string]*fingerQueue{}}
}

// Search is SearchFingers with one probe finger of unknown position.
func (c *FingerCoalescer) Search(ctx context.Context, probe *FingerTemplate, opt SearchOptions) ([]Hit, error) {
	return c.SearchFingers(ctx, map[minutiae.Position]*FingerTemplate{minutiae.PositionUnknown: probe}, opt)
}

// SearchFingers is FingerIndex.SearchFingers, run in a batch with the
// concurrent searches of the same options; the result is the same. A
// caller that waits leaves when ctx ends, with ctx.Err() wrapped, as with
// Coalescer.Search; a batch whose search panics gives each of its callers
// a *PanicError.
func (c *FingerCoalescer) SearchFingers(ctx context.Context, probes map[minutiae.Position]*FingerTemplate, opt SearchOptions) ([]Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("matcher: search not started: %w", err)
	}
	// A bad probe fails alone, before it can join a batch.
	if _, err := probeList(probes); err != nil {
		return nil, err
	}
	key := optionsKey(opt)
	call := &fingerCall{probes: probes, wake: make(chan struct{})}
	c.mu.Lock()
	q := c.queues[key]
	if q == nil {
		q = &fingerQueue{}
		c.queues[key] = q
	}
	q.waiting = append(q.waiting, call)
	if q.busy {
		c.mu.Unlock()
		select {
		case <-call.wake:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if err := ctx.Err(); err != nil {
			if i := slices.Index(q.waiting, call); i >= 0 {
				q.waiting = slices.Delete(q.waiting, i, i+1)
				if call.lead {
					c.handOn(q, key)
				}
				c.mu.Unlock()
				return nil, fmt.Errorf("matcher: gave up waiting for a search: %w", err)
			}
		}
		if !call.lead {
			c.mu.Unlock()
			select {
			case <-call.wake:
				return call.hits, call.err
			default: // in a batch that is still running
				return nil, fmt.Errorf("matcher: gave up waiting for a search: %w", ctx.Err())
			}
		}
	}
	// This call leads: it is q.waiting[0] (see Coalescer.Search).
	q.busy = true
	n := min(len(q.waiting), c.max)
	batch := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	c.mu.Unlock()

	c.runBatch(q, key, batch, opt)
	return call.hits, call.err
}

// handOn, with c.mu held, wakes the first waiting call to run the next
// batch, or retires the queue.
func (c *FingerCoalescer) handOn(q *fingerQueue, key string) {
	if len(q.waiting) > 0 {
		next := q.waiting[0]
		next.lead = true
		close(next.wake)
	} else {
		q.busy = false
		delete(c.queues, key)
	}
}

// runBatch runs a batch, wakes its calls but the leader and hands q on,
// whatever happens.
func (c *FingerCoalescer) runBatch(q *fingerQueue, key string, batch []*fingerCall, opt SearchOptions) {
	defer func() {
		if r := recover(); r != nil {
			perr := &PanicError{Value: r, Stack: debug.Stack()}
			if gp, ok := r.(*goroutinePanic); ok {
				perr.Value, perr.Stack = gp.value, gp.stack
			}
			for _, b := range batch {
				b.hits, b.err = nil, perr
			}
		}
		for _, b := range batch[1:] {
			close(b.wake)
		}
		c.mu.Lock()
		c.handOn(q, key)
		c.mu.Unlock()
	}()
	if c.Observe != nil {
		c.Observe(len(batch))
	}
	probes := make([]map[minutiae.Position]*FingerTemplate, len(batch))
	for i, b := range batch {
		probes[i] = b.probes
	}
	hits, err := c.ix.SearchFingersBatch(probes, opt)
	for i, b := range batch {
		if err != nil {
			b.hits, b.err = c.ix.SearchFingers(b.probes, opt)
		} else {
			b.hits = hits[i]
		}
	}
}
