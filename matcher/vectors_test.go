package matcher

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mapSource is a VectorSource over a map, as a store would hold the
// vectors: by subject id, as they were added (not normalised).
type mapSource struct {
	mu    sync.Mutex
	vecs  map[string][][]float32
	calls int
}

func (m *mapSource) Vectors(ids []string, fn func(int, []float32)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	for i, id := range ids {
		for _, v := range m.vecs[id] {
			fn(i, v)
		}
	}
	return nil
}

// TestSourceMatchesInMemory: an index reading its exact vectors from a
// VectorSource returns bit for bit the hits and scores of one keeping them
// in memory, through random adds (several vectors a subject, watchlists)
// and removes that move rows and compact the id arena, with and without
// watchlists, floors and batches, and Verify and Subject agree too.
func TestSourceMatchesInMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const dim = 24
	lists := []string{"red", "green", "blue", "rare"}
	src := &mapSource{vecs: map[string][][]float32{}}
	mem, ext := NewIndex(dim), NewIndexWithSource(dim, src)
	pad := strings.Repeat("x", 40) // long ids fill the arena, so removals compact it
	check := func(stage string) {
		t.Helper()
		for q := range 16 {
			probe := randUnit(r, dim)
			opt := SearchOptions{K: []int{1, 10, 100}[q%3]}
			switch q % 4 {
			case 1:
				opt.Watchlists = []string{"rare"}
			case 2:
				opt.Watchlists = []string{"red", "blue", "missing"}
			case 3:
				opt.HasMinScore, opt.MinScore = true, 0.5
			}
			want, err := mem.Search(probe, opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ext.Search(probe, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s probe %d %+v:\n got %v\nwant %v", stage, q, opt, got, want)
			}
			if len(want) == 0 && opt.Watchlists == nil && !opt.HasMinScore && mem.Len() > 0 {
				t.Fatalf("%s: no hits from a non-empty index", stage)
			}
		}
		probes := [][]float32{randUnit(r, dim), randUnit(r, dim), randUnit(r, dim)}
		want, _ := mem.SearchBatch(probes, SearchOptions{K: 5})
		got, err := ext.SearchBatch(probes, SearchOptions{K: 5})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: batch %v %v, want %v", stage, got, err, want)
		}
		n := 0
		for id := range src.vecs {
			if n++; n > 20 {
				break
			}
			probe := randUnit(r, dim)
			ws, wok, werr := mem.Verify(probe, id)
			gs, gok, gerr := ext.Verify(probe, id)
			if ws != gs || wok != gok || werr != nil || gerr != nil || !wok {
				t.Fatalf("%s: verify %s: %v %v %v, want %v %v %v", stage, id, gs, gok, gerr, ws, wok, werr)
			}
			wl, wn, _ := mem.Subject(id)
			gl, gn, _ := ext.Subject(id)
			if !slices.Equal(wl, gl) || wn != gn || gn != len(src.vecs[id]) {
				t.Fatalf("%s: subject %s: %v %d, want %v %d", stage, id, gl, gn, wl, wn)
			}
		}
		if mem.Len() != ext.Len() || mem.Subjects() != ext.Subjects() || ext.Subjects() != len(src.vecs) {
			t.Fatalf("%s: %d/%d rows, %d/%d/%d subjects", stage, mem.Len(), ext.Len(), mem.Subjects(), ext.Subjects(), len(src.vecs))
		}
		if fmt.Sprint(mem.WatchlistCounts()) != fmt.Sprint(ext.WatchlistCounts()) {
			t.Fatalf("%s: watchlists %v, want %v", stage, ext.WatchlistCounts(), mem.WatchlistCounts())
		}
	}
	compacted := false
	for i := range 30000 {
		id := fmt.Sprintf("s%d-%s", r.IntN(6000), pad)
		if r.IntN(4) == 0 {
			waste := ext.ids.waste
			if got, want := ext.Remove(id), mem.Remove(id); got != want || got != len(src.vecs[id]) {
				t.Fatalf("remove %s: %d, want %d", id, got, want)
			}
			delete(src.vecs, id)
			compacted = compacted || ext.ids.waste < waste
		} else {
			e := Entry{SubjectID: id, Vector: randVec(r, dim)}
			if r.IntN(3) == 0 {
				e.Watchlists = []string{lists[r.IntN(len(lists))]}
			}
			if len(src.vecs[id]) >= 16 {
				continue
			}
			if err := mem.Add(e); err != nil {
				t.Fatal(err)
			}
			if err := ext.Add(e); err != nil {
				t.Fatal(err)
			}
			src.vecs[id] = append(src.vecs[id], e.Vector)
		}
		if i%5000 == 4999 {
			check(fmt.Sprintf("op %d", i))
		}
	}
	if !compacted {
		t.Fatal("the id arena was never compacted: the test does not cover it")
	}
	if ext.slab != nil {
		t.Fatalf("an index with a source keeps %d f32s", len(ext.slab))
	}
}

