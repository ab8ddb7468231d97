package benchmarks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// The operating points every report states: FNMR at these FMRs (1:1) and
// FNIR at these FPIRs (1:N, as NIST FRTE tabulates them).
var (
	ReportFMRs  = []float64{0.01, 0.001, 0.0005, 0.0001}
	ReportFPIRs = []float64{0.1, 0.01, 0.003, 0.001}
)

// detPoints is how many points of a DET curve a report keeps: enough to
// redraw it (bmbench compare) without a million-point JSON file.
const detPoints = 400

// DataSet identifies the data a report was measured on.
type DataSet struct {
	Dirs       []string `json:"dirs"`
	Layout     Layout   `json:"layout"`
	Samples    int      `json:"samples"`
	Identities int      `json:"identities"`
	// SHA256 is HashSamples of the samples: equal hashes, equal data.
	SHA256 string `json:"sha256"`
	// Distractors is the distractor set of an identification run.
	Distractors *DataSet `json:"distractors,omitempty"`
}

// Rates is one threshold's error rates.
type Rates struct {
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
}

// Scores summarises a score distribution. Failed comparisons (a sample
// without a template, scored -Inf) are counted apart and left out of the
// statistics.
type Scores struct {
	Count  int     `json:"count"`
	Failed int     `json:"failed"`
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"sd"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarise(s []float64) Scores {
	d := Scores{Count: len(s)}
	var sum, sq float64
	n := 0
	d.Min, d.Max = math.Inf(1), math.Inf(-1)
	for _, v := range s {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			d.Failed++
			continue
		}
		n++
		sum += v
		sq += v * v
		d.Min, d.Max = min(d.Min, v), max(d.Max, v)
	}
	if n == 0 {
		d.Min, d.Max = 0, 0
		return d
	}
	d.Mean = sum / float64(n)
	d.StdDev = math.Sqrt(max(0, sq/float64(n)-d.Mean*d.Mean))
	return d
}

// Report is everything one bmbench run measured; report.json is this.
// Rates are fractions (0.01 is 1%). A figure that cannot be measured on
// the data (too few comparisons) is null, never a guess.
type Report struct {
	Tool      string    `json:"tool"`
	Version   string    `json:"version"`
	Command   string    `json:"command"`
	Date      time.Time `json:"date"`
	Modality  string    `json:"modality"`
	Algorithm string    `json:"algorithm"`
	DataSet   DataSet   `json:"dataset"`
	// Protocol names the comparison pairs (verify) or, for identify, the
	// search protocol.
	Protocol string `json:"protocol"`
	// Label names the run in comparisons; the data set's folder by default.
	Label string `json:"label"`
	// Model and Detector are the face model and detector (faces only).
	Model    string `json:"model,omitempty"`
	Detector string `json:"detector,omitempty"`
	// ExtractP50MS and ExtractP95MS are the time per sample's extraction,
	// measured while Workers extractions ran at once.
	ExtractP50MS float64 `json:"extract_p50_ms,omitempty"`
	ExtractP95MS float64 `json:"extract_p95_ms,omitempty"`
	Workers      int     `json:"extract_workers,omitempty"`

	GenuineCount  int     `json:"genuine_count"`
	ImpostorCount int     `json:"impostor_count"`
	FTE           float64 `json:"fte"`
	// EER is the equal error rate, interpolated where FMR and FNMR cross,
	// and EERThreshold the score there.
	EER          *float64 `json:"eer"`
	EERThreshold *float64 `json:"eer_threshold"`
	// FNMRAtFMR is keyed by the FMR ("0.001"); null where the impostor
	// count is below 3/FMR (see OperatingPoints for the detail).
	FNMRAtFMR       map[string]*float64      `json:"fnmr_at_fmr"`
	OperatingPoints []errrate.OperatingPoint `json:"operating_points"`
	// AtDefaultThreshold is the rates at the engine's built-in threshold
	// for the algorithm; null when the engine has none for it.
	AtDefaultThreshold *Rates   `json:"at_default_threshold,omitempty"`
	Genuine            Scores   `json:"genuine_scores"`
	Impostor           Scores   `json:"impostor_scores"`
	DPrime             *float64 `json:"d_prime"`
	// DET is the curve, thinned to a few hundred points.
	DET []errrate.DETPoint `json:"det"`

	// Identification only.
	Rank1      *float64                 `json:"rank1,omitempty"`
	CMC        []float64                `json:"cmc,omitempty"`
	FNIRAtFPIR map[string]*float64      `json:"fnir_at_fpir,omitempty"`
	FNIRPoints []errrate.OperatingPoint `json:"fnir_points,omitempty"`
	FNIRRank   int                      `json:"fnir_rank,omitempty"`
	// FNIRCurve is FNIR (in fnmr, mate at FNIRRank) against FPIR (in fmr)
	// at every threshold, thinned as DET is.
	FNIRCurve        []errrate.DETPoint `json:"fnir_curve,omitempty"`
	FTA              *float64           `json:"fta,omitempty"`
	GallerySize      int                `json:"gallery_size,omitempty"`
	MatedSearches    int                `json:"mated_searches,omitempty"`
	NonMatedSearches int                `json:"non_mated_searches,omitempty"`
	// FingerFusion is the 1:N finger evaluation through the finger index
	// with 1, 2, 4… fingers per subject (identify --fingers).
	FingerFusion []FingerFusion `json:"finger_fusion,omitempty"`

	FailedToEnrol []Failure `json:"failed_to_enrol"`
	// FTEReasons counts the failures to enrol by kind.
	FTEReasons      map[string]int `json:"fte_reasons,omitempty"`
	FailedToAcquire []Failure      `json:"failed_to_acquire,omitempty"`
	Misses          []string       `json:"misses,omitempty"`

	// Demographics is FNMR and FMR per demographic group, when the data
	// set has a demographics.tsv (verification only).
	Demographics *DemographicsReport `json:"demographics,omitempty"`
	// QualityBands is FNMR per band of face quality (verification of
	// faces only).
	QualityBands *QualityReport `json:"quality_bands,omitempty"`

	// genuine and impostor are the raw scores, for the plots.
	genuine, impostor []float64
}

