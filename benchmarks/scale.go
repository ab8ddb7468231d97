package benchmarks

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
)

//go:embed faiss_bench.py
var faissScript []byte

// DefaultSearchDim is the synthetic vectors' dimension when none is
// given: the default face model's (mobilefacenet-192).
const DefaultSearchDim = 192

// galleryRows is a matcher.VectorSource over speedVectors' gallery: subject
// "g<row>" has the one vector at that row.
type galleryRows struct {
	v []float32
	d int
}

func (g galleryRows) Vectors(ids []string, fn func(i int, v []float32)) error {
	for i, id := range ids {
		row, err := strconv.Atoi(strings.TrimPrefix(id, "g"))
		if err != nil || row < 0 || (row+1)*g.d > len(g.v) {
			continue
		}
		fn(i, g.v[row*g.d:(row+1)*g.d])
	}
	return nil
}

// faissMaxN is the largest gallery FAISS is run on: above it the float32
// gallery is written to a file and held again by Python and by FAISS's
// index (three copies of n×dim×4 bytes: 23 GB at 10M × 192), beside this
// process's own float32 gallery and index.
const faissMaxN = 2_000_000

// SearchSpeedOptions configures SearchSpeed. Zero fields take the defaults
// noted.
type SearchSpeedOptions struct {
	Sizes  []int  // gallery sizes; default 100,000 and 1,000,000
	Dim    int    // vector dimension; default DefaultSearchDim
	Probes int    // probes searched one at a time and checked; default 256
	Batch  int    // probes per batch in the batched runs; default 256
	TopK   int    // hits per probe; default 10
	Seed   uint64 // gallery and probes are a function of it
	FAISS  bool   // also run FAISS (Debian's python3-faiss) on the same vectors
	Python string // interpreter with faiss and numpy; default /usr/bin/python3
}

// SearchSpeedResult is one gallery size's figures. Times are per probe.
type SearchSpeedResult struct {
	N                 int           `json:"n"`
	Dim               int           `json:"dim"`
	Threads           int           `json:"threads"`
	ProbeP50          time.Duration `json:"probe_p50"`
	ProbeP95          time.Duration `json:"probe_p95"`
	ProbeP99          time.Duration `json:"probe_p99"`
	ProbesPerSec      float64       `json:"probes_per_sec"`       // single probes, one after another
	BatchProbesPerSec float64       `json:"batch_probes_per_sec"` // probes in batches of Batch
	// BytesPerSec is the index bytes a single-probe search reads (ScanBytes)
	// divided by its median time; ReadBandwidth is the machine's streaming
	// read from memory on all cores with the widest loads (ReadBandwidth);
	// BandwidthFrac their ratio. When the scanned bytes fit in the
	// last-level cache (FitsInCache), the scan reads from the cache, not
	// from memory, and BandwidthFrac may exceed 1.
	BytesPerSec   float64   `json:"bytes_per_sec"`
	ReadBandwidth float64   `json:"read_bandwidth"`
	BandwidthFrac float64   `json:"bandwidth_frac"`
	ReadProbe     ReadProbe `json:"read_probe"`
	ScanBytes     int64     `json:"scan_bytes"`
	FitsInCache   bool      `json:"fits_in_cache"`
	// Top10Agree is the fraction of probes whose top-K subject ids, in
	// order, equal those of an exact brute-force search (float64 sums),
	// counting as equal two subjects whose exact scores are within
	// tieTolerance, which f32 arithmetic cannot order.
	Top10Agree float64 `json:"top10_agree"`
	// FAISS figures (zero without FAISS): median time of one probe searched
	// alone, and time per probe in one batch, for IndexFlatIP (f32) and
	// IndexScalarQuantizer QT_8bit.
	FAISSFlatProbe      time.Duration `json:"faiss_flat_probe"`
	FAISSFlatBatch      time.Duration `json:"faiss_flat_batch"`
	FAISSSQ8Probe       time.Duration `json:"faiss_sq8_probe"`
	FAISSSQ8Batch       time.Duration `json:"faiss_sq8_batch"`
	FAISSTop10Agree     float64       `json:"faiss_top10_agree"` // exact ids, no tie tolerance
	FAISSVersion        string        `json:"faiss_version,omitempty"`
	FAISSSkipped        string        `json:"faiss_skipped,omitempty"` // why FAISS did not run at this size
	ProbeSpeedupVsFAISS float64       `json:"probe_speedup_vs_faiss"`  // FAISS flat single / ours single
	BatchSpeedupVsFAISS float64       `json:"batch_speedup_vs_faiss"`  // FAISS flat batch / ours batch, per probe
	// VectorSource is true: the index re-scores from the generator's f32
	// rows through a matcher.VectorSource, as matchd's does from its store,
	// and holds no f32 copy of its own; so BytesPerTemplate is the RAM a
	// face costs matchd's index.
	VectorSource bool `json:"vector_source"`
	// LoadTime is the time to add the N vectors to an empty index.
	LoadTime time.Duration `json:"load_time"`
	// BytesPerTemplate is the Go heap the index holds, per vector (codes,
	// scales, row and subject records, the ids and their table): the heap
	// growth from building it, subject ids included, after a GC. The
	// generator's f32 rows (standing in for the store) are not counted.
	BytesPerTemplate float64 `json:"bytes_per_template"`
	// OwnRowsBytesPerTemplate is the arithmetic addition an index holding
	// its own L2-normalised f32 rows (matcher.NewIndex) would make: dim×4.
	OwnRowsBytesPerTemplate float64 `json:"own_rows_extra_bytes_per_template"`
}

