package benchmarks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// modelDir is the folder of one model's report among several.
func modelDir(model string) string {
	return strings.Map(func(c rune) rune {
		if c == '/' || c == '\\' || c == ' ' || c == ':' {
			return '_'
		}
		return c
	}, strings.TrimSuffix(filepath.Base(model), ".json"))
}

// ModelComparison is models.json: the reports of several face models run
// on the same data, side by side.
type ModelComparison struct {
	Tool    string    `json:"tool"`
	Version string    `json:"version"`
	Command string    `json:"command"`
	Date    time.Time `json:"date"`
	DataSet DataSet   `json:"dataset"`
	Reports []Report  `json:"reports"`
}

// WriteModelComparison writes, into dir, report.md (one column per model:
// EER, FNMR at every reported FMR, FTE and its reasons, extraction time,
// and for identification rank-1 and FNIR at FPIR; then each model's
// quality bands), models.json (every model's whole report) and det.png
// (one DET curve per model). It returns report.md. Each model's own
// report is in dir/<model>/.
func WriteModelComparison(dir string, reports []Report) ([]byte, error) {
	if len(reports) == 0 {
		return nil, fmt.Errorf("benchmarks: no reports to compare")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	first := reports[0]
	var curves []DETCurve
	for _, r := range reports {
		curves = append(curves, DETCurve{Label: modelName(r), Points: r.DET, EER: deref(r.EER), Genuine: r.GenuineCount, Impostor: r.ImpostorCount})
	}
	title := fmt.Sprintf("DET by face model: %s %s", first.Command, defaultLabel(first.DataSet))
	if err := PlotDET(filepath.Join(dir, "det.png"), title, curves...); err != nil {
		return nil, fmt.Errorf("det.png: %w", err)
	}
	mc := ModelComparison{Tool: "bmbench", Version: toolVersion(), Command: first.Command,
		Date: time.Now().UTC().Truncate(time.Second), DataSet: first.DataSet, Reports: reports}
	b, err := json.MarshalIndent(mc, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "models.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	md := modelsMarkdown(reports)
	return md, os.WriteFile(filepath.Join(dir, "report.md"), md, 0o644)
}

// rateLabel is a target rate as a short percentage: "0.05%".
func rateLabel(v float64) string { return strconv.FormatFloat(100*v, 'f', -1, 64) + "%" }

func modelName(r Report) string {
	if r.Model != "" {
		return r.Model
	}
	return r.Algorithm
}

func modelsMarkdown(reports []Report) []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	first := reports[0]
	p("# bmbench %s by face model: %s\n\n", first.Command, defaultLabel(first.DataSet))
	p("Data: %s (%d samples of %d identities, SHA-256 `%s`); protocol %s; detector %s. Each model's full report is in its folder.\n\n",
		strings.Join(first.DataSet.Dirs, ", "), first.DataSet.Samples, first.DataSet.Identities, first.DataSet.SHA256, first.Protocol, first.Detector)
	p("| |")
	for _, r := range reports {
		p(" [%s](%s/report.md) |", modelName(r), modelDir(modelName(r)))
	}
	p("\n|---|")
	for range reports {
		p("---:|")
	}
	p("\n")
	row := func(name string, f func(r Report) string) {
		p("| %s |", name)
		for _, r := range reports {
			p(" %s |", f(r))
		}
		p("\n")
	}
	row("algorithm", func(r Report) string { return r.Algorithm })
	if first.Command == "identify" {
		row("gallery / mated / non-mated searches", func(r Report) string {
			return fmt.Sprintf("%d / %d / %d", r.GallerySize, r.MatedSearches, r.NonMatedSearches)
		})
		row("rank-1", func(r Report) string { return optPct(r.Rank1) })
		for i, fpir := range ReportFPIRs {
			row(fmt.Sprintf("FNIR at FPIR %s", rateLabel(fpir)), func(r Report) string {
				if i >= len(r.FNIRPoints) {
					return "n/a"
				}
				return short(r.FNIRPoints[i])
			})
		}
		row("FTA", func(r Report) string { return optPct(r.FTA) })
	}
	row("genuine / impostor comparisons", func(r Report) string { return fmt.Sprintf("%d / %d", r.GenuineCount, r.ImpostorCount) })
	row("EER", func(r Report) string { return optPct(r.EER) })
	for i, fmr := range ReportFMRs {
		row(fmt.Sprintf("FNMR at FMR %s", rateLabel(fmr)), func(r Report) string {
			if i >= len(r.OperatingPoints) {
				return "n/a"
			}
			op := r.OperatingPoints[i]
			if !op.Measurable {
				return "not measurable"
			}
			return fmt.Sprintf("%s (thr %.4f)", pct(op.Rate), op.Threshold)
		})
	}
	row("FTE", func(r Report) string { return fmt.Sprintf("%s: %s", pct(r.FTE), reasonsText(r.FTEReasons)) })
	row("extraction p50 / p95", func(r Report) string {
		return fmt.Sprintf("%.0f / %.0f ms", r.ExtractP50MS, r.ExtractP95MS)
	})
	p("\nExtraction times are per photo with %d extractions running at once (bmbench speed measures them one at a time). FMRs below 3/(impostor comparisons) are not measurable.\n\n![DET by model](det.png)\n\n", first.Workers)
	for _, r := range reports {
		if r.QualityBands == nil {
			continue
		}
		p("### %s: accuracy by quality band\n\n", modelName(r))
		q := r.QualityBands
		p("FNMR at threshold %.4f (global FMR %s; FNMR %s overall).\n\n", q.Threshold, rateLabel(q.FMRTarget), pct(q.FNMR))
		q.table(p)
	}
	return b.Bytes()
}
