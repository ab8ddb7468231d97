package matcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescer: concurrent searches through a Coalescer, with several
// sets of options at once, return what Index.Search returns for each, and
// share scans; a bad probe fails only its own call.
func TestCoalescer(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	ix := NewIndex(128)
	n := 60_000
	if raceEnabled {
		n = 12_000
	}
	for i := range n {
		e := Entry{SubjectID: fmt.Sprintf("s%d", i), Vector: randUnit(r, 128)}
		if i%7 == 0 {
			e.Watchlists = []string{"wanted"}
		}
		if i%11 == 0 {
			e.Watchlists = append(e.Watchlists, "interpol")
		}
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	probes := make([][]float32, 64)
	for i := range probes {
		probes[i] = randUnit(r, 128)
	}
	opts := []SearchOptions{
		{K: 10},
		{K: 5, Watchlists: []string{"wanted", "interpol"}},
		{K: 5, Watchlists: []string{"interpol", "wanted"}}, // the same set: batched with the one above
		{K: 20, MinScore: 0.1, HasMinScore: true},
	}
	want := make([][][]Hit, len(opts))
	for o, opt := range opts {
		want[o] = make([][]Hit, len(probes))
		for i, p := range probes {
			h, err := ix.Search(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			want[o][i] = h
		}
	}

	c := NewCoalescer(ix, 0)
	var scans, scanned atomic.Int64
	c.Observe = func(probes int) { scans.Add(1); scanned.Add(int64(probes)) }
	const callers, rounds = 32, 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range callers {
		wg.Go(func() {
			<-start
			for round := range rounds {
				o := (g + round) % len(opts)
				i := (g*rounds + round) % len(probes)
				got, err := c.Search(context.Background(), probes[i], opts[o])
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(got, want[o][i]) {
					t.Errorf("options %+v, probe %d: got %v, want %v", opts[o], i, got, want[o][i])
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if scanned.Load() != callers*rounds {
		t.Errorf("%d probes scanned, want %d", scanned.Load(), callers*rounds)
	}
	if scans.Load() >= callers*rounds {
		t.Errorf("%d searches took %d scans: none were batched", callers*rounds, scans.Load())
	}
	t.Logf("%d searches in %d scans", callers*rounds, scans.Load())

	// A bad probe among good ones: its own error only.
	errs := make([]error, 24)
	hits := make([][]Hit, 24)
	start = make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			p := probes[i]
			if i%5 == 3 {
				p = p[:100]
			}
			hits[i], errs[i] = c.Search(context.Background(), p, opts[0])
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if i%5 == 3 {
			if !errors.Is(err, ErrDimension) {
				t.Errorf("probe %d of the wrong length: %v", i, err)
			}
		} else if err != nil || !slices.Equal(hits[i], want[0][i]) {
			t.Errorf("probe %d beside a bad one: %v %v", i, hits[i], err)
		}
	}
	if len(c.queues) != 0 {
		t.Errorf("%d queues left behind", len(c.queues))
	}
}

func TestOptionsKey(t *testing.T) {
	same := [][2]SearchOptions{
		{{}, {K: 10}},
		{{K: 3, Watchlists: []string{"a", "b"}}, {K: 3, Watchlists: []string{"b", "a", "b"}}},
		{{K: 3, MinScore: 0.5, HasMinScore: true}, {K: 3, MinScore: 0.5, HasMinScore: true}},
	}
	for _, p := range same {
		if optionsKey(p[0]) != optionsKey(p[1]) {
			t.Errorf("%+v and %+v: keys differ", p[0], p[1])
		}
	}
	differ := [][2]SearchOptions{
		{{K: 3}, {K: 4}},
		{{K: 3}, {K: 3, HasMinScore: true}},
		{{K: 3, MinScore: 0.5, HasMinScore: true}, {K: 3, MinScore: 0.6, HasMinScore: true}},
		{{Watchlists: []string{"a b"}}, {Watchlists: []string{"a", "b"}}},
		{{Watchlists: []string{"a"}}, {}},
	}
	for _, p := range differ {
		if optionsKey(p[0]) == optionsKey(p[1]) {
			t.Errorf("%+v and %+v: the same key %q", p[0], p[1], optionsKey(p[0]))
		}
	}
}

// result is one Coalescer.Search's outcome.
type result struct {
	hits []Hit
	err  error
}

// goSearch runs c.Search on a goroutine of its own.
func goSearch(ctx context.Context, c *Coalescer, probe []float32, opt SearchOptions) <-chan result {
	ch := make(chan result, 1)
	go func() {
		h, err := c.Search(ctx, probe, opt)
		ch <- result{h, err}
	}()
	return ch
}

// await is the outcome of a search, or a failure if it does not come:
// a test of the Coalescer fails instead of hanging.
func await(t *testing.T, what string, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatalf("%s: no answer after a minute", what)
		return result{}
	}
}

// awaitEntered waits for a search to reach the source's gate.
func awaitEntered(t *testing.T, src *gatedSource) {
	t.Helper()
	select {
	case <-src.entered:
	case <-time.After(time.Minute):
		t.Fatal("no search reached the source")
	}
}

// awaitQueued waits until n calls wait in c's queue for opt.
func awaitQueued(t *testing.T, c *Coalescer, opt SearchOptions, n int) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		got := 0
		if q := c.queues[optionsKey(opt)]; q != nil {
			got = len(q.waiting)
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
	}
}

// TestCoalescerPanic: a batch whose search panics — in its VectorSource,
// while re-scoring — gives every caller of the batch a *PanicError, and
// the queue goes on: later searches with the same options work.
func TestCoalescerPanic(t *testing.T) {
	ix, src := sourcedGallery(t)
	r := rand.New(rand.NewPCG(45, 46))
	opt := SearchOptions{K: 5}
	probes := make([][]float32, 8)
	want := make([][]Hit, len(probes))
	for i := range probes {
		probes[i] = randUnit(r, 64)
		var err error
		if want[i], err = ix.Search(probes[i], opt); err != nil || len(want[i]) != opt.K {
			t.Fatalf("probe %d: %v %v", i, want[i], err)
		}
	}
	c := NewCoalescer(ix, 0)
	var mu sync.Mutex
	var sizes []int
	c.Observe = func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }

	// Probe 0 runs alone and waits at the gate while probes 1-5 queue;
	// then the source panics from the next call on: probe 0's search, let
	// through, succeeds, and the batch of 1-5 panics.
	gate := make(chan struct{})
	src.set(gate, false)
	lone := goSearch(context.Background(), c, probes[0], opt)
	awaitEntered(t, src)
	var batch []<-chan result
	for i := 1; i <= 5; i++ {
		batch = append(batch, goSearch(context.Background(), c, probes[i], opt))
	}
	awaitQueued(t, c, opt, 5)
	src.set(nil, true)
	close(gate)
	if res := await(t, "probe 0", lone); res.err != nil || !slices.Equal(res.hits, want[0]) {
		t.Errorf("probe 0, before the panic: %v %v", res.hits, res.err)
	}
	for i, ch := range batch {
		res := await(t, fmt.Sprintf("probe %d", i+1), ch)
		var perr *PanicError
		if !errors.As(res.err, &perr) || perr.Value != "vector source: boom" || len(perr.Stack) == 0 || res.hits != nil {
			t.Errorf("probe %d, in the panicking batch: %v %v, want a *PanicError", i+1, res.hits, res.err)
		}
	}
	mu.Lock()
	if !slices.Equal(sizes, []int{1, 5}) {
		t.Errorf("scans of %v probes, want [1 5]", sizes)
	}
	mu.Unlock()

	// The queue goes on: concurrent searches with the same options, and
	// a lone one, get their hits.
	src.set(nil, false)
	var wg sync.WaitGroup
	for i := range probes {
		wg.Go(func() {
			if h, err := c.Search(context.Background(), probes[i], opt); err != nil || !slices.Equal(h, want[i]) {
				t.Errorf("probe %d after the panic: %v %v", i, h, err)
			}
		})
	}
	wg.Wait()
	if h, err := c.Search(context.Background(), probes[3], opt); err != nil || !slices.Equal(h, want[3]) {
		t.Errorf("a lone search after the panic: %v %v", h, err)
	}
	if len(c.queues) != 0 {
		t.Errorf("%d queues left behind", len(c.queues))
	}
}

// TestCoalescerContext: a caller whose context ends leaves with its
// error — while queued, and while its batch runs — and the others of its
// queue and batch get their hits; a caller whose context has ended does
// not search at all.
func TestCoalescerContext(t *testing.T) {
	ix, src := sourcedGallery(t)
	r := rand.New(rand.NewPCG(47, 48))
	opt := SearchOptions{K: 5}
	probes := make([][]float32, 8)
	want := make([][]Hit, len(probes))
	for i := range probes {
		probes[i] = randUnit(r, 64)
		var err error
		if want[i], err = ix.Search(probes[i], opt); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCoalescer(ix, 0)
	var mu sync.Mutex
	var sizes []int
	c.Observe = func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }
	check := func(what string, res result, i int) {
		t.Helper()
		if res.err != nil || !slices.Equal(res.hits, want[i]) {
			t.Errorf("%s: %v %v, want %v", what, res.hits, res.err, want[i])
		}
	}

	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if h, err := c.Search(dead, probes[0], opt); !errors.Is(err, context.Canceled) || h != nil {
		t.Errorf("an ended context: %v %v", h, err)
	}

	// Leaving the queue: probe 0 runs alone, held at the gate; 1 (first
	// in the queue, the next batch's leader-to-be), 3 and 2 queue; 1's
	// context ends. It leaves at once, while probe 0 still runs.
	gate := make(chan struct{})
	src.set(gate, false)
	lone := goSearch(context.Background(), c, probes[0], opt)
	awaitEntered(t, src)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	first := goSearch(ctx1, c, probes[1], opt)
	awaitQueued(t, c, opt, 1)
	third := goSearch(context.Background(), c, probes[3], opt)
	awaitQueued(t, c, opt, 2)
	second := goSearch(ctx2, c, probes[2], opt) // queued after 3: not its batch's leader
	awaitQueued(t, c, opt, 3)
	cancel1()
	if res := await(t, "probe 1", first); !errors.Is(res.err, context.Canceled) || res.hits != nil {
		t.Errorf("probe 1, cancelled in the queue: %v %v", res.hits, res.err)
	}
	awaitQueued(t, c, opt, 2)
	select {
	case res := <-lone:
		t.Fatalf("probe 0 ended while held at the gate: %v", res)
	default:
	}

	// Leaving a running batch: probe 0's search is let through, and the
	// batch of 3 and 2 it hands on to (3 leading: a leader runs its batch
	// to the end) is held at a new gate; then 2's context ends: 2 leaves,
	// 3 gets its hits when the batch ends.
	gate2 := make(chan struct{})
	src.set(gate2, false)
	close(gate)
	check("probe 0", await(t, "probe 0", lone), 0)
	awaitEntered(t, src)
	cancel2()
	if res := await(t, "probe 2", second); !errors.Is(res.err, context.Canceled) || res.hits != nil {
		t.Errorf("probe 2, cancelled in its running batch: %v %v", res.hits, res.err)
	}
	src.set(nil, false)
	close(gate2)
	check("probe 3", await(t, "probe 3", third), 3)
	mu.Lock()
	if !slices.Equal(sizes, []int{1, 2}) {
		t.Errorf("scans of %v probes, want [1 2]", sizes)
	}
	mu.Unlock()

	// Leaving when chosen to lead: the test plays a running batch's
	// leader, holding c.mu while probe 4's context ends and the batch
	// ends with probe 4 chosen to lead the next; probe 4 must leave and
	// hand the lead on to probe 5.
	key := optionsKey(opt)
	q := &coalesceQueue[[]float32]{busy: true}
	c.mu.Lock()
	c.queues[key] = q
	c.mu.Unlock()
	ctx4, cancel4 := context.WithCancel(context.Background())
	defer cancel4()
	fourth := goSearch(ctx4, c, probes[4], opt)
	awaitQueued(t, c, opt, 1)
	fifth := goSearch(context.Background(), c, probes[5], opt)
	awaitQueued(t, c, opt, 2)
	c.mu.Lock()
	cancel4()
	c.handOn(q, key)
	if !q.waiting[0].lead {
		t.Fatal("probe 4 was not chosen to lead")
	}
	c.mu.Unlock()
	if res := await(t, "probe 4", fourth); !errors.Is(res.err, context.Canceled) || res.hits != nil {
		t.Errorf("probe 4, cancelled when chosen to lead: %v %v", res.hits, res.err)
	}
	check("probe 5", await(t, "probe 5", fifth), 5)
	if len(c.queues) != 0 {
		t.Errorf("%d queues left behind", len(c.queues))
	}
}