// randVec is a random vector of random length (not unit): the source gives
// vectors as added, and the index must normalise them as Add does.
func randVec(r *rand.Rand, dim int) []float32 {
	v := randUnit(r, dim)
	s := float32(0.1 + 10*r.Float64())
	for i := range v {
		v[i] *= s
	}
	return v
}

// TestSourceDropsDeleted: a subject the source no longer has (deleted from
// the store, the index not yet told) is never returned, even for a probe
// equal to its vector, and Verify says it is not there.
func TestSourceDropsDeleted(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const dim = 32
	src := &mapSource{vecs: map[string][][]float32{}}
	ix := NewIndexWithSource(dim, src)
	var batch []Entry
	for i := range 3000 {
		e := Entry{SubjectID: fmt.Sprint("p", i), Vector: randVec(r, dim), Watchlists: []string{"w"}}
		batch = append(batch, e)
		src.vecs[e.SubjectID] = [][]float32{e.Vector}
	}
	if err := ix.AddBatch(batch); err != nil {
		t.Fatal(err)
	}
	gone := batch[1234]
	hits, err := ix.Search(gone.Vector, SearchOptions{K: 3})
	if err != nil || len(hits) != 3 || hits[0].SubjectID != gone.SubjectID || hits[0].Score < 0.9999 {
		t.Fatalf("before deletion: %v %v", hits, err)
	}
	src.mu.Lock()
	delete(src.vecs, gone.SubjectID)
	src.mu.Unlock()
	// Left in the index (a permanent ghost), it never comes back, though
	// the hits may be too few: its bound hid the others.
	for _, opt := range []SearchOptions{{K: 3}, {K: 1}, {K: 3, Watchlists: []string{"w"}}} {
		hits, err := ix.Search(gone.Vector, opt)
		if err != nil || slices.ContainsFunc(hits, func(h Hit) bool { return h.SubjectID == gone.SubjectID }) {
			t.Fatalf("%+v after deletion from the source: %v %v", opt, hits, err)
		}
	}
	if _, ok, err := ix.Verify(gone.Vector, gone.SubjectID); ok || err != nil {
		t.Fatalf("verify after deletion from the source: %v %v", ok, err)
	}
	// Removed from the index while the search runs, as the server does
	// after the store: the search runs again and gets its K full.
	gone2 := batch[2345]
	src.mu.Lock()
	delete(src.vecs, gone2.SubjectID)
	src.mu.Unlock()
	done := make(chan int)
	go func() { done <- ix.Remove(gone2.SubjectID) }()
	hits, err = ix.Search(gone2.Vector, SearchOptions{K: 1})
	if n := <-done; n != 1 {
		t.Fatalf("remove: %d", n)
	}
	if err != nil || len(hits) != 1 || hits[0].SubjectID == gone2.SubjectID {
		t.Fatalf("search racing the removal: %v %v", hits, err)
	}
	if _, _, ok := ix.Subject(gone2.SubjectID); ok {
		t.Fatal("subject still indexed after Remove")
	}
}

// TestAddBatchAllOrNothing: one bad entry fails the batch, naming it, and
// stores nothing.
func TestAddBatchAllOrNothing(t *testing.T) {
	ix := NewIndex(4)
	err := ix.AddBatch([]Entry{{SubjectID: "a", Vector: []float32{1, 0, 0, 0}}, {SubjectID: "b", Vector: []float32{0, 0, 0, 0}}})
	if err == nil || !strings.Contains(err.Error(), `entry 1 ("b")`) || ix.Len() != 0 || ix.Subjects() != 0 {
		t.Fatalf("%v, %d rows", err, ix.Len())
	}
}

// BenchmarkIndexMemory: live heap bytes per template of a 128-d index of
// one-vector subjects with ids like the server's, keeping the f32 vectors
// in memory or only the codes (a VectorSource), built by AddBatch with
// room reserved, as the server loads it.
func BenchmarkIndexMemory(b *testing.B) {
	const n, dim = 200_000, 128
	for _, mode := range []string{"in-memory", "source"} {
		b.Run(mode, func(b *testing.B) {
			var per float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				var ix *Index
				if mode == "source" {
					ix = NewIndexWithSource(dim, &mapSource{})
				} else {
					ix = NewIndex(dim)
				}
				ix.Reserve(n, n)
				r := rand.New(rand.NewPCG(1, 2))
				es := make([]Entry, 0, 4096)
				vecs := make([]float32, 4096*dim)
				for lo := 0; lo < n; lo += 4096 {
					es = es[:0]
					for i := lo; i < min(lo+4096, n); i++ {
						v := vecs[(i-lo)*dim : (i-lo+1)*dim]
						for j := range v {
							v[j] = float32(r.NormFloat64())
						}
						es = append(es, Entry{SubjectID: fmt.Sprintf("g%08d", i), Vector: v})
					}
					if err := ix.AddBatch(es); err != nil {
						b.Fatal(err)
					}
				}
				es, vecs = nil, nil
				runtime.GC()
				runtime.ReadMemStats(&after)
				per = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
				runtime.KeepAlive(ix)
			}
			b.ReportMetric(per, "B/template")
		})
	}
}

