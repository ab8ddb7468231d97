package benchmarks

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// FingerIdentifyOptions configure EvaluateFingerIdentification.
type FingerIdentifyOptions struct {
	RunOptions
	// Fingers is the numbers of fingers per subject to evaluate, each a
	// run of its own: 1, 2, 4.
	Fingers []int
	// Distractors are real samples of other fingers (other sets), whose
	// first usable impression is enrolled, k fingers to a distractor
	// subject; never searched for.
	Distractors []Sample
	// Synthetic is the number of synthetic distractor subjects
	// (SyntheticFinger), each with k fingers, on top of Distractors.
	Synthetic int
	// NonMated is the number of extra non-mated searches, each with k
	// synthetic fingers enrolled nowhere (SyntheticFinger from
	// nonMatedSeed on). The labeled data gives one non-mated search per
	// mated one, a few hundred, too few to measure FNIR at FPIR 0.1% (the
	// rule of three needs 3,000): these make it measurable, against
	// synthetic impostors (FingerFusion reports both).
	NonMated int
}

// nonMatedSeed is the first SyntheticFinger of the non-mated probes: far
// above any distractor pool, so no probe is enrolled.
const nonMatedSeed = 1 << 40

// FingerFusion is the outcome of the 1:N finger evaluation with k fingers
// per subject, searched through matcher.FingerIndex as matchd searches.
type FingerFusion struct {
	Fingers     int `json:"fingers"`
	Subjects    int `json:"subjects"`    // labeled subjects enrolled
	Distractors int `json:"distractors"` // distractor subjects enrolled (real and synthetic)
	Synthetic   int `json:"synthetic"`   // of which synthetic
	Templates   int `json:"templates"`   // finger templates in the index
	// Mated and NonMated count the searches (see EvaluateFingerIdentification).
	Mated    int `json:"mated_searches"`
	NonMated int `json:"non_mated_searches"`
	// NonMatedSynthetic of the NonMated searches are of synthetic fingers
	// (FingerIdentifyOptions.NonMated); the rest are the best strangers
	// of the mated searches.
	NonMatedSynthetic int      `json:"non_mated_synthetic_searches,omitempty"`
	Rank1             *float64 `json:"rank1"`
	// FNIRAtFPIR is FNIR (rank 1) at each FPIR of ReportFPIRs, with its
	// threshold and whether the non-mated searches suffice to measure it
	// (rule of three), over the real non-mated searches (the mated
	// searches' best strangers) alone; FNIRAtFPIRWithSynthetic over those
	// and the synthetic non-mated searches.
	FNIRAtFPIR              []errrate.OperatingPoint `json:"fnir_at_fpir"`
	FNIRAtFPIRWithSynthetic []errrate.OperatingPoint `json:"fnir_at_fpir_with_synthetic,omitempty"`
	// ShortlistKept counts the mated searches whose mate the search ranked
	// first; ShortlistLost those whose mate the full matcher scores above
	// every candidate the search returned but which the shortlist dropped
	// (ranked first had it been compared). Recall is Kept/(Kept+Lost).
	ShortlistKept   int      `json:"shortlist_kept"`
	ShortlistLost   int      `json:"shortlist_lost"`
	ShortlistRecall *float64 `json:"shortlist_recall"`
	// TopImpostor is the mean best non-mate score of the searches, and
	// TopRealImpostor / TopSyntheticImpostor the mean best score among the
	// real and the synthetic distractors alone (how hard each kind is).
	TopImpostor          float64 `json:"top_impostor_mean"`
	TopRealImpostor      float64 `json:"top_real_distractor_mean"`
	TopSyntheticImpostor float64 `json:"top_synthetic_distractor_mean"`
	// SearchMS is the mean time of a search; ComparisonsPerSecond is the
	// probe fingers times the templates they were searched against, per
	// second of search.
	SearchMS             float64  `json:"search_ms"`
	ComparisonsPerSecond float64  `json:"comparisons_per_second"`
	Misses               []string `json:"misses,omitempty"`

	searches []errrate.SearchOutcome
}

// fingerPositions are the positions the k fingers of a subject take.
var fingerPositions = []minutiae.Position{minutiae.RightThumb, minutiae.RightIndex, minutiae.RightMiddle, minutiae.RightRing,
	minutiae.RightLittle, minutiae.LeftThumb, minutiae.LeftIndex, minutiae.LeftMiddle, minutiae.LeftRing, minutiae.LeftLittle}

