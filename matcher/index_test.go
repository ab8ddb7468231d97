package matcher

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

func randUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var s float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		s += float64(v[i] * v[i])
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

func TestDotMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			want += float64(a[i]) * float64(b[i])
		}
		if got := dot(a, b); math.Abs(float64(got)-want) > 1e-4*(1+math.Sqrt(float64(n))) {
			t.Fatalf("n=%d: dot %v, naive %v", n, got, want)
		}
	}
}

func TestSearchBasics(t *testing.T) {
	ix := NewIndex(3)
	add := func(id string, v []float32, lists ...string) {
		t.Helper()
		if err := ix.Add(Entry{SubjectID: id, Vector: v, Watchlists: lists}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", []float32{1, 0, 0}, "red")
	add("b", []float32{0, 1, 0}, "blue")
	add("c", []float32{1, 1, 0}, "red", "blue")
	add("a", []float32{0, 0, 5}) // a second template of a, not normalised
	add("d", []float32{0, 1, 0}) // ties with b

	tests := []struct {
		name  string
		probe []float32
		opt   SearchOptions
		want  []string
	}{
		{"best first", []float32{1, 0.1, 0}, SearchOptions{K: 2}, []string{"a", "c"}},
		{"tie by id", []float32{0, 1, 0}, SearchOptions{K: 2}, []string{"b", "d"}},
		{"best template of a subject", []float32{0, 0, 1}, SearchOptions{K: 1}, []string{"a"}},
		{"K beyond size, one hit per subject", []float32{1, 1, 1}, SearchOptions{K: 50}, []string{"c", "a", "b", "d"}},
		{"watchlist", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red"}}, []string{"c", "a"}},
		{"two watchlists", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red", "blue"}}, []string{"b", "c", "a"}},
		{"unknown watchlist", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"nope"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, err := ix.Search(tt.probe, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, h := range hits {
				got = append(got, h.SubjectID)
				if i > 0 && h.Score > hits[i-1].Score {
					t.Fatalf("not sorted: %v", hits)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v (%v)", got, tt.want, hits)
			}
		})
	}
	if s, ok, _ := ix.Verify([]float32{0, 0, 1}, "a"); !ok || math.Abs(float64(s)-1) > 1e-6 {
		t.Fatalf("verify a: %v %v", s, ok)
	}
	if _, ok, _ := ix.Verify([]float32{0, 0, 1}, "zz"); ok {
		t.Fatal("verify of an unknown subject reported ok")
	}
	if got := ix.WatchlistCounts(); got["red"] != 2 || got["blue"] != 2 || len(got) != 2 {
		t.Fatalf("watchlist counts %v", got)
	}
	if n := ix.Remove("a"); n != 2 || ix.Len() != 3 || ix.Subjects() != 3 {
		t.Fatalf("remove a: %d, len %d subjects %d", n, ix.Len(), ix.Subjects())
	}
	if n := ix.Remove("a"); n != 0 {
		t.Fatalf("second remove: %d", n)
	}
	hits, _ := ix.Search([]float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red"}})
	if len(hits) != 1 || hits[0].SubjectID != "c" {
		t.Fatalf("after remove: %v", hits)
	}
}

func TestBadVectors(t *testing.T) {
	ix := NewIndex(2)
	for _, tt := range []struct {
		e    Entry
		want error
	}{
		{Entry{SubjectID: "x", Vector: []float32{1}}, ErrDimension},
		{Entry{SubjectID: "x", Vector: []float32{0, 0}}, ErrBadVector},
		{Entry{SubjectID: "x", Vector: []float32{float32(math.NaN()), 1}}, ErrBadVector},
		{Entry{SubjectID: "x", Vector: []float32{float32(math.Inf(1)), 1}}, ErrBadVector},
		{Entry{Vector: []float32{1, 1}}, ErrEmptyID},
	} {
		if err := ix.Add(tt.e); !errors.Is(err, tt.want) {
			t.Errorf("%v: got %v, want %v", tt.e, err, tt.want)
		}
	}
	if _, err := ix.Search([]float32{0, 0}, SearchOptions{}); !errors.Is(err, ErrBadVector) {
		t.Errorf("zero probe: %v", err)
	}
	if _, err := ix.Search([]float32{1, 0, 0}, SearchOptions{}); !errors.Is(err, ErrDimension) {
		t.Errorf("long probe: %v", err)
	}
	if ix.Len() != 0 {
		t.Fatal("a refused vector was stored")
	}
}

// reference is a brute-force model of the index.
type reference map[string][][]float32

func (ref reference) search(q []float32, k int) []Hit {
	var hits []Hit
	for id, vs := range ref {
		best := float32(-2)
		for _, v := range vs {
			best = max(best, Cosine(q, v))
		}
		hits = append(hits, Hit{id, best})
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].SubjectID < hits[j].SubjectID
	})
	return hits[:min(k, len(hits))]
}

// TestAgainstBruteForce: after random adds and removes (swap-remove moves
// rows around), searches agree with a brute-force reference, on one core and
// split across workers.
func TestAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const dim = 16
	ix := NewIndex(dim)
	ref := reference{}
	for i := 0; i < 40000; i++ {
		id := fmt.Sprintf("s%d", r.IntN(15000))
		if r.IntN(5) == 0 {
			ix.Remove(id)
			delete(ref, id)
			continue
		}
		v := randUnit(r, dim)
		if err := ix.Add(Entry{SubjectID: id, Vector: v}); err != nil {
			t.Fatal(err)
		}
		ref[id] = append(ref[id], v)
	}
	if ix.Len() < parallelRows {
		t.Fatalf("only %d rows: the parallel path is not exercised", ix.Len())
	}
	for q := 0; q < 20; q++ {
		probe := randUnit(r, dim)
		got, err := ix.Search(probe, SearchOptions{K: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := ref.search(probe, 10)
		for i := range want {
			if got[i].SubjectID != want[i].SubjectID || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
				t.Fatalf("probe %d rank %d: got %v, want %v", q, i+1, got, want)
			}
		}
	}
}

// TestConcurrentAddRemoveSearch runs writers and searchers together; run it
// with -race.
func TestConcurrentAddRemoveSearch(t *testing.T) {
	const dim = 32
	ix := NewIndex(dim)
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; i < 3000; i++ {
				id := fmt.Sprintf("w%d-%d", w, r.IntN(500))
				if i%4 == 3 {
					ix.Remove(id)
				} else if err := ix.Add(Entry{SubjectID: id, Vector: randUnit(r, dim), Watchlists: []string{fmt.Sprint(i % 3)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	for s := 0; s < 3; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(s), 7))
			for i := 0; i < 300; i++ {
				opt := SearchOptions{K: 5}
				if i%2 == 0 {
					opt.Watchlists = []string{"1"}
				}
				hits, err := ix.Search(randUnit(r, dim), opt)
				if err != nil {
					t.Error(err)
					return
				}
				seen := map[string]bool{}
				for j, h := range hits {
					if h.SubjectID == "" || seen[h.SubjectID] || h.Score < -1.0001 || h.Score > 1.0001 || (j > 0 && h.Score > hits[j-1].Score) {
						t.Errorf("bad result %v", hits)
						return
					}
					seen[h.SubjectID] = true
				}
			}
		}(s)
	}
	wg.Wait()
}

func buildIndex(b *testing.B, n, dim int) *Index {
	r := rand.New(rand.NewPCG(5, 6))
	ix := NewIndex(dim)
	ix.slab = make([]float32, 0, n*dim)
	for i := 0; i < n; i++ {
		if err := ix.Add(Entry{SubjectID: fmt.Sprintf("s%d", i), Vector: randUnit(r, dim)}); err != nil {
			b.Fatal(err)
		}
	}
	return ix
}

// BenchmarkSearch: exact 1:N top-10 over n random 128-d unit vectors.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ix := buildIndex(b, n, 128)
			probe := randUnit(rand.New(rand.NewPCG(7, 8)), 128)
			b.ResetTimer()
			for b.Loop() {
				if _, err := ix.Search(probe, SearchOptions{K: 10}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}

func BenchmarkAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	vecs := make([][]float32, 1024)
	for i := range vecs {
		vecs[i] = randUnit(r, 128)
	}
	ix := NewIndex(128)
	i := 0
	for b.Loop() {
		ix.Add(Entry{SubjectID: fmt.Sprint(i), Vector: vecs[i%len(vecs)], Watchlists: []string{"w"}})
		i++
	}
}
