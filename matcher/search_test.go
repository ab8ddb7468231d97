package matcher

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSearchBatchOptions: Search and SearchBatch return the exact f32
// search's hits, with watchlists (one, several, whose rows skip whole blocks) and a
// minimum score (rows flagged by the kernels against a floor that is not
// the K-th best), over a gallery whose last block is partial.
func TestSearchBatchOptions(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	ix := NewIndex(128)
	n := 30_000 + 7
	if raceEnabled {
		n = 10_000 + 7
	}
	lists := map[string][]string{} // subject id -> its watchlists
	for i := range n {
		e := Entry{SubjectID: fmt.Sprintf("s%d", i%(n-500)), Vector: randUnit(r, 128)}
		switch {
		case i%97 == 0:
			e.Watchlists = []string{"a"}
		case i/64%5 == 1: // runs of whole blocks on the list, others without one
			e.Watchlists = []string{"b"}
		}
		if err := ix.Add(e); err != nil {
			t.Fatal(err)
		}
		lists[e.SubjectID] = append(lists[e.SubjectID], e.Watchlists...)
	}
	probes := make([][]float32, 40)
	for i := range probes {
		probes[i] = randUnit(r, 128)
		if i%2 == 1 {
			probes[i] = near(r, probes[i-1], 0.3)
		}
	}
	all := make([][]Hit, len(probes)) // every subject, best first
	for i, p := range probes {
		all[i] = exactSearch(ix, p, n)
	}
	for _, opt := range []SearchOptions{
		{K: 10, Watchlists: []string{"a"}},
		{K: 5, Watchlists: []string{"a", "b"}},
		{K: 20, MinScore: 0.3, HasMinScore: true},
		{K: 3, Watchlists: []string{"b"}, MinScore: 0.2, HasMinScore: true},
	} {
		want := make([][]Hit, len(probes))
		for i, p := range probes {
			want[i] = []Hit{}
			for _, h := range all[i] {
				on := len(opt.Watchlists) == 0 || slices.ContainsFunc(lists[h.SubjectID], func(l string) bool { return slices.Contains(opt.Watchlists, l) })
				if on && (!opt.HasMinScore || h.Score >= opt.MinScore) && len(want[i]) < opt.K {
					want[i] = append(want[i], h)
				}
			}
			got, err := ix.Search(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(want[i]) == 0 {
				got = want[i]
			}
			if !slices.Equal(got, want[i]) {
				t.Fatalf("%+v, probe %d: got %v\nwant %v", opt, i, got, want[i])
			}
		}
		for _, bs := range []int{3, 8, 20} {
			for lo := 0; lo < len(probes); lo += bs {
				batch := probes[lo:min(lo+bs, len(probes))]
				got, err := ix.SearchBatch(batch, opt)
				if err != nil {
					t.Fatal(err)
				}
				for j := range batch {
					if len(got[j]) == 0 && len(want[lo+j]) == 0 {
						continue
					}
					if !slices.Equal(got[j], want[lo+j]) {
						t.Fatalf("%+v, batch of %d, probe %d: got %v\nwant %v", opt, bs, lo+j, got[j], want[lo+j])
					}
				}
			}
		}
	}
}
