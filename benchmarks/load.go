package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// LoadOptions configure Load.
type LoadOptions struct {
	// Dir is the Badger gallery directory: filled with N seeded subjects if
	// empty, reused as it is if it already holds N of them (a second run
	// measures the load alone). Empty: a temporary directory, removed after.
	Dir    string
	N      int // subjects, one 128-d face template each
	Probes int // single probes for the search latency
	// CPUProfile, when set, is a file to write a CPU profile of the
	// server's load into.
	CPUProfile string
	Log        io.Writer
}

// LoadResult is what Load measured.
type LoadResult struct {
	Subjects int
	// ImportTime is the time to write the gallery (zero when Dir held it).
	ImportTime time.Duration
	// LoadTime is the server's start-up load of the face index from Badger
	// (engine.New on the opened store: the code path matchd runs), and
	// LoadCPU the CPU time (user and system) the process spent on it: on a
	// shared machine the wall time also counts the waits for a core.
	LoadTime, LoadCPU time.Duration
	// IndexBytesPerTemplate is the live heap of a store-backed
	// matcher.Index alone, built from the same vectors, per template.
	IndexBytesPerTemplate float64
	// ProcessBytesPerTemplate is the live heap of the whole process after
	// the server's load (index, server bookkeeping and Badger's caches),
	// less what it was before the store was opened, per template.
	ProcessBytesPerTemplate float64
	// Search latency of single Identify calls (template probes, top 10),
	// with the exact re-scoring read from Badger.
	SearchP50, SearchP99 time.Duration
	// Rank1 is the share of probes whose own subject came first: a check
	// that the searches found something.
	Rank1 float64
}

// loadDim is the face template dimension of templates.FaceAlgorithm.
const loadDim = 128

// loadVector is subject i's seeded face vector.