// num is v, or nil when v is not a finite number (JSON has no Inf).
func num(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

// fmtKey formats an FMR as the report's keys do: "0.001".
func fmtKey(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// newReport fills the 1:1 part of a report from genuine and impostor scores.
func newReport(command string, mod Modality, ds DataSet, proto string, genuine, impostor []float64) Report {
	r := Report{
		Tool:          "bmbench",
		Version:       toolVersion(),
		Command:       command,
		Date:          time.Now().UTC().Truncate(time.Second),
		Modality:      mod.Name(),
		Algorithm:     mod.Algorithm(),
		DataSet:       ds,
		Protocol:      proto,
		Label:         defaultLabel(ds),
		GenuineCount:  len(genuine),
		ImpostorCount: len(impostor),
		FNMRAtFMR:     map[string]*float64{},
		Genuine:       summarise(genuine),
		Impostor:      summarise(impostor),
		FailedToEnrol: []Failure{},
		genuine:       genuine,
		impostor:      impostor,
	}
	if eer, thr, ok := errrate.EER(genuine, impostor); ok {
		r.EER, r.EERThreshold = num(eer), num(thr)
	}
	for _, fmr := range ReportFMRs {
		op := errrate.FNMRAtFMR(genuine, impostor, fmr)
		r.OperatingPoints = append(r.OperatingPoints, op)
		if op.Measurable {
			r.FNMRAtFMR[fmtKey(fmr)] = num(op.Rate)
		} else {
			r.FNMRAtFMR[fmtKey(fmr)] = nil
		}
	}
	if t := mod.DefaultThreshold(); !math.IsNaN(t) {
		r.AtDefaultThreshold = &Rates{Threshold: t, FMR: errrate.FMR(impostor, t), FNMR: errrate.FNMR(genuine, t)}
	}
	if g, i := r.Genuine, r.Impostor; g.Count > g.Failed && i.Count > i.Failed {
		r.DPrime = num(math.Abs(g.Mean-i.Mean) / math.Sqrt((g.StdDev*g.StdDev+i.StdDev*i.StdDev)/2))
	}
	r.DET = thinCurve(errrate.DET(genuine, impostor))
	return r
}

// thinCurve is a DET (or FNIR) curve as a report keeps it: detPoints
// points at most, finite thresholds only.
func thinCurve(c []errrate.DETPoint) []errrate.DETPoint {
	var out []errrate.DETPoint
	for _, p := range ThinDET(c, detPoints) {
		if !math.IsInf(p.Threshold, 0) && !math.IsNaN(p.Threshold) {
			out = append(out, p)
		}
	}
	return out
}

// VerifyReport makes the report of a verification run.
func VerifyReport(mod Modality, ds DataSet, proto Protocol, res VerifyResult) Report {
	r := newReport("verify", mod, ds, string(proto), res.Genuine, res.Impostor)
	r.FTE = res.FTE()
	if res.FailedToEnrol != nil {
		r.FailedToEnrol = res.FailedToEnrol
	}
	r.FTEReasons = fteReasons(res.FailedToEnrol)
	r.ExtractP50MS, r.ExtractP95MS = percentiles(res.ExtractTimes)
	r.QualityBands = QualityBands(r, res)
	return r
}

// IdentifyReport makes the report of an identification run. Its 1:1 part
// (EER, FNMR at FMR, DET) comes from the probe-against-gallery scores.
func IdentifyReport(mod Modality, ds DataSet, opt IdentifyOptions, res IdentifyResult) Report {
	r := newReport("identify", mod, ds, "nist-frte", res.Genuine, res.Impostor)
	if res.FailedToEnrol != nil {
		r.FailedToEnrol = res.FailedToEnrol
	}
	r.FailedToAcquire = res.FailedToAcquire
	r.FTEReasons = fteReasons(res.FailedToEnrol)
	r.ExtractP50MS, r.ExtractP95MS = percentiles(res.ExtractTimes)
	enrolSamples := res.Enrolled + len(res.FailedToEnrol)
	if enrolSamples > 0 {
		r.FTE = float64(len(res.FailedToEnrol)) / float64(enrolSamples)
	}
	r.FTA = num(float64(len(res.FailedToAcquire)) / float64(max(1, len(res.Mated))))
	maxRank := opt.MaxRank
	if maxRank <= 0 {
		maxRank = 20
	}
	rank := opt.FNIRRank
	if rank <= 0 {
		rank = 1
	}
	r.CMC = errrate.CMC(res.Mated, maxRank)
	r.Rank1 = num(r.CMC[0])
	r.FNIRRank = rank
	r.FNIRAtFPIR = map[string]*float64{}
	searches := res.Searches()
	for _, fpir := range ReportFPIRs {
		op := errrate.FNIRAtFPIR(searches, fpir, rank)
		r.FNIRPoints = append(r.FNIRPoints, op)
		if op.Measurable {
			r.FNIRAtFPIR[fmtKey(fpir)] = num(op.Rate)
		} else {
			r.FNIRAtFPIR[fmtKey(fpir)] = nil
		}
	}
	r.FNIRCurve = thinCurve(errrate.FNIRCurve(searches, rank))
	r.GallerySize = res.Enrolled
	r.MatedSearches, r.NonMatedSearches = len(res.Mated), len(res.NonMated)
	r.Misses = res.Misses
	return r
}

func defaultLabel(ds DataSet) string {
	var names []string
	for _, d := range ds.Dirs {
		names = append(names, filepath.Base(filepath.Clean(d)))
	}
	return strings.Join(names, "+")
}

// ReadReport reads a report.json.
func ReadReport(path string) (Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Report{}, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("%s: not a bmbench report: %w", path, err)
	}
	if r.Tool != "bmbench" {
		return Report{}, fmt.Errorf("%s: not a bmbench report (tool %q)", path, r.Tool)
	}
	return r, nil
}

// Write writes report.json, report.md and the plots (det.png, scores.png,
// and cmc.png for identification) into dir, creating it.
func (r Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	title := fmt.Sprintf("%s %s, %s", r.Modality, r.Command, r.Label)
	if err := PlotDET(filepath.Join(dir, "det.png"), "DET: "+title,
		DETCurve{Label: r.Label, Points: r.DET, EER: deref(r.EER), Genuine: r.GenuineCount, Impostor: r.ImpostorCount}); err != nil {
		return fmt.Errorf("det.png: %w", err)
	}
	if err := r.plotScores(filepath.Join(dir, "scores.png"), "Scores: "+title); err != nil {
		return fmt.Errorf("scores.png: %w", err)
	}
	if r.CMC != nil {
		if err := PlotCMC(filepath.Join(dir, "cmc.png"), "CMC: "+title, CMCCurve{Label: r.Label, Rates: r.CMC, Searches: r.MatedSearches}); err != nil {
			return fmt.Errorf("cmc.png: %w", err)
		}
	}
	if len(r.FNIRCurve) > 0 {
		if err := PlotFNIR(filepath.Join(dir, "fnir.png"), fmt.Sprintf("FNIR (rank %d) against FPIR: %s", r.FNIRRank, title),
			DETCurve{Label: r.Label, Points: r.FNIRCurve, EER: math.NaN(), Genuine: r.MatedSearches, Impostor: r.NonMatedSearches}); err != nil {
			return fmt.Errorf("fnir.png: %w", err)
		}
	}
	if r.Demographics != nil {
		if err := r.Demographics.plot(dir, title); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), r.Markdown(), 0o644)
}

