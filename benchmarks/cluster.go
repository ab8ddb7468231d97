package benchmarks

// bmbench cluster: the sharded, replicated matchd of issue 15 (package
// cluster) measured on loopback, with in-process embedded NATS JetStream
// servers and real engines on Badger:
//
//   - search: a synthetic face gallery split over P partitions by
//     cluster.ShardOf(id, cluster.DefaultShards) % P, each partition an
//     engine answering through cluster.Serve on one embedded NATS server,
//     beside one engine holding the whole gallery: the coordinator's
//     overhead over the slowest partition's own search, and throughput of
//     concurrent callers through cluster.Coordinator against the single
//     engine;
//   - durable enrolments: three clustered JetStream servers (SyncAlways, an
//     R3 stream), concurrent clients appending enrolments through
//     cluster.EnrollThroughLog, and one replica (cluster.NewReplica + Run)
//     applying them into an engine on Badger.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// ClusterOverheadBar is the bar on the coordinator's overhead over
// the slowest partition's own search, at the median.
const ClusterOverheadBar = time.Millisecond

// ClusterOptions configures Cluster. Zero fields take the defaults noted.
type ClusterOptions struct {
	Faces       int           // synthetic gallery size; default 1,000,000
	Partitions  int           // search partitions; default 2
	Probes      int           // sequential probes for the overhead; default 500
	Concurrency int           // concurrent callers and enrolment clients; default 64
	Duration    time.Duration // each throughput run and the enrolment run; default 10 s
	TopK        int           // default 10
	// Dir holds the Badger stores and JetStream's files (a temporary
	// directory under it, removed at the end); default os.TempDir().
	Dir string
}

