package matcher

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DefaultCoalesce is how many probes a Coalescer scans together at most:
// four groups of the eight-probe kernel. With 64 callers at 1M faces,
// batches of up to 32 served about 1.5 times the searches of batches of up
// to 16 and nearly as many as of up to 64 (BenchmarkConcurrentSearch),
// while a full batch still takes only about 25 ms.
const DefaultCoalesce = 32

// Coalescer gathers concurrent searches with the same options into one
// SearchBatch, so that concurrent callers share one pass over the gallery
// instead of each making its own: at a million faces a single probe's scan
// is bound by memory bandwidth, and a batch costs a fraction of a scan per
// probe.
//
// It is group commit for searches: a search that finds none running with
// its options runs at once, alone, so a lone caller waits for nothing; the
// searches that arrive while one runs queue, and when it ends the first of
// them runs the queue (up to max probes) as one batch. There is no timer.
type Coalescer struct {
	coalescer[[]float32]
	ix *Index
	// Observe, if set, is told the size of every scan: 1 for a search
	// that ran alone. Set it before the first Search.
	Observe func(probes int)
}

// coalescer is the queueing Coalescer and FingerCoalescer share, over
// probes of type P: one queue of waiting calls per search options, the
// first waiting call leading the next batch when one ends.
type coalescer[P any] struct {
	max int
	// run searches a batch, setting each call's hits and err.
	run func(batch []*coalesceCall[P], opt SearchOptions)

	mu     sync.Mutex
	queues map[string]*coalesceQueue[P]
}

type coalesceQueue[P any] struct {
	busy    bool
	waiting []*coalesceCall[P]
}

type coalesceCall[P any] struct {
	probe P
	hits  []Hit
	err   error
	// wake is closed when hits and err are set, or when the call is to
	// run the next batch (lead).
	wake chan struct{}
	lead bool // set under coalescer.mu
}

// PanicError is the error a Coalescer's Search returns to every caller of
// a batch whose search panicked, the caller that ran it included: the
// panic is not raised again, so it neither kills the process (a panic on
// one of the index's goroutines reaches the caller that ran the batch,
// see parallel) nor leaves the batch's other callers waiting forever; the
// searches queued after the batch go on.
type PanicError struct {
	Value any    // what the search panicked with
	Stack []byte // the stack of the goroutine that panicked
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("matcher: search panicked: %v", e.Value)
}

// Unwrap gives the panic's value, when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// NewCoalescer returns a Coalescer over ix that batches up to max probes
// (<= 0: DefaultCoalesce).
func NewCoalescer(ix *Index, max int) *Coalescer {
	if max <= 0 {
		max = DefaultCoalesce
	}
	c := &Coalescer{ix: ix}
	c.coalescer = coalescer[[]float32]{max: max, run: c.run, queues: map[string]*coalesceQueue[[]float32]{}}
	return c
}

// Search is Index.Search, run in a batch with the concurrent searches of
// the same options. The result is the same as Index.Search's.
//
// A caller that waits — for a batch to start, or for the one it is in to
// end — leaves when ctx ends, with ctx.Err() (wrapped); the batch goes on
// for the others, and if the caller was to run the next batch another
// waiting caller does. A caller that finds ctx ended at once does not
// search. A caller running a batch runs it to the end: Index.Search takes
// no context. A batch whose search panics gives each of its callers a
// *PanicError.
func (c *Coalescer) Search(ctx context.Context, probe []float32, opt SearchOptions) ([]Hit, error) {
	return c.search(ctx, probe, opt)
}

// search queues a call with the others of its options and returns its
// answer (see Coalescer.Search).
func (c *coalescer[P]) search(ctx context.Context, probe P, opt SearchOptions) ([]Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("matcher: search not started: %w", err)
	}
	key := optionsKey(opt)
	call := &coalesceCall[P]{probe: probe, wake: make(chan struct{})}
	c.mu.Lock()
	q := c.queues[key]
	if q == nil {
		q = &coalesceQueue[P]{}
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
				// Not taken into a batch yet (if chosen to lead one, not
				// started): leave the queue, and pass the lead on.
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
	// This call leads: it is q.waiting[0], since a queue with no search
	// running is empty, a woken leader is the first that waited, and only
	// a call itself leaves the queue before it is taken.
	q.busy = true
	n := min(len(q.waiting), c.max)
	batch := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	c.mu.Unlock()

	c.runBatch(q, key, batch, opt)
	return call.hits, call.err
}

// handOn, with c.mu held and q's batch ended (or its next leader gone),
// wakes the first waiting call to run the next batch, or, with none
// waiting, retires the queue.
func (c *coalescer[P]) handOn(q *coalesceQueue[P], key string) {
	if len(q.waiting) > 0 {
		next := q.waiting[0]
		next.lead = true
		close(next.wake)
	} else {
		q.busy = false
		delete(c.queues, key)
	}
}

// runBatch runs a batch of q, then wakes every call of it but the leader
// (the first), which is running it, and hands q on. If the search panics,
// every call gets a *PanicError; the queue is handed on whatever happens.
func (c *coalescer[P]) runBatch(q *coalesceQueue[P], key string, batch []*coalesceCall[P], opt SearchOptions) {
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
	c.run(batch, opt)
}

// run searches a batch, setting each call's hits and err.
func (c *Coalescer) run(batch []*coalesceCall[[]float32], opt SearchOptions) {
	if c.Observe != nil {
		c.Observe(len(batch))
	}
	if len(batch) == 1 {
		batch[0].hits, batch[0].err = c.ix.Search(batch[0].probe, opt)
		return
	}
	probes := make([][]float32, len(batch))
	for i, b := range batch {
		probes[i] = b.probe
	}
	hits, err := c.ix.SearchBatch(probes, opt)
	for i, b := range batch {
		if err != nil {
			// One bad probe fails a batch; each call gets its own
			// answer instead.
			b.hits, b.err = c.ix.Search(b.probe, opt)
		} else {
			b.hits = hits[i]
		}
	}
}

// optionsKey identifies the searches a batch can serve together: the same
// K, floor and set of watchlists (in any order).
func optionsKey(opt SearchOptions) string {
	var b strings.Builder
	k := opt.K
	if k <= 0 {
		k = defaultK
	}
	b.WriteString(strconv.Itoa(k))
	if opt.HasMinScore {
		b.WriteString(" >=")
		b.WriteString(strconv.FormatFloat(float64(opt.MinScore), 'g', -1, 32))
	}
	if len(opt.Watchlists) > 0 {
		lists := slices.Clone(opt.Watchlists)
		slices.Sort(lists)
		for _, l := range slices.Compact(lists) {
			// Quoted: a list name may hold any byte.
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(l))
		}
	}
	return b.String()
}