// EvaluateFingerIdentification is the 1:N finger evaluation with several
// fingers per subject, fused by the finger index's sum rule.
//
// Subjects. The FVC sets have 10 fingers of 10 unknown people each, and
// their fingers are not linked across sets, so a subject of k fingers is
// made of finger j of k sets: the sets (the identity's prefix before
// "/"), in name order, are taken k at a time, and finger j (in order) of
// each set of a group makes subject j of that group, the first set's
// finger at the right thumb, the second's at the right index, and so on.
// Four sets give 40 one-finger, 20 two-finger and 10 four-finger subjects.
// Sets left over (fewer than k) are not used at k.
//
// Enrolled: each finger's first usable impression. Probes: impression i
// (the i-th sample in order, i ≥ 2) of every finger of a subject, one
// search with all of them. Each search gives a mated outcome (the mate's
// rank and score) and a non-mated one (the best stranger's score: what a
// search of the gallery without the mate returns, up to the shortlist
// drawn with the mate in it).
func EvaluateFingerIdentification(ctx context.Context, mod Finger, samples []Sample, opt FingerIdentifyOptions) ([]FingerFusion, IdentifyResult, error) {
	res := IdentifyResult{Samples: len(samples), Identities: Identities(samples)}
	all := append(slices.Clip(samples), opt.Distractors...)
	bar := newProgress(opt.Progress, int64(len(all)), "extracting")
	x, err := extractAll(ctx, mod, all, opt.Workers, bar)
	bar.done()
	if err != nil {
		return nil, res, err
	}
	res.ExtractTimes = x.times
	for i := range all {
		if !x.ok(i) {
			res.FailedToEnrol = append(res.FailedToEnrol, x.failures[i])
		}
	}
	// Fingers by set, impressions in order.
	type finger struct {
		id    string
		imps  []*matcher.FingerTemplate // nil where extraction failed
		paths []string
	}
	bySet := map[string][]*finger{}
	var sets []string
	var distract []*finger
	byID := map[string]*finger{}
	for i, s := range all {
		f := byID[s.Identity]
		if f == nil {
			f = &finger{id: s.Identity}
			byID[s.Identity] = f
			if i >= len(samples) {
				distract = append(distract, f)
			} else {
				set, _, ok := strings.Cut(s.Identity, "/")
				if !ok {
					set = ""
				}
				if _, seen := bySet[set]; !seen {
					sets = append(sets, set)
				}
				bySet[set] = append(bySet[set], f)
			}
		}
		var t *matcher.FingerTemplate
		if x.ok(i) {
			t = x.templates[i].(*matcher.FingerTemplate)
		}
		f.imps = append(f.imps, t)
		f.paths = append(f.paths, s.Path)
	}
	slices.Sort(sets)
	first := func(f *finger) int {
		return slices.IndexFunc(f.imps, func(t *matcher.FingerTemplate) bool { return t != nil })
	}

	// The synthetic fingers, prepared once on all cores and shared by the
	// runs (subject j's finger i of k is pool[(j·k+i) mod N]: a template
	// sits at a position in one subject only).
	pool := make([]*matcher.FingerTemplate, opt.Synthetic)
	if opt.Synthetic > 0 {
		sbar := newProgress(opt.Progress, int64(opt.Synthetic), "synthetic fingers")
		var wg sync.WaitGroup
		workers := opt.Workers
		if workers <= 0 {
			workers = runtime.GOMAXPROCS(0)
		}
		var perr error
		var mu sync.Mutex
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(pool); i += workers {
					t, err := matcher.PrepareFinger(SyntheticFinger(i))
					if err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
						return
					}
					pool[i] = t
					sbar.add(1)
				}
			})
		}
		wg.Wait()
		sbar.done()
		if perr != nil {
			return nil, res, fmt.Errorf("synthetic finger: %w", perr)
		}
	}

	var out []FingerFusion
	for _, k := range opt.Fingers {
		if k < 1 || k > len(fingerPositions) {
			return out, res, fmt.Errorf("%d fingers per subject: want 1..%d", k, len(fingerPositions))
		}
		if len(sets) < k {
			return out, res, fmt.Errorf("%d fingers per subject need %d sets, the data has %d", k, k, len(sets))
		}
		ff := FingerFusion{Fingers: k}
		ix := matcher.NewFingerIndex()
		type subject struct {
			id      string
			fingers []*finger
		}
		var subs []subject
		for g := 0; g+k <= len(sets); g += k {
			for j := range len(bySet[sets[g]]) {
				sub := subject{id: fmt.Sprintf("g%d-f%d", g/k, j)}
				for i := range k {
					if fs := bySet[sets[g+i]]; j < len(fs) {
						sub.fingers = append(sub.fingers, fs[j])
					}
				}
				if len(sub.fingers) == k {
					subs = append(subs, sub)
				}
			}
		}
		enrolled := map[string]bool{}
		for _, sub := range subs {
			for i, f := range sub.fingers {
				if e := first(f); e >= 0 {
					if err := ix.Add(sub.id, fingerPositions[i], f.imps[e]); err != nil {
						return out, res, err
					}
					enrolled[sub.id] = true
				}
			}
		}
		ff.Subjects = len(enrolled)
		real := map[string]bool{}
		for d := 0; d+k <= len(distract); d += k {
			id := "real-" + strconv.Itoa(d/k)
			for i, f := range distract[d : d+k] {
				if e := first(f); e >= 0 {
					if err := ix.Add(id, fingerPositions[i], f.imps[e]); err != nil {
						return out, res, err
					}
					real[id] = true
				}
			}
		}
		for j := range opt.Synthetic {
			id := "syn-" + strconv.Itoa(j)
			for i := range k {
				if err := ix.Add(id, fingerPositions[i], pool[(j*k+i)%len(pool)]); err != nil {
					return out, res, err
				}
			}
		}
		ff.Synthetic = opt.Synthetic
		ff.Distractors = len(real) + opt.Synthetic
		ff.Templates = ix.Len()

		var searches []errrate.SearchOutcome
		var took time.Duration
		var compared float64
		var topAll, topReal, topSyn float64
		sbar := newProgress(opt.Progress, int64(len(subs)*7), fmt.Sprintf("searching, %d finger(s)", k))
		for _, sub := range subs {
			for imp := 1; ; imp++ {
				if err := ctx.Err(); err != nil {
					return out, res, err
				}
				probes := map[minutiae.Position]*matcher.FingerTemplate{}
				more := false
				var name []string
				for i, f := range sub.fingers {
					if imp >= len(f.imps) {
						continue
					}
					more = true
					if imp == first(f) {
						continue // the enrolled impression
					}
					if t := f.imps[imp]; t != nil {
						probes[fingerPositions[i]] = t
						name = append(name, f.paths[imp])
					}
				}
				if !more {
					break
				}
				if len(probes) == 0 {
					continue
				}
				start := time.Now()
				hits, err := ix.SearchFingers(probes, matcher.SearchOptions{K: math.MaxInt32})
				took += time.Since(start)
				if err != nil {
					return out, res, err
				}
				compared += float64(len(probes) * ix.Len())
				sbar.add(1)
				mated := errrate.SearchOutcome{Mated: true, MateScore: math.Inf(-1), TopNonMateScore: math.Inf(-1)}
				nonMated := errrate.SearchOutcome{MateScore: math.Inf(-1), TopNonMateScore: math.Inf(-1)}
				bestReal, bestSyn := 0.0, 0.0
				topID := ""
				for r, h := range hits {
					sc := float64(h.Score)
					switch {
					case h.SubjectID == sub.id:
						mated.MateRank, mated.MateScore = r+1, sc
					case math.IsInf(nonMated.TopNonMateScore, -1):
						nonMated.TopNonMateScore, topID = sc, h.SubjectID
					}
					if strings.HasPrefix(h.SubjectID, "real-") {
						bestReal = max(bestReal, sc)
					} else if strings.HasPrefix(h.SubjectID, "syn-") {
						bestSyn = max(bestSyn, sc)
					}
				}
				mated.TopNonMateScore = nonMated.TopNonMateScore
				if math.IsInf(nonMated.TopNonMateScore, -1) {
					nonMated.TopNonMateScore = 0
				}
				topAll += nonMated.TopNonMateScore
				topReal += bestReal
				topSyn += bestSyn
				switch {
				case mated.MateRank == 1:
					ff.ShortlistKept++
				case mated.MateRank == 0:
					// Not shortlisted: would the full comparison have
					// ranked it first among the candidates?
					v, _ := ix.VerifyFingers(probes, sub.id)
					if float64(v) > nonMated.TopNonMateScore {
						ff.ShortlistLost++
						ff.Misses = append(ff.Misses, fmt.Sprintf("shortlist lost %s (mate %.4f > best candidate %s %.4f)", strings.Join(name, "+"), v, topID, nonMated.TopNonMateScore))
					}
				}
				if mated.MateRank != 1 {
					ff.Misses = append(ff.Misses, fmt.Sprintf("%s → %s (%.4f; mate rank %d, %.4f)", strings.Join(name, "+"), topID, nonMated.TopNonMateScore, mated.MateRank, mated.MateScore))
				}
				searches = append(searches, mated, nonMated)
				ff.Mated++
				ff.NonMated++
			}
		}
		sbar.done()
		if ff.Mated == 0 {
			return out, res, fmt.Errorf("%d fingers per subject: no probes", k)
		}
		n := float64(ff.Mated)
		ff.TopImpostor, ff.TopRealImpostor, ff.TopSyntheticImpostor = topAll/n, topReal/n, topSyn/n
		ff.Rank1 = num(errrate.CMC(searches, 1)[0])
		for _, fpir := range ReportFPIRs {
			ff.FNIRAtFPIR = append(ff.FNIRAtFPIR, errrate.FNIRAtFPIR(searches, fpir, 1))
		}
		if opt.NonMated > 0 {
			syn, err := nonMatedSearches(ctx, ix, k, opt.NonMated, opt.Progress)
			if err != nil {
				return out, res, err
			}
			ff.NonMated += len(syn)
			ff.NonMatedSynthetic = len(syn)
			all := append(slices.Clip(searches), syn...)
			for _, fpir := range ReportFPIRs {
				ff.FNIRAtFPIRWithSynthetic = append(ff.FNIRAtFPIRWithSynthetic, errrate.FNIRAtFPIR(all, fpir, 1))
			}
		}
		ff.searches = searches
		if d := ff.ShortlistKept + ff.ShortlistLost; d > 0 {
			ff.ShortlistRecall = num(float64(ff.ShortlistKept) / float64(d))
		}
		ff.SearchMS = took.Seconds() * 1000 / n
		ff.ComparisonsPerSecond = compared / took.Seconds()
		out = append(out, ff)
	}
	return out, res, nil
}