// Load measures the memory and start-up goals of the face index (issue 6):
// it writes a gallery of N subjects into a real Badger directory, starts
// the server's load on it as matchd does, and reports the load time, the
// heap per template and the search latency with store-backed re-scoring.
func Load(ctx context.Context, opt LoadOptions) (LoadResult, error) {
	res := LoadResult{Subjects: opt.N}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	if opt.N <= 0 {
		return res, errors.New("load: N must be positive")
	}
	if opt.Probes <= 0 {
		opt.Probes = 200
	}
	dir := opt.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "bmbench-load-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		dir = d
	}

	// The index alone, from the same vectors, for its own heap: first,
	// while the heap holds nothing else of this run.
	{
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ix := matcher.NewIndexWithSource(loadDim, noVectors{})
		ix.Reserve(opt.N, opt.N)
		const batch = 4096
		vecs := make([]float32, batch*loadDim)
		es := make([]matcher.Entry, 0, batch)
		lists := []string{"wanted"}
		for lo := 0; lo < opt.N; lo += batch {
			es = es[:0]
			for i := lo; i < min(lo+batch, opt.N); i++ {
				v := vecs[(i-lo)*loadDim : (i-lo+1)*loadDim]
				SyntheticVector(i, v)
				e := matcher.Entry{SubjectID: SyntheticID(i), Vector: v}
				if i%10 == 0 {
					e.Watchlists = lists
				}
				es = append(es, e)
			}
			if err := ix.AddBatch(es); err != nil {
				return res, err
			}
		}
		vecs, es = nil, nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		res.IndexBytesPerTemplate = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(ix.Len())
		runtime.KeepAlive(ix)
		fmt.Fprintf(log, "load: index alone: %d templates, %.1f heap bytes per template\n", ix.Len(), res.IndexBytesPerTemplate)
	}

	// The gallery, laid out and encrypted as matchd keeps it in its data
	// directory (a key is made in dir on first use).
	gopt, _, err := engine.GalleryOptions(dir, "", zerolog.Nop())
	if err != nil {
		return res, err
	}
	st, err := store.Open(gopt)
	if err != nil {
		return res, err
	}
	have, err := st.Count()
	if err != nil {
		st.Close()
		return res, err
	}
	switch {
	case have == opt.N:
		fmt.Fprintf(log, "load: %s already holds %d subjects\n", dir, have)
	case have != 0:
		st.Close()
		return res, fmt.Errorf("load: %s holds %d subjects, not %d: give an empty or a matching --dir", dir, have, opt.N)
	default:
		start := time.Now()
		if err := FillSynthetic(ctx, st, opt.N, log); err != nil {
			st.Close()
			return res, err
		}
		res.ImportTime = time.Since(start)
		fmt.Fprintf(log, "load: imported %d subjects in %v\n", opt.N, res.ImportTime.Round(time.Millisecond))
	}
	if err := st.Close(); err != nil {
		return res, err
	}

	// The server's start-up load, as matchd does it.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if opt.CPUProfile != "" {
		f, err := os.Create(opt.CPUProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
	}
	start, cpu0 := time.Now(), cpuTime()
	st, err = store.Open(gopt)
	if err != nil {
		return res, err
	}
	defer st.Close()
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.New(log).With().Timestamp().Logger()})
	if err != nil {
		return res, err
	}
	res.LoadTime, res.LoadCPU = time.Since(start), cpuTime()-cpu0
	if opt.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := eng.IndexSize()
	res.ProcessBytesPerTemplate = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	fmt.Fprintf(log, "load: server loaded %d templates in %v (%v of CPU, GOMAXPROCS %d, load average %s), process heap %.1f bytes per template (Badger's caches included)\n",
		n, res.LoadTime.Round(time.Millisecond), res.LoadCPU.Round(time.Millisecond), runtime.GOMAXPROCS(0), loadAvg(), res.ProcessBytesPerTemplate)

	// What the store-backed re-scoring costs: reading the templates of as
	// many subjects as a search typically re-scores, in one transaction.
	for _, k := range []int{10, 100} {
		ids := make([]string, k)
		var reads []time.Duration
		for range 50 {
			for i := range ids {
				ids[i] = SyntheticID(rand.IntN(opt.N))
			}
			t0 := time.Now()
			got := 0
			if err := st.Templates(ids, func(int, templates.Template) { got++ }); err != nil {
				return res, err
			}
			reads = append(reads, time.Since(t0))
			if got != k {
				return res, fmt.Errorf("load: read %d templates of %d subjects", got, k)
			}
		}
		slices.Sort(reads)
		fmt.Fprintf(log, "load: reading the templates of %d random subjects from Badger: p50 %v p99 %v\n",
			k, reads[len(reads)/2].Round(time.Microsecond), reads[len(reads)*99/100].Round(time.Microsecond))
	}

	// Single Identify calls: a stored vector with noise, top 10.
	r := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, opt.Probes)
	hits1 := 0
	v := make([]float32, loadDim)
	for p := range opt.Probes + 1 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		want := r.IntN(opt.N)
		SyntheticVector(want, v)
		for j := range v {
			v[j] += 0.3 * float32(r.NormFloat64())
		}
		b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
		if err != nil {
			return res, err
		}
		req := engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: b}}, Query: engine.Query{TopK: 10, Threshold: ptr32(-1)}}
		t0 := time.Now()
		resp, err := eng.Identify(ctx, req)
		d := time.Since(t0)
		if err != nil {
			return res, err
		}
		if p == 0 {
			continue // warm-up
		}
		lat = append(lat, d)
		if len(resp.Candidates) > 0 && resp.Candidates[0].SubjectID == SyntheticID(want) {
			hits1++
		}
	}
	slices.Sort(lat)
	res.SearchP50, res.SearchP99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	res.Rank1 = float64(hits1) / float64(len(lat))
	fmt.Fprintf(log, "load: Identify top-10, %d probes: p50 %v p99 %v, rank-1 %.3f\n",
		len(lat), res.SearchP50.Round(time.Microsecond), res.SearchP99.Round(time.Microsecond), res.Rank1)
	return res, nil
}

func ptr32(f float32) *float32 { return &f }

// noVectors is the source of the index measured alone: it is never read
// (nothing is searched), only its memory counted.
type noVectors struct{}

func (noVectors) Vectors([]string, func(int, []float32)) error {
	return errors.New("load: the index measured alone is not searched")
}

func (c *cli) loadCmd() *cobra.Command {
	var opt LoadOptions
	cmd := &cobra.Command{
		Use:   "load [--n 1000000] [--dir DIR]",
		Short: "start-up load time and memory of the face index, from a real Badger gallery",
		Long: `load writes --n seeded subjects with one 128-d face template each into a
Badger gallery (--dir; kept, and reused by the next run if it holds --n
subjects), then measures:
  - the server's start-up load of the face index from it (what matchd does);
  - heap bytes per template: of the index alone, and of the whole process
    after the load (Badger's caches included);
  - single Identify latency (template probes, top 10), the exact re-scoring
    reading the candidates' templates from Badger.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt.Log = c.stdout
			_, err := Load(cmd.Context(), opt)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.N, "n", 1_000_000, "subjects in the gallery")
	f.StringVar(&opt.Dir, "dir", "", "data `dir`ectory as matchd keeps it: an encrypted gallery in DIR/gallery, its key in DIR/master.key (default: a temporary one, removed after)")
	f.IntVar(&opt.Probes, "probes", 200, "single Identify probes for the latency")
	f.StringVar(&opt.CPUProfile, "cpuprofile", "", "write a CPU profile of the server's load to this file")
	return cmd
}

// cpuTime is the CPU time, user and system, the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the one-minute load average (Linux), to tell a busy machine's
// figures from an idle one's; "?" where unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
