package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/templates/face"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// Exit codes of bmbench.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

type usageErr struct{ error }

// cli holds the flags the subcommands share.
type cli struct {
	stdout, stderr io.Writer

	modality   string
	data       []string
	layout     string
	dpi        int
	out        string
	models     string
	detector   string
	padCrops   bool
	faceModels []string
	dim        int
	workers    int
	label      string
	quiet      bool
	protocol   string
	distract   []string
	fingers    []int
	maxRank    int
	fnirRank   int
	nonMated   int // identify --non-mated (finger)
	samples    int
	floor      int
	gallery    []int
	probes     int
	batch      int
	faiss      bool
	python     string
	closeMods  []func()
	// subs are the subcommands' own clis (see sub).
	subs []*cli
}

// Main runs bmbench with args (without the program name) and returns the
// exit code: 0 done, 1 failed, 2 bad usage, 130 interrupted (Ctrl-C).
func Main(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	for _, s := range c.subs {
		for _, f := range s.closeMods {
			f()
		}
	}
	var ue usageErr
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		fmt.Fprintln(stderr, "bmbench: interrupted; nothing written")
		return ExitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "bmbench:", err)
		return ExitUsage
	}
	fmt.Fprintln(stderr, "bmbench:", err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage // cobra's own
	}
	return ExitFailure
}