// nonMatedSearches searches the index n times, each with k synthetic
// fingers enrolled nowhere (at the positions a subject's k fingers take),
// as the mated searches are made (every candidate ranked), and returns the
// non-mated outcomes: the best score of each search.
func nonMatedSearches(ctx context.Context, ix *matcher.FingerIndex, k, n int, progress io.Writer) ([]errrate.SearchOutcome, error) {
	bar := newProgress(progress, int64(n), fmt.Sprintf("non-mated searches, %d finger(s)", k))
	defer bar.done()
	out := make([]errrate.SearchOutcome, 0, n)
	for j := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		probes := make(map[minutiae.Position]*matcher.FingerTemplate, k)
		for i := range k {
			t, err := matcher.PrepareFinger(SyntheticFinger(nonMatedSeed + j*k + i))
			if err != nil {
				return nil, fmt.Errorf("synthetic probe: %w", err)
			}
			probes[fingerPositions[i]] = t
		}
		hits, err := ix.SearchFingers(probes, matcher.SearchOptions{K: math.MaxInt32})
		if err != nil {
			return nil, err
		}
		o := errrate.SearchOutcome{MateScore: math.Inf(-1)}
		if len(hits) > 0 {
			o.TopNonMateScore = float64(hits[0].Score)
		}
		out = append(out, o)
		bar.add(1)
	}
	return out, nil
}

