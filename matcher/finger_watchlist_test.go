package matcher

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// crowdIndex enrolls 2,000 distractors on the watchlist "crowd": rigid
// transforms of the committed DB1/DB3 fingers 101-104, so near-copies of
// every impression of DB1's finger 101 among them; then the true subject
// "f101" (DB1 finger 101, impression 1) on the list "small" beside
// "f102" and "f103". It returns the index and DB1's finger-101
// impression 2, a probe whose near-copies in the crowd outscore its mate.
func crowdIndex(t testing.TB) (*FingerIndex, *FingerTemplate) {
	t.Helper()
	crowd, _ := fingerGallery(t, 2_000)
	s := loadFVCSet(t, "testdata/fingers/fvc2002_db1_b", "db1")
	x := NewFingerIndex()
	for i, d := range crowd {
		id := "d" + strconv.Itoa(i)
		if err := x.Add(id, minutiae.PositionUnknown, d); err != nil {
			t.Fatal(err)
		}
		x.SetWatchlists(id, []string{"crowd"})
	}
	for _, f := range []int{101, 102, 103} {
		id := "f" + strconv.Itoa(f)
		if err := x.Add(id, minutiae.PositionUnknown, s.t[[2]int{f, 1}]); err != nil {
			t.Fatal(err)
		}
		if !x.SetWatchlists(id, []string{"small", "small"}) {
			t.Fatal("SetWatchlists: not enrolled")
		}
	}
	return x, s.t[[2]int{101, 2}]
}

// TestFingerIndexWatchlists: a search restricted to a small watchlist
// returns its mate first, though 2,000 better-scoring impostors on
// another list push the mate beyond the top K (and out of the shortlist)
// of an unrestricted search.
func TestFingerIndexWatchlists(t *testing.T) {
	x, probe := crowdIndex(t)
	hits, err := x.Search(probe, SearchOptions{K: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 10 || slices.ContainsFunc(hits, func(h Hit) bool { return h.SubjectID == "f101" }) {
		t.Fatalf("unrestricted: the mate is in the top 10, the test needs it beyond: %v", hits)
	}
	for _, lists := range [][]string{{"small"}, {"nobody", "small"}} {
		hits, err = x.Search(probe, SearchOptions{K: 10, Watchlists: lists})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 3 || hits[0].SubjectID != "f101" {
			t.Errorf("lists %v: hits %v, want f101 first of the 3 on the list", lists, hits)
		}
	}
	// Both lists: the crowd again.
	if hits, _ = x.Search(probe, SearchOptions{K: 10, Watchlists: []string{"small", "crowd"}}); hits[0].SubjectID[0] != 'd' {
		t.Errorf("both lists: %v", hits)
	}
	if hits, _ = x.Search(probe, SearchOptions{Watchlists: []string{"nobody"}}); len(hits) != 0 {
		t.Errorf("an unknown list: %v", hits)
	}
	// Moving and removing subjects moves them between lists.
	x.SetWatchlists("f101", []string{"crowd"})
	if hits, _ = x.Search(probe, SearchOptions{Watchlists: []string{"small"}}); len(hits) != 2 || slices.ContainsFunc(hits, func(h Hit) bool { return h.SubjectID == "f101" }) {
		t.Errorf("f101 moved off the list: %v", hits)
	}
	if lists, ok := x.Watchlists("f101"); !ok || !slices.Equal(lists, []string{"crowd"}) {
		t.Errorf("Watchlists: %v %v", lists, ok)
	}
	x.Remove("f102")
	x.Remove("f103")
	if hits, _ = x.Search(probe, SearchOptions{Watchlists: []string{"small"}}); len(hits) != 0 {
		t.Errorf("the list emptied: %v", hits)
	}
	if _, ok := x.lists["small"]; ok {
		t.Error("an emptied list is kept")
	}
	if x.SetWatchlists("nobody", []string{"a"}) {
		t.Error("SetWatchlists of a subject not enrolled")
	}
}

// TestFingerSearchBatch: a batch's hits are each search's own, with and
// without watchlists.
func TestFingerSearchBatch(t *testing.T) {
	x, probe := crowdIndex(t)
	s := loadFVCSet(t, "testdata/fingers/fvc2002_db1_b", "db1")
	var probes []map[minutiae.Position]*FingerTemplate
	for _, f := range s.fingers {
		probes = append(probes, map[minutiae.Position]*FingerTemplate{minutiae.PositionUnknown: s.t[[2]int{f, 3}]})
	}
	probes = append(probes, map[minutiae.Position]*FingerTemplate{minutiae.RightIndex: probe, minutiae.LeftIndex: s.t[[2]int{102, 2}]})
	for _, opt := range []SearchOptions{{K: 5}, {K: 5, Watchlists: []string{"small"}}} {
		got, err := x.SearchFingersBatch(probes, opt)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range probes {
			want, _ := x.SearchFingers(p, opt)
			if !slices.Equal(got[i], want) {
				t.Errorf("%v search %d: batch %v, alone %v", opt.Watchlists, i, got[i], want)
			}
		}
	}
	if _, err := x.SearchFingersBatch([]map[minutiae.Position]*FingerTemplate{probes[0], {}}, SearchOptions{}); err == nil {
		t.Error("an empty probe: no error")
	}
}

// TestFingerCoalescer: searches that arrive while one runs share the next
// batch, and each gets what it would get alone.
func TestFingerCoalescer(t *testing.T) {
	x, _ := subsetIndex(t, minutiae.PositionUnknown)
	s := loadFVCSet(t, "testdata/fingers/fvc2002_db1_b", "db1")
	var mu sync.Mutex
	var sizes []int
	c := NewFingerCoalescer(x, 0)
	c.Observe = func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }
	// Hold the index so that the first search blocks and the others queue.
	x.mu.Lock()
	const n = 6
	hits := make([][]Hit, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			hits[i], errs[i] = c.Search(context.Background(), s.t[[2]int{101 + i%4, 1 + i/4}], SearchOptions{K: 2})
		})
	}
	for {
		c.mu.Lock()
		q := c.queues[optionsKey(SearchOptions{K: 2})]
		queued := q != nil && len(q.waiting) == n-1
		c.mu.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	x.mu.Unlock()
	wg.Wait()
	for i := range n {
		want, _ := x.Search(s.t[[2]int{101 + i%4, 1 + i/4}], SearchOptions{K: 2})
		if errs[i] != nil || !slices.Equal(hits[i], want) {
			t.Errorf("search %d: %v %v, alone %v", i, hits[i], errs[i], want)
		}
	}
	if !slices.Equal(sizes, []int{1, n - 1}) {
		t.Errorf("batch sizes %v, want [1 %d]", sizes, n-1)
	}
	// A cancelled context does not search; a bad probe fails alone.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Search(ctx, s.t[[2]int{101, 1}], SearchOptions{}); err == nil {
		t.Error("cancelled: no error")
	}
	if _, err := c.Search(context.Background(), nil, SearchOptions{}); err == nil {
		t.Error("nil probe: no error")
	}
}