func (o *SearchSpeedOptions) defaults() {
	if len(o.Sizes) == 0 {
		o.Sizes = []int{100_000, 1_000_000}
	}
	if o.Dim <= 0 {
		o.Dim = DefaultSearchDim
	}
	if o.Probes <= 0 {
		o.Probes = 256
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.TopK <= 0 {
		o.TopK = 10
	}
	if o.Python == "" {
		o.Python = "/usr/bin/python3"
	}
}

// SearchSpeed measures exact 1:N face search for each gallery size: a
// seeded gallery of N random unit vectors (one subject each) and probes,
// half of them noisy copies of gallery vectors (a mate present) and half
// random; single-probe latency, batched throughput, bytes scanned per
// second against the machine's read bandwidth, top-K agreement with a
// brute-force search and, with FAISS, the same figures for FAISS on the
// same vectors and threads. For each size it writes to progress a summary
// and a last line that scripts read:
//
//	scale: n=1000000 probe_ms=… faiss_flat_probe_ms=… batch_speedup_vs_faiss=… bandwidth_frac=… top10_agree=…
func SearchSpeed(ctx context.Context, opt SearchSpeedOptions, progress io.Writer) ([]SearchSpeedResult, error) {
	opt.defaults()
	if progress == nil {
		progress = io.Discard
	}
	threads := runtime.GOMAXPROCS(0)
	bw := ReadBandwidth()
	fmt.Fprintf(progress, "scale: %s\n", bw)

	var out []SearchSpeedResult
	for _, n := range opt.Sizes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		res, err := searchSpeed(ctx, opt, n, threads, bw, progress)
		if err != nil {
			return out, fmt.Errorf("n=%d: %w", n, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func searchSpeed(ctx context.Context, opt SearchSpeedOptions, n, threads int, bw ReadProbe, progress io.Writer) (SearchSpeedResult, error) {
	res := SearchSpeedResult{N: n, Dim: opt.Dim, Threads: threads, ReadBandwidth: bw.BytesPerSec, ReadProbe: bw}
	d, k := opt.Dim, opt.TopK
	gallery, probes := speedVectors(opt.Seed, n, opt.Probes, d)

	// As matchd does from Badger: the index keeps the int8 codes and
	// re-scores from the generator's rows instead of an f32 copy of its
	// own. The heap is measured around the build alone; the ids are made
	// inside it (the index copies them into its arena, and the strings
	// are garbage by the second GC, so only the index's copy counts).
	// Two GCs each side: the first leaves sync.Pools' contents in their
	// victim caches, which the second frees; otherwise garbage from
	// before the build would be freed during it and offset its growth.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	ix := matcher.NewIndexWithSource(d, galleryRows{gallery, d})
	res.VectorSource = true
	ix.Reserve(n, n)
	for i := range n {
		if err := ix.Add(matcher.Entry{SubjectID: fmt.Sprintf("g%08d", i), Vector: gallery[i*d : (i+1)*d]}); err != nil {
			return res, err
		}
	}
	res.LoadTime = time.Since(start)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ix)
	res.BytesPerTemplate = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	res.OwnRowsBytesPerTemplate = float64(4 * d)
	fmt.Fprintf(progress, "scale: n=%d dim=%d built in %v, %.0f heap bytes per face in the index (f32 rows re-scored from a VectorSource, as matchd's store gives them, not held by the index; holding them would add %d)\n",
		n, d, res.LoadTime.Round(time.Millisecond), res.BytesPerTemplate, 4*d)

	// Single probes, one after another, after one warm-up search.
	opts := matcher.SearchOptions{K: k}
	if _, err := ix.Search(probes[0:d], opts); err != nil {
		return res, err
	}
	lat := make([]time.Duration, opt.Probes)
	got := make([][]matcher.Hit, opt.Probes)
	var total time.Duration
	for i := range opt.Probes {
		t0 := time.Now()
		hits, err := ix.Search(probes[i*d:(i+1)*d], opts)
		lat[i] = time.Since(t0)
		if err != nil {
			return res, err
		}
		total += lat[i]
		got[i] = hits
	}
	slices.Sort(lat)
	res.ProbeP50 = lat[len(lat)/2]
	res.ProbeP95 = lat[len(lat)*95/100]
	res.ProbeP99 = lat[len(lat)*99/100]
	res.ProbesPerSec = float64(opt.Probes) / total.Seconds()
	res.ScanBytes = int64(ix.ScanBytes())
	res.BytesPerSec = float64(res.ScanBytes) / res.ProbeP50.Seconds()
	res.BandwidthFrac = res.BytesPerSec / bw.BytesPerSec
	res.FitsInCache = bw.LLCBytes > 0 && res.ScanBytes <= bw.LLCBytes
	where := "does not fit in"
	if res.FitsInCache {
		where = "fits in"
	}
	fmt.Fprintf(progress, "scale: n=%d the scan's %.0f MB %s the %s last-level cache\n", n, float64(res.ScanBytes)/1e6, where, bw.llc())

	// Batches.
	batch := make([][]float32, 0, opt.Batch)
	var batched int
	t0 := time.Now()
	for lo := 0; lo < opt.Probes; lo += opt.Batch {
		batch = batch[:0]
		for i := lo; i < min(lo+opt.Batch, opt.Probes); i++ {
			batch = append(batch, probes[i*d:(i+1)*d])
		}
		if _, err := ix.SearchBatch(batch, opts); err != nil {
			return res, err
		}
		batched += len(batch)
	}
	batchPer := time.Since(t0) / time.Duration(batched)
	res.BatchProbesPerSec = 1 / batchPer.Seconds()
	fmt.Fprintf(progress, "scale: n=%d bordermatch probe p50 %v p95 %v p99 %v, batch %v/probe, %.1f GB/s scanned (%.0f%% of read bandwidth)\n",
		n, res.ProbeP50, res.ProbeP95, res.ProbeP99, batchPer, res.BytesPerSec/1e9, 100*res.BandwidthFrac)

	// Exact reference.
	want, wantScores := bruteTopK(gallery, probes, d, k)
	agree := 0
	for i := range got {
		if sameIDs(got[i], want[i], wantScores[i], gallery, probes[i*d:(i+1)*d], d) {
			agree++
		}
	}
	res.Top10Agree = float64(agree) / float64(len(got))

	if opt.FAISS && n > faissMaxN {
		res.FAISSSkipped = fmt.Sprintf("n=%d is above %d: FAISS would need the float32 gallery (%.1f GB) in a file, in Python and in its index, beside this process's own",
			n, faissMaxN, float64(n)*float64(d)*4/1e9)
		fmt.Fprintf(progress, "scale: n=%d FAISS skipped: %s\n", n, res.FAISSSkipped)
	} else if opt.FAISS {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		fr, err := runFAISS(ctx, opt, gallery, probes, threads)
		if err != nil {
			return res, err
		}
		res.FAISSVersion = fr.Version
		res.FAISSFlatProbe = secs(fr.FlatProbe)
		res.FAISSFlatBatch = secs(fr.FlatBatch)
		res.FAISSSQ8Probe = secs(fr.SQ8Probe)
		res.FAISSSQ8Batch = secs(fr.SQ8Batch)
		fa := 0
		for i := range min(len(fr.FlatIDs), len(want)) {
			if slices.Equal(fr.FlatIDs[i], want[i]) {
				fa++
			}
		}
		res.FAISSTop10Agree = float64(fa) / float64(len(want))
		res.ProbeSpeedupVsFAISS = res.FAISSFlatProbe.Seconds() / res.ProbeP50.Seconds()
		res.BatchSpeedupVsFAISS = res.FAISSFlatBatch.Seconds() / batchPer.Seconds()
		fmt.Fprintf(progress, "scale: n=%d faiss %s flat probe %v batch %v/probe; sq8 probe %v batch %v/probe; faiss top%d agree %.4f\n",
			n, fr.Version, res.FAISSFlatProbe, res.FAISSFlatBatch, res.FAISSSQ8Probe, res.FAISSSQ8Batch, k, res.FAISSTop10Agree)
	}
	fmt.Fprintf(progress, "scale: n=%d probe_ms=%.3f faiss_flat_probe_ms=%.3f batch_speedup_vs_faiss=%.2f bandwidth_frac=%.3f top10_agree=%.4f\n",
		n, ms(res.ProbeP50), ms(res.FAISSFlatProbe), res.BatchSpeedupVsFAISS, res.BandwidthFrac, res.Top10Agree)
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func secs(s float64) time.Duration { return time.Duration(s * 1e9) }

// speedVectors makes n gallery and p probe unit vectors of dimension d,
// row-major, a function of seed alone. Even probes are a gallery vector
// plus noise of about the same norm as the vector times 0.6 (a mate at
// cosine ~0.85), odd ones are random.
func speedVectors(seed uint64, n, p, d int) (gallery, probes []float32) {
	gallery = make([]float32, n*d)
	// Rows in independent seeded streams, so the gallery is generated on
	// all cores and still the same whatever their number.
	const block = 1 << 14
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for lo := 0; lo < n; lo += block {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := rand.New(rand.NewPCG(seed, uint64(lo)))
			for i := lo; i < min(lo+block, n); i++ {
				randUnit(r, gallery[i*d:(i+1)*d])
			}
		})
	}
	wg.Wait()
	probes = make([]float32, p*d)
	r := rand.New(rand.NewPCG(seed, math.MaxUint64))
	noise := make([]float32, d)
	for i := range p {
		q := probes[i*d : (i+1)*d]
		if i%2 == 1 {
			randUnit(r, q)
			continue
		}
		mate := r.IntN(n)
		randUnit(r, noise)
		for j := range q {
			q[j] = gallery[mate*d+j] + 0.6*noise[j]
		}
		unit(q)
	}
	return gallery, probes
}

func randUnit(r *rand.Rand, v []float32) {
	for j := range v {
		v[j] = float32(r.NormFloat64())
	}
	unit(v)
}

func unit(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	inv := 1 / math.Sqrt(ss)
	for j, x := range v {
		v[j] = float32(float64(x) * inv)
	}
}

// bruteTopK is the reference: every probe against every gallery row, sums
// in float64, the best k rows by score then row number (ids sort as row
// numbers). Gallery blocks are scored against all probes while in cache.
func bruteTopK(gallery, probes []float32, d, k int) ([][]int, [][]float64) {
	n, p := len(gallery)/d, len(probes)/d
	workers := runtime.GOMAXPROCS(0)
	type hit struct {
		s   float64
		row int
	}
	better := func(a, b hit) bool { return a.s > b.s || a.s == b.s && a.row < b.row }
	per := make([][][]hit, workers) // worker -> probe -> best k, best first
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := range workers {
		per[w] = make([][]hit, p)
		wg.Go(func() {
			tops := per[w]
			const block = 256
			for lo := w * chunk; lo < min((w+1)*chunk, n); lo += block {
				hi := min(lo+block, (w+1)*chunk, n)
				for pi := range p {
					q := probes[pi*d : (pi+1)*d]
					for r := lo; r < hi; r++ {
						g := gallery[r*d : (r+1)*d]
						var s0, s1, s2, s3 float64
						for j := 0; j+4 <= d; j += 4 {
							s0 += float64(q[j]) * float64(g[j])
							s1 += float64(q[j+1]) * float64(g[j+1])
							s2 += float64(q[j+2]) * float64(g[j+2])
							s3 += float64(q[j+3]) * float64(g[j+3])
						}
						for j := d &^ 3; j < d; j++ {
							s0 += float64(q[j]) * float64(g[j])
						}
						h := hit{(s0 + s1) + (s2 + s3), r}
						t := tops[pi]
						if len(t) == k && !better(h, t[k-1]) {
							continue
						}
						at, _ := slices.BinarySearchFunc(t, h, func(a, b hit) int {
							if better(a, b) {
								return -1
							}
							return 1
						})
						if len(t) < k {
							t = append(t, hit{})
						}
						copy(t[at+1:], t[at:])
						t[at] = h
						tops[pi] = t
					}
				}
			}
		})
	}
	wg.Wait()
	out := make([][]int, p)
	scores := make([][]float64, p)
	for pi := range p {
		var all []hit
		for w := range workers {
			all = append(all, per[w][pi]...)
		}
		slices.SortFunc(all, func(a, b hit) int {
			if better(a, b) {
				return -1
			}
			return 1
		})
		for _, h := range all[:min(k, len(all))] {
			out[pi] = append(out[pi], h.row)
			scores[pi] = append(scores[pi], h.s)
		}
	}
	return out, scores
}

// tieTolerance: scores closer than this are a tie to f32 arithmetic (a
// 128- or 192-term f32 dot product of unit vectors is within about 1e-6 of the
// exact value).
const tieTolerance = 2e-6

// sameIDs reports whether hits name the reference's rows in order, a
// subject in another's place being accepted when their exact scores tie.
func sameIDs(hits []matcher.Hit, rows []int, scores []float64, gallery, probe []float32, d int) bool {
	if len(hits) != len(rows) {
		return false
	}
	for i, h := range hits {
		row, err := strconv.Atoi(strings.TrimPrefix(h.SubjectID, "g"))
		if err != nil || row < 0 || row*d >= len(gallery) {
			return false
		}
		if row == rows[i] {
			continue
		}
		var s float64
		for j, x := range probe {
			s += float64(x) * float64(gallery[row*d+j])
		}
		if math.Abs(s-scores[i]) > tieTolerance {
			return false
		}
	}
	return true
}

type faissResult struct {
	Version   string  `json:"version"`
	FlatProbe float64 `json:"flat_probe_s"`
	FlatBatch float64 `json:"flat_batch_s"`
	SQ8Probe  float64 `json:"sq8_probe_s"`
	SQ8Batch  float64 `json:"sq8_batch_s"`
	FlatIDs   [][]int `json:"flat_ids"`
}

// runFAISS writes the vectors to a temporary directory and runs the
// embedded faiss_bench.py on them.
func runFAISS(ctx context.Context, opt SearchSpeedOptions, gallery, probes []float32, threads int) (faissResult, error) {
	var fr faissResult
	dir, err := os.MkdirTemp("", "bmbench-faiss-")
	if err != nil {
		return fr, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "faiss_bench.py")
	if err := os.WriteFile(script, faissScript, 0o644); err != nil {
		return fr, err
	}
	gp, pp := filepath.Join(dir, "gallery.f32"), filepath.Join(dir, "probes.f32")
	if err := writeF32(gp, gallery); err != nil {
		return fr, err
	}
	if err := writeF32(pp, probes); err != nil {
		return fr, err
	}
	single := min(opt.Probes, 16)
	cmd := exec.CommandContext(ctx, opt.Python, script, "--gallery", gp, "--probes", pp,
		"--dim", strconv.Itoa(opt.Dim), "--k", strconv.Itoa(opt.TopK), "--threads", strconv.Itoa(threads),
		"--single", strconv.Itoa(single), "--batch", strconv.Itoa(min(opt.Batch, opt.Probes)), "--sq8")
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		return fr, fmt.Errorf("faiss (%s; Debian: apt-get install python3-faiss python3-numpy): %w", opt.Python, err)
	}
	if err := json.Unmarshal(outb, &fr); err != nil {
		return fr, fmt.Errorf("faiss output: %w", err)
	}
	if fr.FlatProbe <= 0 || fr.FlatBatch <= 0 {
		return fr, errors.New("faiss output: missing timings")
	}
	return fr, nil
}

func writeF32(path string, v []float32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		w.Write(b[:]) // a write error sticks; Flush reports it
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