// gatedSource is a mapSource that can hold its callers at a gate and
// panic: the real path a search's re-scoring takes through an index's
// VectorSource (the store, in the server).
type gatedSource struct {
	*mapSource
	mu      sync.Mutex
	gate    chan struct{} // when not nil, Vectors waits for it to close
	entered chan struct{} // a token for every call that waits at the gate
	boom    bool          // Vectors panics (after the gate)
	target  string        // when set, Vectors panics only for ids with it
}

func (s *gatedSource) Vectors(ids []string, fn func(int, []float32)) error {
	s.mu.Lock()
	gate, boom, target := s.gate, s.boom, s.target
	s.mu.Unlock()
	if gate != nil {
		s.entered <- struct{}{}
		<-gate
	}
	if target != "" && slices.Contains(ids, target) {
		panic("vector source: boom on " + target)
	}
	if boom {
		panic("vector source: boom")
	}
	return s.mapSource.Vectors(ids, fn)
}

// set changes the source's behaviour for the calls that start from now on.
func (s *gatedSource) set(gate chan struct{}, boom bool) {
	s.mu.Lock()
	s.gate, s.boom = gate, boom
	s.mu.Unlock()
}

// sourcedGallery is an index of n random 64-d subjects reading its vectors
// from a gatedSource, big enough that a search runs on two workers (with
// GOMAXPROCS 2, which it sets for the test), so that a batch's re-scoring
// runs on a goroutine of the index's as well as on the caller's.
func sourcedGallery(t *testing.T) (*Index, *gatedSource) {
	t.Helper()
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	r := rand.New(rand.NewPCG(41, 42))
	src := &gatedSource{mapSource: &mapSource{vecs: map[string][][]float32{}}, entered: make(chan struct{}, 64)}
	ix := NewIndexWithSource(64, src)
	n := parallelRows + parallelRows/4
	for i := range n {
		e := Entry{SubjectID: fmt.Sprintf("s%d", i), Vector: randUnit(r, 64)}
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
		src.vecs[e.SubjectID] = [][]float32{e.Vector}
	}
	if w := min(runtime.GOMAXPROCS(0), n/(parallelRows/4)); w < 2 {
		t.Fatalf("searches run on %d worker", w)
	}
	return ix, src
}

// TestSearchPanicReachesCaller: a VectorSource's panic on one of a
// search's own goroutines reaches the caller's goroutine, where it can be
// recovered, instead of killing the process, and the index works on.
func TestSearchPanicReachesCaller(t *testing.T) {
	ix, src := sourcedGallery(t)
	r := rand.New(rand.NewPCG(43, 44))
	// Probe 1 is subject s7's own vector: s7 is re-scored for it and (as
	// checked) not for probe 0. With two workers, probe 1 is re-scored on
	// the index's second goroutine, not on the caller's.
	probes := [][]float32{randUnit(r, 64), src.vecs["s7"][0]}
	opt := SearchOptions{K: 1}
	src.target = "s7"
	if _, err := ix.Search(probes[0], opt); err != nil {
		t.Fatalf("probe 0 alone: %v", err)
	}
	pv := func() (v any) {
		defer func() { v = recover() }()
		ix.SearchBatch(probes, opt)
		return nil
	}()
	gp, ok := pv.(*goroutinePanic)
	if !ok || gp.value != "vector source: boom on s7" || len(gp.stack) == 0 {
		t.Fatalf("recovered %#v, want the source's panic carried from the index's goroutine", pv)
	}
	src.target = ""
	// The read lock was released: a writer gets in.
	late := randUnit(r, 64)
	src.vecs["late"] = [][]float32{late}
	done := make(chan error, 1)
	go func() { done <- ix.Add(Entry{SubjectID: "late", Vector: late}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Add blocked after a panicking search: the read lock was kept")
	}
	hits, err := ix.SearchBatch(probes, opt)
	if err != nil || len(hits) != 2 || len(hits[1]) != 1 || hits[1][0].SubjectID != "s7" {
		t.Fatalf("after the panic: %v %v", hits, err)
	}
}
