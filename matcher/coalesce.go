package matcher

import (
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
	ix  *Index
	max int
	// Observe, if set, is told the size of every scan: 1 for a search
	// that ran alone. Set it before the first Search.
	Observe func(probes int)

	mu     sync.Mutex
	queues map[string]*coalesceQueue
}

type coalesceQueue struct {
	busy    bool
	waiting []*coalesceCall
}

type coalesceCall struct {
	probe []float32
	hits  []Hit
	err   error
	// wake is closed when hits and err are set, or when the call is to
	// run the next batch (lead).
	wake chan struct{}
	lead bool
}

// NewCoalescer returns a Coalescer over ix that batches up to max probes
// (<= 0: DefaultCoalesce).
func NewCoalescer(ix *Index, max int) *Coalescer {
	if max <= 0 {
		max = DefaultCoalesce
	}
	return &Coalescer{ix: ix, max: max, queues: map[string]*coalesceQueue{}}
}

// Search is Index.Search, run in a batch with the concurrent searches of
// the same options. The result is the same as Index.Search's.
func (c *Coalescer) Search(probe []float32, opt SearchOptions) ([]Hit, error) {
	key := optionsKey(opt)
	call := &coalesceCall{probe: probe, wake: make(chan struct{})}
	c.mu.Lock()
	q := c.queues[key]
	if q == nil {
		q = &coalesceQueue{}
		c.queues[key] = q
	}
	q.waiting = append(q.waiting, call)
	if q.busy {
		c.mu.Unlock()
		<-call.wake
		if !call.lead {
			return call.hits, call.err
		}
		c.mu.Lock()
	}
	// This call leads: it is q.waiting[0], since a queue with no search
	// running is empty and a woken leader is the first that waited.
	q.busy = true
	n := min(len(q.waiting), c.max)
	batch := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	c.mu.Unlock()

	c.run(batch, opt)

	c.mu.Lock()
	if len(q.waiting) > 0 {
		next := q.waiting[0]
		next.lead = true
		close(next.wake)
	} else {
		q.busy = false
		delete(c.queues, key)
	}
	c.mu.Unlock()
	return call.hits, call.err
}

// run searches a batch and wakes every call of it but the leader (the
// first), which is running it.
func (c *Coalescer) run(batch []*coalesceCall, opt SearchOptions) {
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
		if i > 0 {
			close(b.wake)
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