// plotScores draws scores.png, its sets named as the report names them:
// a finger fusion run's are one score per search, not every comparison.
func (r Report) plotScores(path, title string) error {
	names := comparisons
	if r.Protocol == fingerFusionProtocol {
		names = ScoreSets{Genuine: "mated searches (mate's score)", Impostor: "non-mated searches (best score)"}
	}
	p, err := scoresPlot(title, names, r.genuine, r.impostor, r.defaultThreshold())
	if err != nil {
		return err
	}
	return savePNG(p, path)
}

// defaultThreshold is the engine's built-in threshold, NaN without one.
func (r Report) defaultThreshold() float64 {
	if r.AtDefaultThreshold == nil {
		return math.NaN()
	}
	return r.AtDefaultThreshold.Threshold
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func finite(s []float64) []float64 {
	out := make([]float64, 0, len(s))
	for _, v := range s {
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

func pct(v float64) string {
	switch {
	case v == 0:
		return "0%"
	case v < 0.001:
		return fmt.Sprintf("%.4f%%", 100*v)
	case v < 0.1:
		return fmt.Sprintf("%.2f%%", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func optPct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return pct(*p)
}

// Markdown is report.md: the figures in tables, the plots, and what was
// not measurable and why.
func (r Report) Markdown() []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# bmbench %s: %s, %s\n\n", r.Command, r.Modality, r.Label)
	p("| | |\n|---|---|\n")
	p("| data | %s (layout %s) |\n", strings.Join(r.DataSet.Dirs, ", "), r.DataSet.Layout)
	p("| samples | %d of %d identities |\n", r.DataSet.Samples, r.DataSet.Identities)
	if d := r.DataSet.Distractors; d != nil {
		p("| distractors | %d identities from %s |\n", d.Identities, strings.Join(d.Dirs, ", "))
	}
	p("| data set SHA-256 | `%s` |\n", r.DataSet.SHA256)
	p("| algorithm | %s |\n", r.Algorithm)
	if r.Model != "" {
		p("| face model / detector | %s / %s |\n", r.Model, r.Detector)
	}
	if r.ExtractP50MS > 0 {
		p("| extraction per sample | p50 %.0f ms, p95 %.0f ms (%d at once) |\n", r.ExtractP50MS, r.ExtractP95MS, r.Workers)
	}
	p("| protocol | %s |\n", r.Protocol)
	p("| date | %s |\n| bmbench | %s |\n\n", r.Date.Format(time.RFC3339), r.Version)

	if r.Command == "identify" {
		p("## Identification (1:N)\n\n")
		p("Gallery of %d identities (first usable sample each); %d mated searches (every other sample, against the whole gallery) and %d non-mated searches (the same probes, against the gallery without their own identity).\n\n",
			r.GallerySize, r.MatedSearches, r.NonMatedSearches)
		p("| metric | value |\n|---|---|\n")
		p("| rank-1 identification rate | %s |\n", optPct(r.Rank1))
		for _, k := range []int{5, 10, 20} {
			if k <= len(r.CMC) {
				p("| rank-%d | %s |\n", k, pct(r.CMC[k-1]))
			}
		}
		for _, op := range r.FNIRPoints {
			p("| FNIR at FPIR = %s (rank %d) | %s |\n", fmtKey(op.Target), r.FNIRRank, opText(op, r.NonMatedSearches, "non-mated searches", "FPIR"))
		}
		p("| FTE / FTA | %s / %s |\n\n", pct(r.FTE), optPct(r.FTA))
		p("![CMC](cmc.png)\n\n")
		if len(r.FNIRCurve) > 0 {
			p("![FNIR against FPIR](fnir.png)\n\n")
		}
	}

	p("## Verification (1:1)\n\n")
	switch {
	case r.Protocol == fingerFusionProtocol:
		p("From the first run's searches: each mated search's mate score (genuine) and each non-mated search's best score (impostor).\n\n")
	case r.Command == "identify":
		p("From the same searches: every probe against its mate (genuine) and every other gallery template (impostor).\n\n")
	}
	p("| metric | value |\n|---|---|\n")
	p("| genuine comparisons | %d |\n| impostor comparisons | %d |\n", r.GenuineCount, r.ImpostorCount)
	p("| FTE | %s (%s samples) |\n", pct(r.FTE), reasonsText(r.FTEReasons))
	if r.EER != nil {
		p("| EER | %s at threshold %.4f |\n", pct(*r.EER), deref(r.EERThreshold))
	} else {
		p("| EER | n/a (needs genuine and impostor comparisons) |\n")
	}
	for _, op := range r.OperatingPoints {
		p("| FNMR at FMR = %s | %s |\n", fmtKey(op.Target), opText(op, r.ImpostorCount, "impostor comparisons", "FMR"))
	}
	if a := r.AtDefaultThreshold; a != nil {
		p("| at the default threshold %.4f | FMR %s, FNMR %s |\n", a.Threshold, pct(a.FMR), pct(a.FNMR))
	} else {
		p("| at the default threshold | none: the engine has no built-in threshold for %s |\n", r.Algorithm)
	}
	if r.DPrime != nil {
		p("| d′ (separation) | %.2f |\n", *r.DPrime)
	}
	p("| genuine scores | mean %.4f, sd %.4f, %.4f…%.4f |\n", r.Genuine.Mean, r.Genuine.StdDev, r.Genuine.Min, r.Genuine.Max)
	p("| impostor scores | mean %.4f, sd %.4f, %.4f…%.4f |\n\n", r.Impostor.Mean, r.Impostor.StdDev, r.Impostor.Min, r.Impostor.Max)
	p("![DET curve](det.png)\n\n![Score distributions](scores.png)\n\n")
	p("Rates are measured on this data set only. With N impostor comparisons an FMR below 3/N cannot be told from zero (the rule of three, 95%% confidence), so such operating points are reported as not measurable, and the plotted curves stop where either of their rates falls below 3/N of its comparisons (or searches). Failed samples score as non-matches in every comparison.\n\n")

	if r.QualityBands != nil {
		r.QualityBands.markdown(p)
	}
	if r.Demographics != nil {
		r.Demographics.markdown(p, true)
	}
	if len(r.FailedToEnrol) > 0 {
		p("## Failures to enrol (%d)\n\n", len(r.FailedToEnrol))
		for _, f := range r.FailedToEnrol {
			p("- `%s`: %s\n", f.Path, f.Reason)
		}
		p("\n")
	}
	if len(r.FailedToAcquire) > 0 {
		p("## Failures to acquire (%d)\n\n", len(r.FailedToAcquire))
		for _, f := range r.FailedToAcquire {
			p("- `%s`: %s\n", f.Path, f.Reason)
		}
		p("\n")
	}
	if len(r.FingerFusion) > 0 {
		fingerFusionMarkdown(p, r.FingerFusion)
	}
	if len(r.Misses) > 0 {
		ms := slices.Clone(r.Misses)
		p("## Mated searches not at rank 1 (%d)\n\n", len(ms))
		for _, m := range ms {
			p("- %s\n", m)
		}
		p("\n")
	}
	return b.Bytes()
}

// opText says an operating point's rate and threshold, or why it cannot be
// measured.
func opText(op errrate.OperatingPoint, count int, what, rate string) string {
	if !op.Measurable {
		return fmt.Sprintf("not measurable: %d %s measure %s down to %s", count, what, rate, pct(3/float64(max(1, count))))
	}
	return fmt.Sprintf("%s (threshold %.4f)", pct(op.Rate), op.Threshold)
}