func (o *ClusterOptions) defaults() {
	if o.Faces <= 0 {
		o.Faces = 1_000_000
	}
	if o.Partitions <= 0 {
		o.Partitions = 2
	}
	if o.Probes <= 0 {
		o.Probes = 500
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.TopK <= 0 {
		o.TopK = 10
	}
}

// ClusterReport is what bmbench cluster measured; its report.json. Times
// are in milliseconds.
type ClusterReport struct {
	Tool    string    `json:"tool"`
	Version string    `json:"version"`
	Command string    `json:"command"`
	Date    time.Time `json:"date"`
	CPUs    int       `json:"cpus"`

	Faces          int    `json:"faces"`
	Dim            int    `json:"dim"`
	Algorithm      string `json:"algorithm"`
	Partitions     int    `json:"partitions"`
	Shards         int    `json:"shards"`
	PartitionFaces []int  `json:"partition_faces"`
	// Engines says what answers the searches: real engines on Badger.
	Engines      string  `json:"engines"`
	BuildSeconds float64 `json:"build_seconds"`
	// HeapMB is the Go heap in use once every engine is loaded.
	HeapMB float64 `json:"heap_mb"`

	Overhead   ClusterOverhead   `json:"overhead"`
	Throughput ClusterThroughput `json:"throughput"`
	Enrol      ClusterEnrol      `json:"enrol"`
}

// ClusterOverhead is the coordinator's cost per identification: the merged
// Identify's latency through NATS minus the slowest partition engine's own
// Identify of the same probe, in process, measured just before.
type ClusterOverhead struct {
	Probes          int     `json:"probes"`
	TopK            int     `json:"top_k"`
	MergedP50       float64 `json:"merged_p50_ms"`
	MergedP95       float64 `json:"merged_p95_ms"`
	SlowestP50      float64 `json:"slowest_partition_p50_ms"`
	SlowestP95      float64 `json:"slowest_partition_p95_ms"`
	SingleEngineP50 float64 `json:"single_engine_p50_ms"`
	SingleEngineP95 float64 `json:"single_engine_p95_ms"`
	OverheadP50     float64 `json:"overhead_p50_ms"`
	OverheadP95     float64 `json:"overhead_p95_ms"`
	OverheadMean    float64 `json:"overhead_mean_ms"`
	// On one machine the partitions of a merged search scan at the same
	// time, sharing the CPUs that each partition's own search had alone.
	// Concurrent* are the wall time of every partition engine's Identify
	// started together in process (no NATS), and the merged latency minus
	// it: the coordinator's cost without the partitions' CPU sharing.
	ConcurrentP50         float64 `json:"partitions_concurrent_p50_ms"`
	ConcurrentP95         float64 `json:"partitions_concurrent_p95_ms"`
	OverheadConcurrentP50 float64 `json:"overhead_vs_concurrent_p50_ms"`
	OverheadConcurrentP95 float64 `json:"overhead_vs_concurrent_p95_ms"`
	// OverheadInCall is merged − the slowest search a partition reported
	// for that same call (its engine's Identify timed in its responder):
	// the coordinator's cost under the contention the call really had.
	// The bar applies to it.
	OverheadInCallP50 float64 `json:"overhead_in_call_p50_ms"`
	OverheadInCallP95 float64 `json:"overhead_in_call_p95_ms"`
	BarP50            float64 `json:"bar_p50_ms"`
	BarMet            bool    `json:"bar_met"`
	Rank1Agree        float64 `json:"rank1_agree"` // merged rank 1 = the single engine's
	MatesFoundRank1   float64 `json:"mates_found_rank1"`
	CoverageComplete  bool    `json:"coverage_complete"`
}

// ClusterRun is one throughput run.
type ClusterRun struct {
	Identifications int     `json:"identifications"`
	Errors          int     `json:"errors"`
	PerSec          float64 `json:"per_sec"`
	P50             float64 `json:"p50_ms"`
	P99             float64 `json:"p99_ms"`
}

// ClusterThroughput compares concurrent callers through the coordinator
// with the same callers on the single engine.
type ClusterThroughput struct {
	Concurrency int        `json:"concurrency"`
	Seconds     float64    `json:"seconds"`
	Cluster     ClusterRun `json:"cluster"`
	Single      ClusterRun `json:"single_engine"`
	// Ratio is the cluster's identifications/s over the single engine's.
	Ratio float64 `json:"ratio"`
}

// ClusterEnrol is the durable enrolment run and one replica's apply.
type ClusterEnrol struct {
	Servers        int     `json:"servers"`
	StreamReplicas int     `json:"stream_replicas"`
	Clients        int     `json:"clients"`
	Seconds        float64 `json:"seconds"`
	Acknowledged   int     `json:"acknowledged"`
	Errors         int     `json:"errors"`
	PerSec         float64 `json:"per_sec"`
	AckP50         float64 `json:"ack_p50_ms"`
	AckP99         float64 `json:"ack_p99_ms"`
	StreamLastSeq  uint64  `json:"stream_last_seq"`
	TemplateBytes  int     `json:"template_bytes"`
	Applied        uint64  `json:"applied"`
	Refused        uint64  `json:"refused"`
	Malformed      uint64  `json:"malformed"`
	ApplySeconds   float64 `json:"apply_seconds"`
	AppliedPerSec  float64 `json:"applied_per_sec"`
	ReplicaIndexed int     `json:"replica_indexed"`
}

// templateFaces is the engines' default face algorithm without its
// network: templates of it are searched and enrolled, photos refused (the
// benchmark gives templates only). Unlike engine.NoFaces, whose default is
// dlib's 128-d algorithm, it makes the default model's algorithm the
// engine's default, with its calibration and threshold.
type templateFaces struct {
	alg templates.Algorithm
	dim int
}

func (f templateFaces) Extract([]byte, templates.ExtractOptions) (templates.Face, error) {
	return templates.Face{}, errors.New("bmbench cluster: templates only")
}
func (f templateFaces) Algorithm() templates.Algorithm { return f.alg }
func (f templateFaces) Dim() int                       { return f.dim }

// clusterAlgorithm is the default face model's algorithm (version 1, as
// its calibration table is).
var clusterAlgorithm = templates.Algorithm{ID: face.DefaultModel, Version: 1}

func clusterTemplate(v []float32) ([]byte, error) {
	return templates.Template{Modality: templates.ModalityFace, Algorithm: clusterAlgorithm, Vector: v}.MarshalBinary()
}

// Cluster runs the measurements; progress gets a line per stage.
func Cluster(ctx context.Context, opt ClusterOptions, progress io.Writer) (ClusterReport, error) {
	opt.defaults()
	if progress == nil {
		progress = io.Discard
	}
	rep := ClusterReport{Tool: "bmbench", Version: toolVersion(), Command: "cluster", Date: time.Now().UTC().Truncate(time.Second),
		CPUs: runtime.GOMAXPROCS(0), Faces: opt.Faces, Dim: DefaultSearchDim, Algorithm: clusterAlgorithm.String(),
		Partitions: opt.Partitions, Shards: cluster.DefaultShards}
	if opt.Partitions > cluster.DefaultShards {
		return rep, fmt.Errorf("partitions %d: at most %d", opt.Partitions, cluster.DefaultShards)
	}
	dir, err := os.MkdirTemp(opt.Dir, "bmbench-cluster-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)

	if err := clusterSearch(ctx, opt, dir, &rep, progress); err != nil {
		return rep, err
	}
	runtime.GC()
	if err := clusterEnrol(ctx, opt, dir, &rep, progress); err != nil {
		return rep, err
	}
	return rep, nil
}

// searchEngine is an engine and its store.
type searchEngine struct {
	st  *store.Store
	eng *engine.Engine
}

func (e *searchEngine) close() {
	if e.eng != nil {
		e.eng.Close()
	}
	if e.st != nil {
		e.st.Close()
	}
}

func openClusterEngine(dir string) (*searchEngine, error) {
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	return &searchEngine{st: st}, nil
}

func (e *searchEngine) load() error {
	eng, err := engine.New(engine.Config{Store: e.st, Faces: templateFaces{clusterAlgorithm, DefaultSearchDim}, NoSamples: true, Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	e.eng = eng
	return nil
}

// buildGallery writes subjects 0..n-1 (synthetic vectors, one face each)
// with store.Import, the bulk path bmbench load takes, into the whole
// gallery's store and into their partition's, a chunk at a time so that
// only one chunk's f32 vectors exist at once; then each engine loads its
// index from its store as matchd does at start.
func buildGallery(ctx context.Context, opt ClusterOptions, whole *searchEngine, parts []*searchEngine, progress io.Writer) ([]int, error) {
	const chunk = 50_000
	start := time.Now()
	counts := make([]int, len(parts))
	all := make([]store.Subject, 0, chunk)
	byPart := make([][]store.Subject, len(parts))
	for lo := 0; lo < opt.Faces; lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		all = all[:0]
		for p := range byPart {
			byPart[p] = byPart[p][:0]
		}
		for i := lo; i < min(lo+chunk, opt.Faces); i++ {
			v := make([]float32, DefaultSearchDim)
			SyntheticVector(i, v)
			s := store.Subject{ID: SyntheticID(i), Templates: []templates.Template{{
				Modality: templates.ModalityFace, Algorithm: clusterAlgorithm, Vector: v}}}
			all = append(all, s)
			p := cluster.ShardOf(s.ID, cluster.DefaultShards) % len(parts)
			byPart[p] = append(byPart[p], s)
			counts[p]++
		}
		var wg sync.WaitGroup
		errs := make([]error, len(parts)+1)
		wg.Go(func() { errs[0] = whole.st.Import(all) })
		for p := range parts {
			if len(byPart[p]) > 0 {
				wg.Go(func() { errs[p+1] = parts[p].st.Import(byPart[p]) })
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if done := lo + len(all); done%200_000 == 0 || done == opt.Faces {
			fmt.Fprintf(progress, "cluster: %d faces written to %d stores (%v)\n", done, len(parts)+1, time.Since(start).Round(time.Second))
		}
	}
	all, byPart = nil, nil
	for _, e := range append([]*searchEngine{whole}, parts...) {
		if err := e.load(); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(progress, "cluster: engines loaded (%v): partitions hold %v faces\n", time.Since(start).Round(time.Second), counts)
	return counts, nil
}

// clusterProbe is subject i's vector plus noise (a mate at cosine ~0.95),
// encoded.
func clusterProbe(i int) ([]byte, error) {
	v := make([]float32, DefaultSearchDim)
	SyntheticVector(i, v)
	r := rand.New(rand.NewPCG(uint64(i), 99))
	for j := range v {
		v[j] += 0.3 * float32(r.NormFloat64())
	}
	return clusterTemplate(v)
}

func quantileMS(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, int(q*float64(len(s))))
	return ms(s[i])
}

func clusterSearch(ctx context.Context, opt ClusterOptions, dir string, rep *ClusterReport, progress io.Writer) error {
	start := time.Now()
	whole, err := openClusterEngine(filepath.Join(dir, "whole"))
	if err != nil {
		return err
	}
	defer whole.close()
	parts := make([]*searchEngine, opt.Partitions)
	for p := range parts {
		if parts[p], err = openClusterEngine(filepath.Join(dir, fmt.Sprintf("part-%d", p))); err != nil {
			return err
		}
		defer parts[p].close()
	}
	counts, err := buildGallery(ctx, opt, whole, parts, progress)
	if err != nil {
		return err
	}
	rep.PartitionFaces = counts
	rep.Engines = fmt.Sprintf("engine.Engine on Badger, %d partition engines and one whole-gallery engine (stores filled with store.Import, indexes loaded by engine.New)", opt.Partitions)
	rep.BuildSeconds = time.Since(start).Seconds()
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	rep.HeapMB = float64(mem.HeapAlloc) / 1e6

	// One embedded NATS server; a connection per partition responder and
	// one for the coordinator.
	cfg := cluster.DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Partitions = "bmbench-search", 1, opt.Partitions
	cfg.Logger = zerolog.Nop()
	cfg.Embedded = &cluster.Embedded{Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "nats-search")}
	srv, err := cluster.StartEmbedded(cfg)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	const epoch = 1
	for p := range parts {
		nc, err := cluster.Connect(cfg, srv)
		if err != nil {
			return err
		}
		defer nc.Close()
		pc := cfg
		pc.Partition = p
		r, err := cluster.Serve(nc, pc, parts[p].eng, epoch)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := nc.Flush(); err != nil {
			return err
		}
	}
	cnc, err := cluster.Connect(cfg, srv)
	if err != nil {
		return err
	}
	defer cnc.Close()
	coord := &cluster.Coordinator{NC: cnc, Partitions: opt.Partitions, Epoch: epoch, Timeout: 30 * time.Second}

	probes := make([][]byte, opt.Probes)
	mates := make([]string, opt.Probes)
	for i := range probes {
		id := i * 7919 % opt.Faces
		if probes[i], err = clusterProbe(id); err != nil {
			return err
		}
		mates[i] = SyntheticID(id)
	}
	q := engine.Query{TopK: opt.TopK}
	direct := func(e *engine.Engine, probe []byte) (engine.IdentifyResult, time.Duration, error) {
		t0 := time.Now()
		res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}}, Query: q})
		return res, time.Since(t0), err
	}
	merged := func(probe []byte) (cluster.Result, time.Duration, error) {
		t0 := time.Now()
		res, err := coord.Identify(ctx, cluster.SearchRequest{Template: probe, Query: q})
		return res, time.Since(t0), err
	}
	// Warm-up: every path once.
	for i := range min(5, len(probes)) {
		for _, p := range parts {
			if _, _, err := direct(p.eng, probes[i]); err != nil {
				return err
			}
		}
		if _, _, err := direct(whole.eng, probes[i]); err != nil {
			return err
		}
		if _, _, err := merged(probes[i]); err != nil {
			return err
		}
	}

	// 1. Overhead, sequentially.
	ov := ClusterOverhead{Probes: opt.Probes, TopK: opt.TopK, BarP50: ms(ClusterOverheadBar), CoverageComplete: true}
	mergedLat := make([]time.Duration, 0, opt.Probes)
	slowLat := make([]time.Duration, 0, opt.Probes)
	singleLat := make([]time.Duration, 0, opt.Probes)
	over := make([]time.Duration, 0, opt.Probes)
	concLat := make([]time.Duration, 0, opt.Probes)
	overConc := make([]time.Duration, 0, opt.Probes)
	overCall := make([]time.Duration, 0, opt.Probes)
	agree, found := 0, 0
	for i, probe := range probes {
		if err := ctx.Err(); err != nil {
			return err
		}
		var slowest time.Duration
		for _, p := range parts {
			_, d, err := direct(p.eng, probe)
			if err != nil {
				return err
			}
			slowest = max(slowest, d)
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(parts))
		for p := range parts {
			wg.Go(func() { _, _, errs[p] = direct(parts[p].eng, probe) })
		}
		wg.Wait()
		conc := time.Since(t0)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		res, d, err := merged(probe)
		if err != nil {
			return fmt.Errorf("probe %d through the coordinator: %w", i, err)
		}
		concLat, overConc = append(concLat, conc), append(overConc, d-conc)
		overCall = append(overCall, d-res.Slowest)
		one, sd, err := direct(whole.eng, probe)
		if err != nil {
			return err
		}
		mergedLat, slowLat, singleLat = append(mergedLat, d), append(slowLat, slowest), append(singleLat, sd)
		over = append(over, d-slowest)
		if res.Coverage.Answered != res.Coverage.Total || res.Partial {
			ov.CoverageComplete = false
		}
		if len(res.Candidates) > 0 && len(one.Candidates) > 0 && res.Candidates[0].SubjectID == one.Candidates[0].SubjectID {
			agree++
		}
		if len(res.Candidates) > 0 && res.Candidates[0].SubjectID == mates[i] {
			found++
		}
	}
	ov.MergedP50, ov.MergedP95 = quantileMS(mergedLat, 0.5), quantileMS(mergedLat, 0.95)
	ov.SlowestP50, ov.SlowestP95 = quantileMS(slowLat, 0.5), quantileMS(slowLat, 0.95)
	ov.SingleEngineP50, ov.SingleEngineP95 = quantileMS(singleLat, 0.5), quantileMS(singleLat, 0.95)
	ov.OverheadP50, ov.OverheadP95 = quantileMS(over, 0.5), quantileMS(over, 0.95)
	ov.ConcurrentP50, ov.ConcurrentP95 = quantileMS(concLat, 0.5), quantileMS(concLat, 0.95)
	ov.OverheadConcurrentP50, ov.OverheadConcurrentP95 = quantileMS(overConc, 0.5), quantileMS(overConc, 0.95)
	ov.OverheadInCallP50, ov.OverheadInCallP95 = quantileMS(overCall, 0.5), quantileMS(overCall, 0.95)
	var sum time.Duration
	for _, d := range over {
		sum += d
	}
	ov.OverheadMean = ms(sum / time.Duration(len(over)))
	ov.BarMet = ov.OverheadInCallP50 <= ov.BarP50
	ov.Rank1Agree = float64(agree) / float64(len(probes))
	ov.MatesFoundRank1 = float64(found) / float64(len(probes))
	rep.Overhead = ov
	fmt.Fprintf(progress, "cluster: overhead over %d probes: merged − slowest partition's own search in that call p50 %.3f ms, p95 %.3f ms; merged − slowest partition alone p50 %.3f ms (merged p50 %.3f ms, slowest alone p50 %.3f ms); merged − partitions together in process p50 %.3f ms\n",
		len(probes), ov.OverheadInCallP50, ov.OverheadInCallP95, ov.OverheadP50, ov.MergedP50, ov.SlowestP50, ov.OverheadConcurrentP50)

	// 2. Throughput: concurrent callers, cluster then single engine.
	tp := ClusterThroughput{Concurrency: opt.Concurrency, Seconds: opt.Duration.Seconds()}
	tp.Cluster, err = hammer(ctx, opt, probes, func(probe []byte) error {
		res, _, err := merged(probe)
		if err == nil && (res.Partial || res.Coverage.Answered != res.Coverage.Total) {
			err = errors.New("partial coverage")
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "cluster: through the coordinator, %d callers: %.1f identifications/s, p50 %.2f ms, p99 %.2f ms\n",
		opt.Concurrency, tp.Cluster.PerSec, tp.Cluster.P50, tp.Cluster.P99)
	tp.Single, err = hammer(ctx, opt, probes, func(probe []byte) error {
		_, _, err := direct(whole.eng, probe)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "cluster: single engine, %d callers: %.1f identifications/s, p50 %.2f ms, p99 %.2f ms\n",
		opt.Concurrency, tp.Single.PerSec, tp.Single.P50, tp.Single.P99)
	if tp.Single.PerSec > 0 {
		tp.Ratio = tp.Cluster.PerSec / tp.Single.PerSec
	}
	rep.Throughput = tp
	return nil
}

// hammer runs opt.Concurrency callers of fn for opt.Duration, each going
// round the probes from its own starting point.
func hammer(ctx context.Context, opt ClusterOptions, probes [][]byte, fn func([]byte) error) (ClusterRun, error) {
	var run ClusterRun
	lats := make([][]time.Duration, opt.Concurrency)
	errs := make([]int, opt.Concurrency)
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(opt.Duration)
	var wg sync.WaitGroup
	for c := range opt.Concurrency {
		wg.Go(func() {
			for i := c * len(probes) / opt.Concurrency; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := fn(probes[i%len(probes)]); err != nil {
					errs[c]++
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				lats[c] = append(lats[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return run, err
	}
	var all []time.Duration
	for c := range lats {
		all = append(all, lats[c]...)
		run.Errors += errs[c]
	}
	run.Identifications = len(all)
	run.PerSec = float64(len(all)) / elapsed.Seconds()
	run.P50, run.P99 = quantileMS(all, 0.5), quantileMS(all, 0.99)
	if run.Identifications == 0 {
		err, _ := firstErr.Load().(error)
		return run, fmt.Errorf("no identification succeeded: %v", err)
	}
	return run, nil
}

func (c *cli) clusterCmd() *cobra.Command {
	var opt ClusterOptions
	cmd := &cobra.Command{
		Use:   "cluster [--faces N] [--partitions P] [--probes N] [--concurrency N] [--duration D]",
		Short: "sharded, replicated matchd on loopback: coordinator overhead, search throughput, durable enrolments/s",
		Long: `cluster measures the cluster groundwork (package cluster) on loopback with
in-process embedded NATS JetStream servers and real engines on Badger:

  search     a seeded synthetic gallery of --faces faces (the default face
             model's 192-d algorithm) split over --partitions partitions by
             ShardOf(id, 256) % P, each an engine answering through
             cluster.Serve, and one engine holding the whole gallery. The
             coordinator's overhead (merged Identify minus the slowest
             partition's own search of the same probe, --probes probes) and
             --concurrency callers for --duration through the Coordinator
             against the single engine.
  enrolment  three clustered JetStream servers (SyncAlways, R3 stream),
             --concurrency clients appending enrolments for --duration:
             acknowledged enrolments/s and ack latency; then one replica
             applying them into an engine (applied/s until caught up).

It writes report.md and report.json into --out.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := Cluster(cmd.Context(), opt, c.stdout)
			if err != nil {
				return err
			}
			if err := rep.Write(c.out); err != nil {
				return err
			}
			c.stdout.Write(rep.Table())
			fmt.Fprintf(c.stdout, "wrote %s and %s\n", filepath.Join(c.out, "report.md"), filepath.Join(c.out, "report.json"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.out, "out", "bmbench-cluster", "output `dir`ectory for report.md and report.json")
	f.IntVar(&opt.Faces, "faces", 1_000_000, "synthetic gallery size")
	f.IntVar(&opt.Partitions, "partitions", 2, "search partitions")
	f.IntVar(&opt.Probes, "probes", 500, "sequential probes for the coordinator overhead")
	f.IntVar(&opt.Concurrency, "concurrency", 64, "concurrent callers (throughput) and enrolment clients")
	f.DurationVar(&opt.Duration, "duration", 10*time.Second, "length of each throughput run and of the enrolment run")
	f.StringVar(&opt.Dir, "tmp", "", "`dir`ectory for the temporary stores and JetStream files (default: the system's)")
	return cmd
}
