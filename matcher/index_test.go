package matcher

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func randUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var s float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		s += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(s))
	}
	return v
}

// near returns a unit vector at cosine ~1-eps²/2 from v.
func near(r *rand.Rand, v []float32, eps float64) []float32 {
	w := randUnit(r, len(v))
	for i := range w {
		w[i] = v[i] + float32(eps)*w[i]
	}
	return w
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
		// float32 sums in a different order: the error grows with length.
		if got := dot(a, b); math.Abs(float64(got)-want) > 1e-5*(1+float64(n)) {
			t.Fatalf("n=%d: dot %v, naive %v", n, got, want)
		}
	}
}

func TestCosine(t *testing.T) {
	for _, tt := range []struct {
		a, b []float32
		want float32
	}{
		{[]float32{1, 0}, []float32{3, 0}, 1},
		{[]float32{1, 0}, []float32{-2, 0}, -1},
		{[]float32{1, 0}, []float32{0, 5}, 0},
		{[]float32{1, 1}, []float32{1, 0}, float32(1 / math.Sqrt2)},
		{[]float32{0, 0}, []float32{1, 0}, 0},
		{[]float32{1, 0}, []float32{1, 0, 0}, 0},
		// float32 products of these overflow: once Inf clamped to 1.
		{[]float32{math.MaxFloat32, -math.MaxFloat32}, []float32{0.3, -0.1}, float32(0.4 / math.Sqrt(2*0.1))},
		{[]float32{math.MaxFloat32, math.MaxFloat32}, []float32{math.MaxFloat32, -math.MaxFloat32}, 0},
		{[]float32{math.MaxFloat32, math.MaxFloat32}, []float32{math.MaxFloat32, 0}, float32(1 / math.Sqrt2)},
		{[]float32{float32(math.NaN()), 1}, []float32{1, 1}, 0},
		{[]float32{float32(math.Inf(1)), 1}, []float32{1, 1}, 0},
	} {
		if got := Cosine(tt.a, tt.b); !(math.Abs(float64(got-tt.want)) <= 1e-6) { // NaN fails too
			t.Errorf("Cosine(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCosineAsIndex: a 1:1 comparison scores exactly what the index's
// Verify scores for the same pair, so no path has a scale of its own.
func TestCosineAsIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		a, b := make([]float32, 128), make([]float32, 128)
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())*1e3
		}
		ix := NewIndex(128)
		if err := ix.Add(Entry{SubjectID: "s", Vector: b}); err != nil {
			t.Fatal(err)
		}
		want, _, err := ix.Verify(a, "s")
		if err != nil {
			t.Fatal(err)
		}
		if got := Cosine(a, b); got != max(-1, min(1, want)) {
			t.Fatalf("Cosine %v, index Verify %v", got, want)
		}
	}
}

func ids(hits []Hit) []string {
	var s []string
	for _, h := range hits {
		s = append(s, h.SubjectID)
	}
	return s
}

// checkSorted reports whether hits are distinct subjects, scores in [-1, 1],
// best first and ties by id.
func checkSorted(hits []Hit) error {
	seen := map[string]bool{}
	for i, h := range hits {
		if h.SubjectID == "" || seen[h.SubjectID] || h.Score < -1.0001 || h.Score > 1.0001 || math.IsNaN(float64(h.Score)) {
			return fmt.Errorf("bad hit %d in %v", i, hits)
		}
		seen[h.SubjectID] = true
		if i > 0 {
			p := hits[i-1]
			if h.Score > p.Score || (h.Score == p.Score && h.SubjectID < p.SubjectID) {
				return fmt.Errorf("not sorted at %d: %v", i, hits)
			}
		}
	}
	return nil
}

