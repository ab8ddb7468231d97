package benchmarks

// The speed subcommands: speed, scale and compare.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/bordermatch/bordermatch/templates/face"
)

func (c *cli) speedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "speed [--data DIR] [--gallery 10000,100000,1000000]",
		Short: "extraction rate, 1:1 comparisons per second, 1:N latency and throughput",
		Long: `speed measures, on this machine:
  - extraction: per-sample latency one at a time (median, p95) and samples
    per second on all cores, over the first --samples of --data;
  - 1:1 comparisons per second on all cores;
  - 1:N search at each --gallery size over a seeded synthetic gallery:
    single-probe latency p50/p95/p99 and throughput, batched throughput,
    and, with --faiss, FAISS (Debian's python3-faiss) on the same vectors
    (up to 2,000,000 vectors; larger sizes run without it). The machine's
    read bandwidth from memory (all cores, widest loads) is measured first,
    and each size's report says whether its scan fits in the last-level
    cache.
Without --data only the 1:N part runs.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(c.data) == 0 && c.modality == "finger" {
				return usageErr{errors.New("--modality finger: speed builds its galleries from real templates: give --data")}
			}
			var sizes []int
			for _, n := range c.gallery {
				if n > 0 {
					sizes = append(sizes, n)
				}
			}
			search := SearchSpeedOptions{Sizes: sizes, Dim: c.dim, Probes: c.probes, Batch: c.batch, TopK: 10, FAISS: c.faiss, Python: c.python}
			if search.Dim <= 0 {
				search.Dim = c.defaultDim()
			}
			opt := SpeedOptions{RunOptions: c.run(), Samples: c.samples, Log: c.stdout, Search: search}
			var r SpeedReport
			if len(c.data) == 0 {
				var err error
				if r, err = Speed(cmd.Context(), nil, nil, opt); err != nil {
					return err
				}
			} else {
				samples, ds, err := c.dataSet()
				if err != nil {
					return err
				}
				models, err := c.modelList()
				if err != nil {
					return err
				}
				var runs []ModelSpeed
				for i, m := range models {
					mod, done, err := c.modalityFor(m)
					if err != nil {
						return err
					}
					o := opt
					if c.modality == "face" {
						o.Search.Sizes = nil // once, below, whatever the models
						fmt.Fprintf(c.stdout, "face model %s (%s):\n", m, mod.Algorithm())
					}
					ri, err := Speed(cmd.Context(), mod, samples, o)
					done()
					if err != nil {
						return err
					}
					if i == 0 {
						r = ri
					}
					runs = append(runs, ri.modelSpeed(m))
				}
				if c.modality == "face" {
					r.Models = runs
					if len(search.Sizes) > 0 {
						if r.Search, err = SearchSpeed(cmd.Context(), search, c.stdout); err != nil {
							return err
						}
					}
				}
				r.DataSet = &ds
			}
			if r.Modality == "" {
				r.Modality = c.modality
			}
			if err := os.MkdirAll(c.out, 0o755); err != nil {
				return err
			}
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			path := filepath.Join(c.out, "speed.json")
			if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
				return err
			}
			if len(r.Models) > 0 {
				md := r.modelsMarkdown()
				fmt.Fprintf(c.stdout, "\n%s", md)
				if err := os.WriteFile(filepath.Join(c.out, "speed.md"), md, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.stdout, "wrote %s\n", path)
			return nil
		},
	}
	c.dataFlags(cmd, "bmbench-speed")
	f := cmd.Flags()
	f.IntVar(&c.samples, "samples", 50, "how many samples of --data to extract")
	f.IntSliceVar(&c.gallery, "gallery", []int{10_000, 100_000}, "1:N gallery sizes (comma-separated; none: --gallery 0)")
	f.IntVar(&c.probes, "probes", 0, "1:N probes per gallery size (default: the measurement's own)")
	f.IntVar(&c.batch, "batch", 0, "probes per batch for batched throughput (default: the measurement's own)")
	f.BoolVar(&c.faiss, "faiss", false, "also run FAISS (python3-faiss) on the same vectors, side by side (gallery sizes up to 2,000,000)")
	f.StringVar(&c.python, "python", "", "Python interpreter with faiss, for --faiss (default /usr/bin/python3, Debian's)")
	f.IntVar(&c.dim, "dim", 0, "1:N synthetic vector dimension (default: the default face model's, "+face.DefaultModel+" in --models, else 192)")
	return cmd
}

// The 1:N bars bmbench scale checks at ScaleBarN faces.
const (
	ScaleBarN            = 1_000_000
	ScaleBarProbeP50     = 10 * time.Millisecond
	ScaleBarBytesPerFace = 300
)

func (c *cli) scaleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scale [--gallery 100000,1000000] [--dim N] [--faiss]",
		Short: "1:N face search over seeded synthetic galleries: latency, throughput, RAM per face",
		Long: `scale builds, for each --gallery size, a seeded synthetic gallery of unit