// usage makes cobra's argument errors usage errors (exit 2).
func usage(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageErr{err}
		}
		return nil
	}
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "bmbench",
		Short: "Measure Bordermatch's accuracy and speed on labeled data",
		Long: `bmbench evaluates Bordermatch on your own labeled data, in the terms of
ISO/IEC 19795-1 and of the NIST and FVC evaluations: FMR, FNMR, EER and DET
curves for 1:1 verification; rank-1, CMC and FNIR at FPIR for 1:N
identification; failures to enrol and acquire; and speed.

Data sets are folders in one of two layouts (--layout):
  identity  <dir>/<identity>/<sample>.<ext>   (faces)
  fvc       <dir>/<finger>_<impression>.<ext> (fingerprints, as FVC ships them)

Each run writes report.md, report.json and PNG plots into --out, by
default a folder of its own in the current directory: bmbench-verify/,
bmbench-identify/, bmbench-calibrate/, bmbench-speed/, bmbench-scale/,
bmbench-cluster/, bmbench-compare/.
Exit codes: 0 done, 1 failed, 2 bad usage, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr{err} })
	root.AddCommand(c.sub().verifyCmd(), c.sub().identifyCmd(), c.sub().calibrateCmd(), c.sub().speedCmd(),
		c.sub().scaleCmd(), c.sub().clusterCmd(), c.sub().compareCmd(), c.sub().loadCmd())
	return root
}

// sub is a cli for one subcommand to bind its flags to. pflag writes a
// flag's default into its variable when the flag is defined, so
// subcommands sharing one variable would all start from the default of the
// last one defined (every --out was bmbench-compare).
func (c *cli) sub() *cli {
	s := &cli{stdout: c.stdout, stderr: c.stderr}
	c.subs = append(c.subs, s)
	return s
}

// dataFlags are the flags of every command that reads a data set.
func (c *cli) dataFlags(cmd *cobra.Command, out string) {
	f := cmd.Flags()
	f.StringVar(&c.modality, "modality", "face", "biometric modality: face or finger")
	f.StringSliceVar(&c.data, "data", nil, "data set `dir`ectory (repeat or comma-separate for several)")
	f.StringVar(&c.layout, "layout", "", "data set layout: identity or fvc (default identity for faces, fvc for fingerprints)")
	f.IntVar(&c.dpi, "dpi", 0, "fingerprint image resolution in pixels per inch, when the files do not say (default 500)")
	f.IntVar(&c.floor, "quality-floor", finger.DefaultQualityFloor, "fingerprints: lowest image quality (0-100) accepted, as matchd enrols; lower is a failure to enrol (0: accept all, as FVC does)")
	f.StringVar(&c.out, "out", out, "output `dir`ectory for the report and plots")
	f.StringVar(&c.models, "models", envOr("BORDERMATCH_MODELS", "./models"), "`dir`ectory with the face model files (env BORDERMATCH_MODELS)")
	f.StringVar(&c.detector, "detector", face.DetectorAuto.String(), "face detector: auto (HOG, then padded, upsampled and CNN retries), hog (no CNN) or cnn")
	f.StringSliceVar(&c.faceModels, "face-model", []string{envOr("BORDERMATCH_FACE_MODEL", face.DefaultModel)},
		"face `model`(s) in --models, comma-separated: each runs on the same data, reported side by side (env BORDERMATCH_FACE_MODEL)")
	f.BoolVar(&c.padCrops, "pad-crops", true, "ignored")
	f.MarkDeprecated("pad-crops", "the face extractor retries tight crops on a padded image itself")
	f.IntVar(&c.workers, "workers", 0, "parallel workers (default: all cores)")
	f.StringVar(&c.label, "label", "", "name of this run in reports and comparisons (default: the data folder names)")
	f.BoolVar(&c.quiet, "quiet", false, "no progress bars")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// modelList is the face models to run, one run each; one empty name for
// modalities without models.
func (c *cli) modelList() ([]string, error) {
	if c.modality != "face" {
		return []string{""}, nil
	}
	var out []string
	for _, m := range c.faceModels {
		if m = strings.TrimSpace(m); m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, usageErr{errors.New("--face-model: name at least one model")}
	}
	return out, nil
}

// fingerIdentify is identify --modality finger with --fingers or
// synthetic distractors: EvaluateFingerIdentification, through the finger
// index, one run per number of fingers.
func (c *cli) fingerIdentify(ctx context.Context, samples []Sample, ds DataSet, dirs []string, synthetic int) (Report, error) {
	fingers := c.fingers
	if len(fingers) == 0 {
		fingers = []int{1}
	}
	opt := FingerIdentifyOptions{RunOptions: c.run(), Fingers: fingers, Synthetic: synthetic, NonMated: c.nonMated}
	if len(dirs) > 0 {
		d, err := Scan(ds.Layout, dirs...)
		if err != nil {
			return Report{}, fmt.Errorf("--distractors: %w", err)
		}
		hash, err := HashSamples(d)
		if err != nil {
			return Report{}, err
		}
		opt.Distractors = d
		ds.Distractors = &DataSet{Dirs: dirs, Layout: ds.Layout, Samples: len(d), Identities: Identities(d), SHA256: hash}
	}
	mod, err := newFingerModality(c.dpi, c.floor)
	if err != nil {
		return Report{}, err
	}
	runs, res, err := EvaluateFingerIdentification(ctx, mod.(Finger), samples, opt)
	if err != nil {
		return Report{}, err
	}
	r := FingerFusionReport(mod, ds, res, runs)
	return r, nil
}

// modalityFor opens the modality the flags name, with the face model
// model; done frees it.
func (c *cli) modalityFor(model string) (mod Modality, done func(), err error) {
	switch c.modality {
	case "face":
		det, err := face.ParseDetector(c.detector)
		if err != nil {
			return nil, nil, usageErr{fmt.Errorf("--detector: %w", err)}
		}
		ex, err := face.NewExtractor(face.Config{ModelsDir: c.models, Model: model, Detector: det, Workers: c.workers})
		if err != nil {
			return nil, nil, err
		}
		var once sync.Once
		done := func() { once.Do(func() { ex.Close() }) }
		c.closeMods = append(c.closeMods, done)
		return Face{Extractor: ex}, done, nil
	case "finger":
		mod, err := newFingerModality(c.dpi, c.floor)
		return mod, func() {}, err
	}
	return nil, nil, usageErr{fmt.Errorf("--modality %q: want face or finger", c.modality)}
}

// defaultDim is the default face model's embedding length: its
// descriptor's, when --models has it, else 192.
func (c *cli) defaultDim() int {
	if m, err := face.LoadModel(c.models, face.DefaultModel); err == nil {
		return m.Dim
	}
	return 192
}

// labelRun names a run of one model among several.
func (c *cli) labelRun(r *Report, model string, several bool) {
	if c.modality == "face" {
		r.Model = model
		r.Detector = c.detector
	}
	r.Workers = c.workers
	if r.Workers <= 0 {
		r.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case c.label != "" && several:
		r.Label = c.label + ", " + model
	case c.label != "":
		r.Label = c.label
	case several:
		r.Label += ", " + model
	}
}

// runModels runs one report per model: into --out alone, or with several
// models into --out/<model>/ and a side-by-side report in --out.
func (c *cli) runModels(ctx context.Context, run func(ctx context.Context, model string) (Report, error)) error {
	models, err := c.modelList()
	if err != nil {
		return err
	}
	several := len(models) > 1
	var reports []Report
	for _, m := range models {
		r, err := run(ctx, m)
		if err != nil {
			if several {
				return fmt.Errorf("--face-model %s: %w", m, err)
			}
			return err
		}
		c.labelRun(&r, m, several)
		dir := c.out
		if several {
			dir = filepath.Join(c.out, modelDir(m))
		}
		if err := r.Write(dir); err != nil {
			return err
		}
		c.summary(r)
		fmt.Fprintf(c.stdout, "wrote %s\n", filepath.Join(dir, "report.md"))
		reports = append(reports, r)
	}
	if several {
		md, err := WriteModelComparison(c.out, reports)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "\n%s", md)
		fmt.Fprintf(c.stdout, "wrote %s\n", filepath.Join(c.out, "report.md"))
	}
	return nil
}

// samples scans the data set the flags name.
func (c *cli) dataSet() ([]Sample, DataSet, error) {
	if len(c.data) == 0 {
		return nil, DataSet{}, usageErr{errors.New("--data DIR is required")}
	}
	layout := c.layout
	if layout == "" {
		layout = string(LayoutIdentity)
		if c.modality == "finger" {
			layout = string(LayoutFVC)
		}
	}
	l, err := ParseLayout(layout)
	if err != nil {
		return nil, DataSet{}, usageErr{err}
	}
	samples, err := Scan(l, c.data...)
	if err != nil {
		return nil, DataSet{}, err
	}
	hash, err := HashSamples(samples)
	if err != nil {
		return nil, DataSet{}, err
	}
	return samples, DataSet{Dirs: c.data, Layout: l, Samples: len(samples), Identities: Identities(samples), SHA256: hash}, nil
}

func (c *cli) run() RunOptions {
	o := RunOptions{Workers: c.workers}
	if !c.quiet {
		o.Progress = c.stderr
	}
	return o
}

func (c *cli) summary(r Report) {
	fmt.Fprintf(c.stdout, "%s %s: %s\n", r.Modality, r.Command, r.Label)
	if r.Command == "identify" {
		fmt.Fprintf(c.stdout, "  gallery %d, %d mated and %d non-mated searches: rank-1 %s", r.GallerySize, r.MatedSearches, r.NonMatedSearches, optPct(r.Rank1))
		for _, op := range r.FNIRPoints {
			fmt.Fprintf(c.stdout, ", FNIR@FPIR=%s %s", fmtKey(op.Target), short(op))
		}
		fmt.Fprintf(c.stdout, ", FTA %s\n", optPct(r.FTA))
	}
	fmt.Fprintf(c.stdout, "  %d genuine, %d impostor comparisons: EER %s", r.GenuineCount, r.ImpostorCount, optPct(r.EER))
	if r.EERThreshold != nil {
		fmt.Fprintf(c.stdout, " at %.4f", *r.EERThreshold)
	}
	for _, op := range r.OperatingPoints {
		fmt.Fprintf(c.stdout, ", FNMR@FMR=%s %s", fmtKey(op.Target), short(op))
	}
	fmt.Fprintf(c.stdout, ", FTE %s\n", pct(r.FTE))
	if r.Demographics != nil {
		fmt.Fprintln(c.stdout)
		r.Demographics.markdown(func(format string, a ...any) { fmt.Fprintf(c.stdout, format, a...) }, false)
	}
}

func short(op errrate.OperatingPoint) string {
	if !op.Measurable {
		return "not measurable"
	}
	return pct(op.Rate)
}

func (c *cli) verifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify --data DIR [--protocol all|fvc]",
		Short: "1:1 evaluation: FMR, FNMR, EER, DET curve",
		Args:  usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runModels(cmd.Context(), func(ctx context.Context, model string) (Report, error) {
				r, _, err := c.verify(ctx, model)
				return r, err
			})
		},
	}
	c.dataFlags(cmd, "bmbench-verify")
	cmd.Flags().StringVar(&c.protocol, "protocol", "all", "comparison protocol: all (every pair) or fvc (FVC: genuine all pairs, impostor first impressions)")
	return cmd
}

func (c *cli) verify(ctx context.Context, model string) (Report, VerifyResult, error) {
	proto, err := ParseProtocol(c.protocol)
	if err != nil {
		return Report{}, VerifyResult{}, usageErr{err}
	}
	samples, ds, err := c.dataSet()
	if err != nil {
		return Report{}, VerifyResult{}, err
	}
	demo, hasDemo, err := LoadDemographics(c.data) // before extracting: a bad file fails at once
	if err != nil {
		return Report{}, VerifyResult{}, err
	}
	mod, done, err := c.modalityFor(model)
	if err != nil {
		return Report{}, VerifyResult{}, err
	}
	defer done()
	res, err := EvaluateVerification(ctx, mod, samples, proto, c.run())
	if err != nil {
		return Report{}, res, err
	}
	r := VerifyReport(mod, ds, proto, res)
	if c.label != "" {
		r.Label = c.label
	}
	if hasDemo {
		r.AddDemographics(demo, samples, res)
	}
	return r, res, nil
}

func (c *cli) identifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identify --data DIR [--distractors DIR|N] [--fingers 1,2,4]",
		Short: "1:N evaluation: rank-1, CMC, FNIR at FPIR",
		Args:  usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runModels(cmd.Context(), c.identify)
		},
	}
	c.dataFlags(cmd, "bmbench-identify")
	f := cmd.Flags()
	f.StringSliceVar(&c.distract, "distractors", nil, "`dir`ectory of extra identities enrolled but never searched for (same layout); with --modality finger also a number N: N synthetic finger subjects (SyntheticFinger) on top of the directories' (e.g. --distractors DIR1,DIR2,100000)")
	f.IntSliceVar(&c.fingers, "fingers", nil, "with --modality finger: fingers per subject, each a run through the finger index with sum-rule fusion (e.g. 1,2,4; subjects are made of finger j of k sets, see EvaluateFingerIdentification)")
	f.IntVar(&c.nonMated, "non-mated", 0, "with --modality finger: N more non-mated searches, each of k synthetic fingers enrolled nowhere, so that FNIR at FPIR 0.1% is measurable (3,000 or more); reported beside the real non-mated searches")
	f.IntVar(&c.maxRank, "max-rank", 20, "longest candidate list (CMC)")
	f.IntVar(&c.fnirRank, "fnir-rank", 1, "rank at which a mate must be returned, above the threshold, to count as found for FNIR")
	return cmd
}

func (c *cli) identify(ctx context.Context, model string) (Report, error) {
	samples, ds, err := c.dataSet()
	if err != nil {
		return Report{}, err
	}
	opt := IdentifyOptions{RunOptions: c.run(), MaxRank: c.maxRank, FNIRRank: c.fnirRank}
	var dirs []string
	synthetic := 0
	for _, d := range c.distract {
		n, err := strconv.Atoi(d)
		switch {
		case err != nil:
			dirs = append(dirs, d)
		case c.modality != "finger" || n < 0:
			return Report{}, usageErr{fmt.Errorf("--distractors %s: a number of synthetic distractors needs --modality finger, and is >= 0", d)}
		default:
			synthetic += n
		}
	}
	if c.nonMated < 0 || c.nonMated > 0 && c.modality != "finger" {
		return Report{}, usageErr{fmt.Errorf("--non-mated %d: synthetic non-mated searches need --modality finger, and are >= 0", c.nonMated)}
	}
	if c.modality == "finger" && (len(c.fingers) > 0 || synthetic > 0 || c.nonMated > 0) {
		return c.fingerIdentify(ctx, samples, ds, dirs, synthetic)
	}
	if len(c.distract) > 0 {
		d, err := Scan(ds.Layout, c.distract...)
		if err != nil {
			return Report{}, fmt.Errorf("--distractors: %w", err)
		}
		hash, err := HashSamples(d)
		if err != nil {
			return Report{}, err
		}
		opt.Distractors = d
		ds.Distractors = &DataSet{Dirs: c.distract, Layout: ds.Layout, Samples: len(d), Identities: Identities(d), SHA256: hash}
	}
	mod, done, err := c.modalityFor(model)
	if err != nil {
		return Report{}, err
	}
	defer done()
	res, err := EvaluateIdentification(ctx, mod, samples, opt)
	if err != nil {
		return Report{}, err
	}
	return IdentifyReport(mod, ds, opt, res), nil
}

func (c *cli) calibrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "calibrate --data DIR",
		Short: "measure the score→FMR table that matchd --face-calibration / --finger-calibration loads",
		Long: `calibrate runs a 1:1 evaluation (protocol all) and writes calibration.json:
