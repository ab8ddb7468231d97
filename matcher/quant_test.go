package matcher

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQuantBound checks the bound the re-scoring relies on (quant.go): for
// random and real (idols) rows and probes, including near-duplicates and
// vectors with one dominant component, the exact f32 score lies within the
// interval the int8 scan gives.
func TestQuantBound(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	_, _, real := idols(t)
	dim := 128
	vec := func(i int) []float32 {
		switch i % 4 {
		case 0:
			return randUnit(r, dim)
		case 1:
			return near(r, real[r.IntN(len(real))], 0.05)
		case 2:
			v := randUnit(r, dim)
			v[r.IntN(dim)] = 40 // one outlier sets the scale
			return v
		}
		return real[r.IntN(len(real))]
	}
	ix := NewIndex(dim)
	for i := range 4096 {
		if err := ix.Add(Entry{SubjectID: fmt.Sprint(i), Vector: vec(i)}); err != nil {
			t.Fatal(err)
		}
	}
	acc := make([]int32, blocksFor(ix.Len())*blockRows)
	worst := 0.0
	for i := range 64 {
		qp := newQprobe(dim)
		if err := ix.normalise(qp.q, vec(i)); err != nil {
			t.Fatal(err)
		}
		qp.quantise()
		dotBlocks1Sums(ix.codes, ix.chunks, qp.p8, acc)
		for row := range ix.Len() {
			a := ix.scales[row]
			s := (float32(acc[row]) - qp.off) * (a * qp.b)
			m := a*qp.c + qp.e
			exact := dot(qp.q, ix.slab[row*dim:(row+1)*dim])
			if exact < s-m || exact > s+m {
				t.Fatalf("probe %d row %d: exact %v outside [%v, %v]", i, row, exact, s-m, s+m)
			}
			worst = max(worst, math.Abs(float64(exact-s))/float64(m))
		}
	}
	t.Logf("largest error seen: %.2f of the bound", worst)
}

// exactSearch is the f32 search the quantised one must equal: every row
// scored with dot on the index's own normalised rows.
func exactSearch(ix *Index, probe []float32, k int) []Hit {
	q := make([]float32, ix.dim)
	if err := ix.normalise(q, probe); err != nil {
		panic(err)
	}
	best := map[string]float32{}
	for row := range ix.Len() {
		id := string(ix.idOf(ix.slots[row].subject))
		s := dot(q, ix.slab[row*ix.dim:(row+1)*ix.dim])
		if b, ok := best[id]; !ok || s > b {
			best[id] = s
		}
	}
	var hits []Hit
	for id, s := range best {
		hits = append(hits, Hit{id, s})
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.SubjectID, b.SubjectID)
	})
	return hits[:min(k, len(hits))]
}

// TestQuantisedSearchIsExact: Search and SearchBatch return exactly the
// exact f32 search's hits (ids, order and scores) over a gallery of random
// and real descriptors, some subjects with several, for random probes,
// mates and real probes, in batches of several sizes.
func TestQuantisedSearchIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	ids, _, real := idols(t)
	ix := NewIndex(128)
	n := 40_000
	if raceEnabled {
		n = 20_000
	}
	for i := range n {
		e := Entry{SubjectID: fmt.Sprintf("r%d", i%(n*9/10)), Vector: randUnit(r, 128)}
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range real {
		if err := ix.Add(Entry{SubjectID: ids[i], Vector: v}); err != nil {
			t.Fatal(err)
		}
	}
	var probes [][]float32
	for i := range 300 {
		switch i % 3 {
		case 0:
			probes = append(probes, randUnit(r, 128))
		case 1:
			probes = append(probes, near(r, real[r.IntN(len(real))], 0.02))
		default:
			probes = append(probes, real[r.IntN(len(real))])
		}
	}
	if raceEnabled {
		probes = probes[:60]
	}
	want10 := make([][]Hit, len(probes))
	for i, p := range probes {
		want10[i] = exactSearch(ix, p, 10)
	}
	for _, k := range []int{1, 10} {
		want := make([][]Hit, len(probes))
		for i, p := range probes {
			want[i] = want10[i][:k]
			got, err := ix.Search(p, SearchOptions{K: k})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want[i]) {
				t.Fatalf("k=%d probe %d: got %v\nwant %v", k, i, got, want[i])
			}
		}
		for _, bs := range []int{2, 8, 13} {
			for lo := 0; lo < len(probes); lo += bs {
				batch := probes[lo:min(lo+bs, len(probes))]
				got, err := ix.SearchBatch(batch, SearchOptions{K: k})
				if err != nil {
					t.Fatal(err)
				}
				for j := range batch {
					if !slices.Equal(got[j], want[lo+j]) {
						t.Fatalf("k=%d batch of %d, probe %d: got %v\nwant %v", k, bs, lo+j, got[j], want[lo+j])
					}
				}
			}
		}
	}
}
