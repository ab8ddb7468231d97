package matcher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
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
				got, err := c.Search(probes[i], opts[o])
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
			hits[i], errs[i] = c.Search(p, opts[0])
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