vectors of the default face model's dimension (--dim; 192 for
mobilefacenet-192), indexes it as matchd does (int8 codes in RAM, f32 rows
re-scored from a source, here the generator's rows as matchd's from its
store) and measures single-probe latency p50/p95/p99, batched throughput,
the index's heap per face, bytes scanned per second against the machine's
read bandwidth, and top-10 agreement with an exact search; with --faiss,
FAISS on the same vectors (up to 2,000,000). At 1,000,000 faces it checks
the bars: probe p50 <= 10 ms and <= 300 bytes of RAM per face.
It writes scale.json into --out.`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := SearchSpeedOptions{Sizes: c.gallery, Dim: c.dim, Probes: c.probes, Batch: c.batch, TopK: 10, FAISS: c.faiss, Python: c.python}
			if opt.Dim <= 0 {
				opt.Dim = c.defaultDim()
			}
			res, err := SearchSpeed(cmd.Context(), opt, c.stdout)
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.N != ScaleBarN {
					continue
				}
				verdict := func(ok bool) string {
					if ok {
						return "met"
					}
					return "NOT met"
				}
				fmt.Fprintf(c.stdout, "bar: n=%d dim=%d probe p50 %v (bar %v): %s; %.0f bytes of RAM per face (bar %d): %s\n",
					r.N, r.Dim, r.ProbeP50, ScaleBarProbeP50, verdict(r.ProbeP50 <= ScaleBarProbeP50),
					r.BytesPerTemplate, ScaleBarBytesPerFace, verdict(r.BytesPerTemplate <= ScaleBarBytesPerFace))
			}
			if err := os.MkdirAll(c.out, 0o755); err != nil {
				return err
			}
			rep := SpeedReport{Tool: "bmbench", Version: toolVersion(), Command: "scale", Date: time.Now().UTC().Truncate(time.Second),
				Modality: "face", CPUs: runtime.GOMAXPROCS(0), Search: res}
			b, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			path := filepath.Join(c.out, "scale.json")
			if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "wrote %s\n", path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.out, "out", "bmbench-scale", "output `dir`ectory for scale.json")
	f.StringVar(&c.models, "models", envOr("BORDERMATCH_MODELS", "./models"), "`dir`ectory with the face models, for the default model's dimension (env BORDERMATCH_MODELS)")
	f.IntSliceVar(&c.gallery, "gallery", []int{100_000, 1_000_000}, "gallery sizes (comma-separated)")
	f.IntVar(&c.dim, "dim", 0, "vector dimension (default: the default face model's, "+face.DefaultModel+" in --models, else 192)")
	f.IntVar(&c.probes, "probes", 0, "probes per gallery size (default 256)")
	f.IntVar(&c.batch, "batch", 0, "probes per batch for batched throughput (default 256)")
	f.BoolVar(&c.faiss, "faiss", false, "also run FAISS (python3-faiss) on the same vectors (gallery sizes up to 2,000,000)")
	f.StringVar(&c.python, "python", "", "Python interpreter with faiss, for --faiss (default /usr/bin/python3)")
	return cmd
}

func (c *cli) compareCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compare REPORT.json REPORT.json... [--out DIR]",
		Short: "draw several runs' DET curves on one plot and tabulate their figures",
		Args:  usage(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reports []Report
			for _, a := range args {
				r, err := ReadReport(a)
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			md, err := Compare(c.out, reports)
			if err != nil {
				return err
			}
			c.stdout.Write(md)
			fmt.Fprintf(c.stdout, "wrote %s\n", filepath.Join(c.out, "compare.md"))
			return nil
		},
	}
	cmd.Flags().StringVar(&c.out, "out", "bmbench-compare", "output `dir`ectory for det.png and compare.md")
	return cmd
}
