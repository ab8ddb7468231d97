package matcher

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// fingerGallery is a gallery of n templates made from the committed real
// records by random rigid transforms (±30°, ±40 px), 2 px jitter and 10%
// of minutiae lost: real minutia layouts, and every template different.
// Built once per process, on all cores.
var fingerGalleries = map[int][]*FingerTemplate{}

func fingerGallery(tb testing.TB, n int) ([]*FingerTemplate, []minutiae.View) {
	var views []minutiae.View
	for _, set := range []string{"fvc2002_db1_b", "fvc2002_db3_b"} {
		views = append(views, subsetViews(tb, set)...)
	}
	if g := fingerGalleries[n]; g != nil {
		return g, views
	}
	out := make([]*FingerTemplate, n)
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for i := w; i < n; i += workers {
				v := views[i%len(views)]
				d := distort(r, v, (2*r.Float64()-1)*math.Pi/6, r.IntN(81)-40, r.IntN(81)-40, 2, 0.1, 0.1)
				t, err := PrepareFinger(d)
				if err != nil {
					panic(err)
				}
				out[i] = t
			}
		})
	}
	wg.Wait()
	fingerGalleries[n] = out
	return out, views
}

// BenchmarkFingerScore: one 1:1 comparison of real templates (MCC LSS-R).
func BenchmarkFingerScore(b *testing.B) {
	views := subsetViews(b, "fvc2002_db1_b")
	ts := make([]*FingerTemplate, len(views))
	for i, v := range views {
		ts[i] = mustPrepare(b, v)
	}
	var m FingerMatcher
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		m.Score(ts[i%len(ts)], ts[(i*7+3)%len(ts)])
		i++
	}
	reportComparisons(b, b.N, cpu)
}

// BenchmarkFingerPrepare: building a template's cylinders from a view.
func BenchmarkFingerPrepare(b *testing.B) {
	views := subsetViews(b, "fvc2002_db1_b")
	i := 0
	for b.Loop() {
		mustPrepare(b, views[i%len(views)])
		i++
	}
}

// BenchmarkFingerSearch: 1:N top-10 of one probe finger over 10,000
// templates on all cores.
func BenchmarkFingerSearch(b *testing.B) { benchFingerSearch(b, 1) }

// BenchmarkFingerSearch100k: the same over 100,000 templates, the 10,000
// of the gallery enrolled ten times under different subjects (every
// comparison is computed; only the templates repeat, to keep the set-up
// to seconds).
func BenchmarkFingerSearch100k(b *testing.B) { benchFingerSearch(b, 10) }

func benchFingerSearch(b *testing.B, repeat int) {
	gallery, views := fingerGallery(b, 10_000)
	x := NewFingerIndex()
	for r := range repeat {
		for i, t := range gallery {
			if err := x.Add("s"+strconv.Itoa(i)+"-"+strconv.Itoa(r), minutiae.RightIndex, t); err != nil {
				b.Fatal(err)
			}
		}
	}
	probes := make([]*FingerTemplate, len(views))
	for i, v := range views {
		probes[i] = mustPrepare(b, v)
	}
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		if _, err := x.Search(probes[i%len(probes)], SearchOptions{K: 10}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportComparisons(b, x.Len()*b.N, cpu)
}

// reportComparisons reports comparisons per second of wall-clock time, and
// per second of CPU time the process used (user+system, all threads):
// the machine is shared, and the CPU rate says what a core does when the
// benchmark has it to itself.
func reportComparisons(b *testing.B, n int, cpuStart time.Duration) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "comparisons/s")
	if used := cpuTime() - cpuStart; used > 0 {
		b.ReportMetric(float64(n)/used.Seconds(), "comparisons/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFingerConcurrentSearch: 1:N top-10 of one probe finger over
// 10,000 templates by 16 concurrent callers, each search alone ("direct")
// or through a FingerCoalescer batching up to m searches.
func BenchmarkFingerConcurrentSearch(b *testing.B) {
	gallery, views := fingerGallery(b, 10_000)
	x := NewFingerIndex()
	for i, t := range gallery {
		if err := x.Add("s"+strconv.Itoa(i), minutiae.RightIndex, t); err != nil {
			b.Fatal(err)
		}
	}
	probes := make([]*FingerTemplate, len(views))
	for i, v := range views {
		probes[i] = mustPrepare(b, v)
	}
	type way struct {
		name   string
		search func(*FingerTemplate) ([]Hit, error)
	}
	ways := []way{{"direct", func(p *FingerTemplate) ([]Hit, error) { return x.Search(p, SearchOptions{K: 10}) }}}
	for _, m := range []int{4, 8, 16} {
		c := NewFingerCoalescer(x, m)
		ways = append(ways, way{"coalesced-" + strconv.Itoa(m), func(p *FingerTemplate) ([]Hit, error) {
			return c.Search(context.Background(), p, SearchOptions{K: 10})
		}})
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := w.search(probes[next.Add(1)%int64(len(probes))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
			reportComparisons(b, x.Len()*b.N, cpu)
		})
	}
}