// fingerFusionProtocol is the protocol of FingerFusionReport's reports.
const fingerFusionProtocol = "finger-fusion"

// FingerFusionReport is the report of identify --modality finger
// --fingers: the runs in FingerFusion, and the report's own identify and
// 1:1 fields from the first run (its mate scores against its searches'
// best non-mate scores).
func FingerFusionReport(mod Modality, ds DataSet, res IdentifyResult, runs []FingerFusion) Report {
	var genuine, impostor []float64
	if len(runs) > 0 {
		for _, o := range runs[0].searches {
			if o.Mated {
				genuine = append(genuine, o.MateScore)
			} else {
				impostor = append(impostor, o.TopNonMateScore)
			}
		}
	}
	r := newReport("identify", mod, ds, fingerFusionProtocol, genuine, impostor)
	r.FailedToEnrol = append(r.FailedToEnrol, res.FailedToEnrol...)
	r.FTEReasons = fteReasons(res.FailedToEnrol)
	r.ExtractP50MS, r.ExtractP95MS = percentiles(res.ExtractTimes)
	if n := res.Samples + len(res.FailedToEnrol); n > 0 {
		r.FTE = float64(len(res.FailedToEnrol)) / float64(res.Samples)
	}
	r.FingerFusion = runs
	if len(runs) > 0 {
		f := runs[0]
		r.Rank1, r.FNIRPoints, r.FNIRRank = f.Rank1, f.FNIRAtFPIR, 1
		r.CMC = errrate.CMC(f.searches, 20)
		r.FNIRAtFPIR = map[string]*float64{}
		for _, op := range f.FNIRAtFPIR {
			if op.Measurable {
				r.FNIRAtFPIR[fmtKey(op.Target)] = num(op.Rate)
			} else {
				r.FNIRAtFPIR[fmtKey(op.Target)] = nil
			}
		}
		r.FNIRCurve = thinCurve(errrate.FNIRCurve(f.searches, 1))
		r.GallerySize = f.Subjects + f.Distractors
		r.MatedSearches, r.NonMatedSearches = f.Mated, f.NonMated
	}
	return r
}

