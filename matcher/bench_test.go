package matcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// galleries caches the benchmark indexes: building a million rows takes
// seconds, and the benchmark function runs more than once.
var galleries = map[int]*Index{}

// gallery returns an index of n random 128-d unit vectors, one subject
// each: Add in a loop, with room made first.
func gallery(b *testing.B, n int) *Index {
	if ix := galleries[n]; ix != nil {
		return ix
	}
	start := time.Now()
	r := rand.New(rand.NewPCG(5, 6))
	ix := NewIndex(128)
	ix.grow(n, n)
	v := make([]float32, 128)
	for i := range n {
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		if err := ix.Add(Entry{SubjectID: "s" + strconv.Itoa(i), Vector: v}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built %d rows in %v", n, time.Since(start).Round(time.Millisecond))
	galleries[n] = ix
	return ix
}

// BenchmarkSearch: exact 1:N top-10 over n random 128-d unit vectors, on
// all cores (GOMAXPROCS) from 16k rows.
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ix := gallery(b, n)
			r := rand.New(rand.NewPCG(7, 8))
			probes := make([][]float32, 16)
			for i := range probes {
				probes[i] = randUnit(r, 128)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := ix.Search(probes[i%len(probes)], SearchOptions{K: 10}); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}

// BenchmarkSearchWatchlist: the same over 100k rows, restricted to one
// list of 10% of the subjects, and to two lists (bitmaps OR-ed).
func BenchmarkSearchWatchlist(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 3))
	ix := NewIndex(128)
	for i := range 100_000 {
		e := Entry{SubjectID: "s" + strconv.Itoa(i), Vector: randUnit(r, 128)}
		switch i % 10 {
		case 0:
			e.Watchlists = []string{"a"}
		case 1:
			e.Watchlists = []string{"b"}
		}
		if err := ix.Add(e); err != nil {
			b.Fatal(err)
		}
	}
	probe := randUnit(r, 128)
	for _, lists := range [][]string{{"a"}, {"a", "b"}} {
		b.Run(fmt.Sprint(lists), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ix.Search(probe, SearchOptions{K: 10, Watchlists: lists}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAdd: one 128-d vector of a new subject on a watchlist.
func BenchmarkAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	vecs := make([][]float32, 1024)
	for i := range vecs {
		vecs[i] = randUnit(r, 128)
	}
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = "s" + strconv.Itoa(i)
	}
	ix := NewIndex(128)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Past 64k adds the ids repeat: subjects gain vectors, as on re-enrolment.
		if err := ix.Add(Entry{SubjectID: ids[i%len(ids)], Vector: vecs[i%len(vecs)], Watchlists: []string{"w"}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDot: the scoring kernel on one 128-d pair.
func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	x, y := randUnit(r, 128), randUnit(r, 128)
	var s float32
	for b.Loop() {
		s += dot(x, y)
	}
	_ = s
}

// BenchmarkSearchBatch: SearchBatch of 256 random probes, top-10; the
// metric is per probe.
func BenchmarkSearchBatch(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ix := gallery(b, n)
			r := rand.New(rand.NewPCG(7, 9))
			probes := make([][]float32, 256)
			for i := range probes {
				probes[i] = randUnit(r, 128)
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := ix.SearchBatch(probes, SearchOptions{K: 10}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(probes)), "ns/probe")
			// CPU time too: on a shared machine it varies less than wall time.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(probes)), "cpu-ns/probe")
		})
	}
}

// BenchmarkConcurrentSearch: 64 callers searching at once, as the gates
// do, each with Index.Search ("direct": a scan each) or through a Coalescer
// of at most m probes a scan ("coalesced-m"). ns/op is per search.
func BenchmarkConcurrentSearch(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		ix := gallery(b, n)
		r := rand.New(rand.NewPCG(7, 10))
		probes := make([][]float32, 256)
		for i := range probes {
			probes[i] = randUnit(r, 128)
		}
		type way struct {
			name   string
			search func([]float32, SearchOptions) ([]Hit, error)
		}
		ways := []way{{"direct", ix.Search}}
		// Batches of at most m probes: DefaultCoalesce and its neighbours.
		for _, m := range []int{8, 16, 32, 64} {
			c := NewCoalescer(ix, m)
			ways = append(ways, way{fmt.Sprintf("coalesced-%d", m), func(p []float32, opt SearchOptions) ([]Hit, error) {
				return c.Search(context.Background(), p, opt)
			}})
		}
		for _, way := range ways {
			b.Run(fmt.Sprintf("n=%d/%s", n, way.name), func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism(64 / max(1, runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p := probes[next.Add(1)%int64(len(probes))]
						if _, err := way.search(p, SearchOptions{K: 10}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
			})
		}
	}
}

// BenchmarkKernels: each kernel set over 2,048 rows of 128-d codes.
func BenchmarkKernels(b *testing.B) {
	const chunks, nb = 32, 128
	codes := alignedCodes(nb*chunks*chunkBytes, nb*chunks*chunkBytes)
	p8, p16 := make([]int8, chunks*4*groupSize), make([]int16, chunks*4*groupSize)
	out := make([]int32, nb*blockRows*groupSize)
	masks := make([]uint16, nb*groupSize)
	scales := make([]float32, nb*blockRows)
	var prm probeParams
	for _, ks := range append([]kernelSet{goKernels}, asmKernels()...) {
		b.Run(ks.name+"/1", func(b *testing.B) {
			b.SetBytes(int64(len(codes)))
			for b.Loop() {
				ks.dotBlocks1(codes, chunks, p8, p16, scales, &prm, out, masks)
			}
		})
		b.Run(ks.name+"/8", func(b *testing.B) {
			b.SetBytes(int64(len(codes)))
			for b.Loop() {
				ks.dotBlocks8(codes, chunks, p8, p16, scales, &prm, out, masks)
			}
		})
	}
}