func TestSearch(t *testing.T) {
	ix := NewIndex(3)
	add := func(id string, v []float32, lists ...string) {
		t.Helper()
		if err := ix.Add(Entry{SubjectID: id, Vector: v, Watchlists: lists}); err != nil {
			t.Fatal(err)
		}
	}
	add("d", []float32{0, 1, 0}) // ties with b; added first so that row order would favour it
	add("a", []float32{1, 0, 0}, "red")
	add("b", []float32{0, 1, 0}, "blue")
	add("c", []float32{1, 1, 0}, "red", "blue")
	add("a", []float32{0, 0, 5}) // a second vector of a, not normalised, on no list of its own

	tests := []struct {
		name  string
		probe []float32
		opt   SearchOptions
		want  []string
	}{
		{"best first", []float32{1, 0.1, 0}, SearchOptions{K: 2}, []string{"a", "c"}},
		{"tie by id", []float32{0, 1, 0}, SearchOptions{K: 2}, []string{"b", "d"}},
		{"tie at the K-th place goes to the smaller id", []float32{0, 1, 0}, SearchOptions{K: 1}, []string{"b"}},
		{"best vector of a subject", []float32{0, 0, 1}, SearchOptions{K: 1}, []string{"a"}},
		{"K beyond size, one hit per subject", []float32{1, 1, 1}, SearchOptions{K: 50}, []string{"c", "a", "b", "d"}},
		{"default K", []float32{1, 1, 1}, SearchOptions{}, []string{"c", "a", "b", "d"}},
		{"negative K is the default", []float32{1, 1, 1}, SearchOptions{K: -3}, []string{"c", "a", "b", "d"}},
		{"watchlist", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red"}}, []string{"c", "a"}},
		{"membership is the subject's: a's unlisted vector counts", []float32{0, 0, 1}, SearchOptions{K: 1, Watchlists: []string{"red"}}, []string{"a"}},
		{"two watchlists", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red", "blue"}}, []string{"b", "c", "a"}},
		{"a list twice", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"blue", "blue"}}, []string{"b", "c"}},
		{"known and unknown list", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"nope", "blue"}}, []string{"b", "c"}},
		{"unknown watchlist", []float32{0, 1, 0}, SearchOptions{Watchlists: []string{"nope"}}, nil},
		{"min score", []float32{1, 1, 0}, SearchOptions{HasMinScore: true, MinScore: 0.7}, []string{"c", "a", "b", "d"}},
		{"min score drops", []float32{1, 0, 0}, SearchOptions{HasMinScore: true, MinScore: 0.5}, []string{"a", "c"}},
		{"min score is inclusive", []float32{1, 0, 0}, SearchOptions{HasMinScore: true, MinScore: 1}, []string{"a"}},
		{"min score 0 is a floor", []float32{-1, -1, -1}, SearchOptions{HasMinScore: true}, nil},
		{"no min score without the flag", []float32{-1, -1, -1}, SearchOptions{MinScore: 0.5}, []string{"a", "b", "d", "c"}},
		{"min score and watchlist", []float32{0, 1, 0}, SearchOptions{HasMinScore: true, MinScore: 0.5, Watchlists: []string{"red"}}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, err := ix.Search(tt.probe, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSorted(hits); err != nil {
				t.Fatal(err)
			}
			if got := ids(hits); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v (%v)", got, tt.want, hits)
			}
		})
	}

	if s, ok, err := ix.Verify([]float32{0, 0, 1}, "a"); err != nil || !ok || math.Abs(float64(s)-1) > 1e-6 {
		t.Fatalf("verify a: %v %v %v", s, ok, err)
	}
	if s, ok, err := ix.Verify([]float32{1, 1, 0}, "a"); err != nil || !ok || math.Abs(float64(s)-1/math.Sqrt2) > 1e-6 {
		t.Fatalf("verify a, best of its two vectors: %v %v %v", s, ok, err)
	}
	if _, ok, err := ix.Verify([]float32{0, 0, 1}, "zz"); ok || err != nil {
		t.Fatalf("verify of an unknown subject: %v %v", ok, err)
	}
	if got := ix.WatchlistCounts(); len(got) != 2 || got["red"] != 2 || got["blue"] != 2 {
		t.Fatalf("watchlist counts %v", got)
	}
	if n := ix.Remove("a"); n != 2 || ix.Len() != 3 || ix.Subjects() != 3 {
		t.Fatalf("remove a: %d, len %d subjects %d", n, ix.Len(), ix.Subjects())
	}
	if n := ix.Remove("a"); n != 0 {
		t.Fatalf("second remove: %d", n)
	}
	if _, ok, _ := ix.Verify([]float32{0, 0, 1}, "a"); ok {
		t.Fatal("verify of a removed subject reported ok")
	}
	if got := ix.WatchlistCounts(); len(got) != 2 || got["red"] != 1 || got["blue"] != 2 {
		t.Fatalf("watchlist counts after removing a: %v", got)
	}
	hits, _ := ix.Search([]float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red"}})
	if got := ids(hits); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("red after removing a: %v", hits)
	}
	ix.Remove("c")
	if got := ix.WatchlistCounts(); len(got) != 1 || got["blue"] != 1 {
		t.Fatalf("an emptied list is still counted: %v", got)
	}
	if hits, _ := ix.Search([]float32{0, 1, 0}, SearchOptions{Watchlists: []string{"red"}}); len(hits) != 0 {
		t.Fatalf("emptied list matched %v", hits)
	}
	// A removed subject's number is reused; nothing of it may linger.
	add("e", []float32{0, 0, 1})
	if hits, _ := ix.Search([]float32{0, 0, 1}, SearchOptions{K: 1}); ids(hits)[0] != "e" || ix.Subjects() != 3 {
		t.Fatalf("after re-adding: %v, %d subjects", hits, ix.Subjects())
	}
	if hits, _ := ix.Search([]float32{0, 0, 1}, SearchOptions{Watchlists: []string{"red", "blue"}}); !slices.Equal(ids(hits), []string{"b"}) {
		t.Fatalf("e inherited a removed subject's lists: %v", hits)
	}
}