// fingerFusionMarkdown is the report.md section of the runs.
func fingerFusionMarkdown(p func(string, ...any), runs []FingerFusion) {
	p("## Fingers fused (through the finger index)\n\n")
	p("FNIR is at rank 1. EU EES asks for identification FNIR ≤ 1.5%% at FPIR 0.1%%. An FPIR below 3/(non-mated searches) is not measurable by the rule of three: the figure is then the rate at the highest non-mated score, shown in italics.\n\n")
	p("| fingers | subjects | distractors (synthetic) | templates | mated / non-mated searches | rank-1 | FNIR @ FPIR 1%% | FNIR @ FPIR 0.1%% | shortlist recall (kept / lost) | search | comparisons/s |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	at := func(ops []errrate.OperatingPoint, target float64) string {
		for _, op := range ops {
			if op.Target == target {
				if op.Measurable {
					return fmt.Sprintf("%s (thr %.4f)", pct(op.Rate), op.Threshold)
				}
				return fmt.Sprintf("*%s* (thr %.4f)", pct(op.Rate), op.Threshold)
			}
		}
		return "n/a"
	}
	for _, f := range runs {
		p("| %d | %d | %d (%d) | %d | %d / %d | %s | %s | %s | %s (%d / %d) | %.1f ms | %.0f |\n",
			f.Fingers, f.Subjects, f.Distractors, f.Synthetic, f.Templates, f.Mated, f.NonMated-f.NonMatedSynthetic, optPct(f.Rank1),
			at(f.FNIRAtFPIR, 0.01), at(f.FNIRAtFPIR, 0.001), optPct(f.ShortlistRecall), f.ShortlistKept, f.ShortlistLost, f.SearchMS, f.ComparisonsPerSecond)
	}
	if slices.ContainsFunc(runs, func(f FingerFusion) bool { return f.NonMatedSynthetic > 0 }) {
		p("\nWith synthetic non-mated searches (k synthetic fingers enrolled nowhere, `--non-mated`) added to the real ones, so that FPIR 0.1%% is measurable; synthetic strangers are not real ones (see the mean best non-mate scores below):\n\n")
		p("| fingers | non-mated searches (synthetic) | FNIR @ FPIR 1%% | FNIR @ FPIR 0.1%% |\n|---:|---:|---:|---:|\n")
		for _, f := range runs {
			p("| %d | %d (%d) | %s | %s |\n", f.Fingers, f.NonMated, f.NonMatedSynthetic, at(f.FNIRAtFPIRWithSynthetic, 0.01), at(f.FNIRAtFPIRWithSynthetic, 0.001))
		}
	}
	p("\nMean best non-mate score of a search: ")
	for i, f := range runs {
		if i > 0 {
			p("; ")
		}
		p("%d finger(s) %.4f (real distractors %.4f, synthetic %.4f)", f.Fingers, f.TopImpostor, f.TopRealImpostor, f.TopSyntheticImpostor)
	}
	p("\n\n")
	for _, f := range runs {
		if len(f.Misses) > 0 {
			p("Mated searches not at rank 1 with %d finger(s) (%d):\n\n", f.Fingers, len(f.Misses))
			for _, m := range f.Misses {
				p("- %s\n", m)
			}
			p("\n")
		}
	}
}