the false match rate measured at every score. matchd loads it with
--face-calibration FILE (or --finger-calibration FILE) and turns --target-fmr
into a threshold; fingerprint and fused decisions go through it too.

The table is only as good as the data it was measured on: the same
population, capture conditions and algorithm as in service, and enough
impostor comparisons (an FMR below 3/N of them cannot be measured, and
matchd refuses such a target).`,
		Args: usage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			models, err := c.modelList()
			if err != nil {
				return err
			}
			if len(models) > 1 {
				return usageErr{errors.New("calibrate: one --face-model at a time (a calibration is valid for one algorithm)")}
			}
			r, res, err := c.verify(cmd.Context(), models[0])
			if err != nil {
				return err
			}
			c.labelRun(&r, models[0], false)
			r.Command = "calibrate"
			if err := r.Write(c.out); err != nil {
				return err
			}
			cal := Calibration(r, res.Impostor)
			path, err := WriteCalibration(c.out, cal)
			if err != nil {
				return err
			}
			c.summary(r)
			fmt.Fprintf(c.stdout, "calibration: %d impostor comparisons, FMR measurable down to %s\n", cal.ImpostorCount, pct(3/float64(max(1, cal.ImpostorCount))))
			targets := []float64{0.01, 0.001, 0.0001}
			if s := SuggestedFMR(cal.ImpostorCount); s > 0 && !slices.Contains(targets, s) {
				targets = append(targets, s)
				slices.Sort(targets)
				slices.Reverse(targets)
			}
			for _, fmr := range targets {
				if t, err := cal.ThresholdForFMR(fmr); err == nil {
					fmt.Fprintf(c.stdout, "  --target-fmr %s → threshold %.4f\n", fmtKey(fmr), t)
				}
			}
			if fmr := SuggestedFMR(cal.ImpostorCount); fmr > 0 {
				fmt.Fprintf(c.stdout, "wrote %s (use: matchd --%s-calibration %s --target-fmr %s)\n", path, r.Modality, path, fmtKey(fmr))
			} else {
				fmt.Fprintf(c.stdout, "wrote %s: %d impostor comparisons measure no FMR below 100%%; matchd can set no threshold from it (measure on more identities)\n",
					path, cal.ImpostorCount)
			}
			return nil
		},
	}
	c.dataFlags(cmd, "bmbench-calibrate")
	c.protocol = string(ProtocolAll)
	return cmd
}