func TestBadInput(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	ix := NewIndex(2)
	for _, tt := range []struct {
		name string
		e    Entry
		want error
	}{
		{"short", Entry{SubjectID: "x", Vector: []float32{1}}, ErrDimension},
		{"long", Entry{SubjectID: "x", Vector: []float32{1, 2, 3}}, ErrDimension},
		{"nil", Entry{SubjectID: "x"}, ErrDimension},
		{"zero", Entry{SubjectID: "x", Vector: []float32{0, 0}}, ErrBadVector},
		{"NaN", Entry{SubjectID: "x", Vector: []float32{nan, 1}}, ErrBadVector},
		{"Inf", Entry{SubjectID: "x", Vector: []float32{inf, 1}}, ErrBadVector},
		{"empty id", Entry{Vector: []float32{1, 1}}, ErrEmptyID},
	} {
		if err := ix.Add(tt.e); !errors.Is(err, tt.want) {
			t.Errorf("Add %s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if ix.Len() != 0 || ix.Subjects() != 0 {
		t.Fatal("a refused vector was stored")
	}
	if err := ix.Add(Entry{SubjectID: "tiny", Vector: []float32{1e-30, 1e-30}}); err != nil {
		t.Errorf("a tiny but non-zero vector was refused: %v", err)
	}
	if err := ix.Add(Entry{SubjectID: "huge", Vector: []float32{3e38, 3e38}}); err != nil {
		t.Errorf("a huge but finite vector was refused: %v", err)
	}
	for _, tt := range []struct {
		name  string
		probe []float32
		want  error
	}{
		{"zero", []float32{0, 0}, ErrBadVector},
		{"NaN", []float32{nan, 0}, ErrBadVector},
		{"-Inf", []float32{float32(math.Inf(-1)), 0}, ErrBadVector},
		{"long", []float32{1, 0, 0}, ErrDimension},
		{"nil", nil, ErrDimension},
	} {
		if _, err := ix.Search(tt.probe, SearchOptions{}); !errors.Is(err, tt.want) {
			t.Errorf("Search %s: got %v, want %v", tt.name, err, tt.want)
		}
		if _, _, err := ix.Verify(tt.probe, "tiny"); !errors.Is(err, tt.want) {
			t.Errorf("Verify %s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	hits, err := ix.Search([]float32{1, 1}, SearchOptions{})
	if err != nil || len(hits) != 2 || math.Abs(float64(hits[0].Score)-1) > 1e-6 || math.Abs(float64(hits[1].Score)-1) > 1e-6 {
		t.Fatalf("tiny and huge vectors not stored by direction: %v %v", hits, err)
	}
	if hits, err := NewIndex(4).Search([]float32{1, 0, 0, 0}, SearchOptions{}); err != nil || len(hits) != 0 {
		t.Fatalf("empty index: %v %v", hits, err)
	}
}

// TestTiesAtScale: with every score equal, the K smallest ids come back
// whatever the insertion order, also when the search is split across
// workers.
func TestTiesAtScale(t *testing.T) {
	const n = parallelRows + 5000
	r := rand.New(rand.NewPCG(9, 9))
	ix := NewIndex(4)
	for _, i := range r.Perm(n) {
		if err := ix.Add(Entry{SubjectID: fmt.Sprintf("s%06d", i), Vector: []float32{1, 2, 3, 4}, Watchlists: []string{strconv.Itoa(i % 2)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		opt  SearchOptions
		want []string
	}{
		{SearchOptions{K: 3}, []string{"s000000", "s000001", "s000002"}},
		{SearchOptions{K: 3, Watchlists: []string{"1"}}, []string{"s000001", "s000003", "s000005"}},
	} {
		hits, err := ix.Search([]float32{4, 3, 2, 1}, tt.opt)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(hits); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.opt, got, tt.want)
		}
	}
}

// TestManyVectorsOneSubject: a subject with many vectors close to the probe
// takes one place, and K distinct subjects still come back, on one core and
// split across workers (where each worker sees the crowd).
func TestManyVectorsOneSubject(t *testing.T) {
	for _, crowd := range []int{50, parallelRows + 1000} {
		t.Run(strconv.Itoa(crowd), func(t *testing.T) {
			const dim = 8
			r := rand.New(rand.NewPCG(uint64(crowd), 1))
			probe := randUnit(r, dim)
			ix := NewIndex(dim)
			others := map[string]float32{}
			for i := range 30 {
				id := fmt.Sprintf("other%02d", i)
				v := near(r, probe, 1.5)
				others[id] = Cosine(probe, v)
				if err := ix.Add(Entry{SubjectID: id, Vector: v}); err != nil {
					t.Fatal(err)
				}
			}
			var best float32 = -1
			for range crowd {
				v := near(r, probe, 0.05)
				best = max(best, Cosine(probe, v))
				if err := ix.Add(Entry{SubjectID: "crowd", Vector: v}); err != nil {
					t.Fatal(err)
				}
			}
			hits, err := ix.Search(probe, SearchOptions{K: 10})
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSorted(hits); err != nil {
				t.Fatal(err)
			}
			if len(hits) != 10 || hits[0].SubjectID != "crowd" || math.Abs(float64(hits[0].Score-best)) > 1e-5 {
				t.Fatalf("got %v, want crowd at %v first and 9 others", hits, best)
			}
			for _, h := range hits[1:] {
				if math.Abs(float64(h.Score-others[h.SubjectID])) > 1e-5 {
					t.Fatalf("%s scored %v, want %v", h.SubjectID, h.Score, others[h.SubjectID])
				}
			}
		})
	}
}

// model is a brute-force model of the index: every subject's vectors and
// lists, searched by comparing everything.
type model struct {
	vecs  map[string][][]float32
	lists map[string][]string
}

func (m *model) add(e Entry) {
	m.vecs[e.SubjectID] = append(m.vecs[e.SubjectID], e.Vector)
	for _, l := range e.Watchlists {
		if !slices.Contains(m.lists[e.SubjectID], l) {
			m.lists[e.SubjectID] = append(m.lists[e.SubjectID], l)
		}
	}
}

func (m *model) remove(id string) int {
	n := len(m.vecs[id])
	delete(m.vecs, id)
	delete(m.lists, id)
	return n
}

func (m *model) search(q []float32, opt SearchOptions) []Hit {
	k := opt.K
	if k <= 0 {
		k = 10
	}
	var hits []Hit
	for id, vs := range m.vecs {
		if len(opt.Watchlists) > 0 && !slices.ContainsFunc(opt.Watchlists, func(l string) bool { return slices.Contains(m.lists[id], l) }) {
			continue
		}
		best := float32(-2)
		for _, v := range vs {
			best = max(best, Cosine(q, v))
		}
		if opt.HasMinScore && best < opt.MinScore {
			continue
		}
		hits = append(hits, Hit{id, best})
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.SubjectID, b.SubjectID)
	})
	return hits[:min(k, len(hits))]
}

// sameHits compares a search with the model's. Scores are computed two ways
// (normalised-then-dot, and Cosine), so they may differ in the last bits,
// and two subjects a rounding error apart may swap places.
func sameHits(got, want []Hit) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d hits, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			return fmt.Errorf("rank %d: score %v, want %v", i+1, got[i].Score, want[i].Score)
		}
		if got[i].SubjectID != want[i].SubjectID {
			j := slices.IndexFunc(want, func(h Hit) bool { return h.SubjectID == got[i].SubjectID })
			if j < 0 || math.Abs(float64(want[j].Score-want[i].Score)) > 1e-5 {
				return fmt.Errorf("rank %d: %s, want %s", i+1, got[i].SubjectID, want[i].SubjectID)
			}
		}
	}
	return nil
}

// TestAgainstBruteForce: after random adds and removes (each removal moves
// rows around), searches and verifications agree with the brute-force
// model, with and without watchlists and a floor, on one core and split
// across workers.
func TestAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const dim = 16
	lists := []string{"red", "green", "blue", "rare"}
	ix := NewIndex(dim)
	ix.grow(1000, 500) // room made ahead must not change anything
	m := &model{vecs: map[string][][]float32{}, lists: map[string][]string{}}
	check := func(stage string) {
		t.Helper()
		for q := range 12 {
			probe := randUnit(r, dim)
			opt := SearchOptions{K: []int{1, 10, 100}[q%3]}
			switch q % 4 {
			case 1:
				opt.Watchlists = []string{"rare"}
			case 2:
				opt.Watchlists = []string{"red", "blue", "missing"}
			case 3:
				opt.HasMinScore, opt.MinScore = true, 0.6
			}
			got, err := ix.Search(probe, opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSorted(got); err != nil {
				t.Fatal(err)
			}
			if err := sameHits(got, m.search(probe, opt)); err != nil {
				t.Fatalf("%s, %d rows, probe %d %+v: %v", stage, ix.Len(), q, opt, err)
			}
		}
		for id, vs := range m.vecs {
			probe := randUnit(r, dim)
			want := float32(-2)
			for _, v := range vs {
				want = max(want, Cosine(probe, v))
			}
			if got, ok, err := ix.Verify(probe, id); err != nil || !ok || math.Abs(float64(got-want)) > 1e-5 {
				t.Fatalf("%s: verify %s: %v %v %v, want %v", stage, id, got, ok, err, want)
			}
			break // one is enough; map order varies the subject
		}
		rows, counts := 0, map[string]int{}
		for id, vs := range m.vecs {
			rows += len(vs)
			for _, l := range m.lists[id] {
				counts[l]++
			}
		}
		if ix.Len() != rows || ix.Subjects() != len(m.vecs) {
			t.Fatalf("%s: %d rows %d subjects, want %d %d", stage, ix.Len(), ix.Subjects(), rows, len(m.vecs))
		}
		if got := ix.WatchlistCounts(); fmt.Sprint(got) != fmt.Sprint(counts) {
			t.Fatalf("%s: watchlist counts %v, want %v", stage, got, counts)
		}
	}

	for i := range 40000 {
		id := fmt.Sprintf("s%d", r.IntN(15000))
		if r.IntN(5) == 0 {
			if got, want := ix.Remove(id), m.remove(id); got != want {
				t.Fatalf("remove %s: %d, want %d", id, got, want)
			}
		} else {
			e := Entry{SubjectID: id, Vector: randUnit(r, dim)}
			if r.IntN(3) == 0 {
				e.Watchlists = []string{lists[r.IntN(3)]}
			}
			if r.IntN(200) == 0 {
				e.Watchlists = append(e.Watchlists, "rare")
			}
			if err := ix.Add(e); err != nil {
				t.Fatal(err)
			}
			m.add(e)
		}
		if i == 2000 {
			check("small")
		}
	}
	if ix.Len() <= parallelRows {
		t.Fatalf("only %d rows: the parallel path is not exercised", ix.Len())
	}
	check("large")
	// Empty it the way the server would, subject by subject.
	for id := range m.vecs {
		if i := r.IntN(10); i > 0 {
			ix.Remove(id)
			m.remove(id)
		}
	}
	check("mostly removed")
}

// TestConcurrentAddRemoveSearch runs writers and searchers together (run it
// with -race). Subject ids are never reused and each vector is a function
// of its subject and its number, so every hit can be checked: its score
// must equal the cosine with one of its subject's vectors, and a subject
// whose removal finished before the search began must not appear.
func TestConcurrentAddRemoveSearch(t *testing.T) {
	const dim = 8 // small: under -race every float read is instrumented
	ix := NewIndex(dim)
	vector := func(id string, j int) []float32 {
		var seed uint64
		for _, c := range id {
			seed = seed*131 + uint64(c)
		}
		return randUnit(rand.New(rand.NewPCG(seed, uint64(j))), dim)
	}
	var (
		clock     atomic.Int64
		removedAt sync.Map // id -> clock value after its Remove returned
		added     sync.Map // id -> *atomic.Int32, vectors published
		writers   sync.WaitGroup
		searchers sync.WaitGroup
		done      atomic.Bool
	)
	// A base that is never removed, so that searches split across workers.
	for i := range parallelRows + 1000 {
		id := "base-" + strconv.Itoa(i)
		n := new(atomic.Int32)
		n.Store(1)
		added.Store(id, n)
		if err := ix.Add(Entry{SubjectID: id, Vector: vector(id, 0), Watchlists: []string{strconv.Itoa(i % 3)}}); err != nil {
			t.Fatal(err)
		}
	}
	// matches reports whether score is the cosine of probe with one of the
	// subject's vectors added so far.
	matches := func(probe []float32, id string, score float32) bool {
		n, ok := added.Load(id)
		if !ok {
			return false
		}
		for j := range int(n.(*atomic.Int32).Load()) {
			if math.Abs(float64(score-Cosine(probe, vector(id, j)))) < 1e-5 {
				return true
			}
		}
		return false
	}
	for w := range 2 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			var live []string
			for i := 0; i < 1000 && !t.Failed(); i++ {
				if len(live) > 0 && r.IntN(3) == 0 {
					j := r.IntN(len(live))
					id := live[j]
					live = slices.Delete(live, j, j+1)
					ix.Remove(id)
					removedAt.Store(id, clock.Add(1))
					continue
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				n := new(atomic.Int32)
				added.Store(id, n)
				for j := range 1 + r.IntN(3) {
					n.Store(int32(j + 1)) // before Add, so a searcher can check any vector it sees
					if err := ix.Add(Entry{SubjectID: id, Vector: vector(id, j), Watchlists: []string{strconv.Itoa(i % 3)}}); err != nil {
						t.Error(err)
						return
					}
				}
				live = append(live, id)
			}
		})
	}
	var searches atomic.Int64
	for s := range 2 {
		searchers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(s), 7))
			for !done.Load() && !t.Failed() {
				probe := randUnit(r, dim)
				opt := SearchOptions{K: 5}
				if r.IntN(2) == 0 {
					opt.Watchlists = []string{"1"}
				}
				start := clock.Load()
				hits, err := ix.Search(probe, opt)
				if err != nil {
					t.Error(err)
					return
				}
				searches.Add(1)
				if err := checkSorted(hits); err != nil {
					t.Error(err)
					return
				}
				for _, h := range hits {
					if at, ok := removedAt.Load(h.SubjectID); ok && at.(int64) <= start {
						t.Errorf("%s was removed before the search began, and found", h.SubjectID)
					}
					if !matches(probe, h.SubjectID, h.Score) {
						t.Errorf("%s: score %v is none of its vectors'", h.SubjectID, h.Score)
					}
				}
				if len(hits) > 0 {
					id := hits[len(hits)-1].SubjectID
					score, ok, err := ix.Verify(probe, id)
					if err != nil || (ok && !matches(probe, id, score)) {
						t.Errorf("verify %s: %v %v %v", id, score, ok, err)
					}
				}
			}
		})
	}
	writers.Wait()
	done.Store(true)
	searchers.Wait()
	t.Logf("%d searches alongside the writes", searches.Load())
}
