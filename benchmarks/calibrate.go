package benchmarks

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bordermatch/bordermatch/matcher"
)

// Calibration makes the threshold table matchd loads (--face-calibration,
// --finger-calibration) from
// a verification run: the FMR measured on its impostor scores at every
// score. A table is only as good as the data it was measured on: the
// population, the capture conditions and the number of impostor
// comparisons (an FMR below 3/N of them is not measurable, and matchd
// refuses a target below it).
func Calibration(r Report, impostor []float64) matcher.Calibration {
	c := matcher.NewCalibration(finite(impostor))
	c.Modality = r.Modality
	c.Algorithm = r.Algorithm
	c.GenuineCount = r.GenuineCount
	if len(r.genuine) == r.GenuineCount {
		// The genuine scores give fusion its likelihood ratios (engine/
		// fusion.go); a table without them counts its modality's as 1.
		c.SetGenuine(r.genuine)
	}
	c.DataSet = fmt.Sprintf("%s (%d samples of %d identities, layout %s, protocol %s, sha256 %s)",
		strings.Join(r.DataSet.Dirs, ", "), r.DataSet.Samples, r.DataSet.Identities, r.DataSet.Layout, r.Protocol, r.DataSet.SHA256)
	c.Created = r.Date
	c.Note = fmt.Sprintf("FMR measured on %d impostor comparisons of the data set above, by bmbench %s: valid for that population and capture only; recalibrate on your own travellers.",
		c.ImpostorCount, r.Version)
	return c
}

// borderFMR is the target FMR suggested when a calibration measures it:
// the usual operating point of automated border control gates (Frontex's
// best practice for 1:1 verification).
const borderFMR = 0.001

// SuggestedFMR is a target FMR for a calibration of impostors impostor
// comparisons that it can measure (>= 3/impostors, the rule of three):
// borderFMR when it can, else the smallest of 1, 2 or 5 times a power of
// ten that it can. 0 when it measures none below 1.
func SuggestedFMR(impostors int) float64 {
	if impostors <= 0 {
		return 0
	}
	lowest := 3 / float64(impostors) * (1 - 1e-9) // as matcher's measurableFMR rounds
	if lowest <= borderFMR {
		return borderFMR
	}
	e := math.Floor(math.Log10(lowest))
	for _, m := range []float64{1, 2, 5, 10} {
		// Parsed from its decimal form, as a user will type it.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(m*math.Pow(10, e), 'g', 6, 64), 64)
		if v >= lowest && v < 1 {
			return v
		}
	}
	return 0
}

// ImpostorScores returns the raw impostor scores of a report made in this run.
func (r Report) ImpostorScores() []float64 { return r.impostor }

// WriteCalibration writes calibration.json into dir and returns its path.
func WriteCalibration(dir string, c matcher.Calibration) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "calibration.json")
	return path, c.WriteFile(path)
}

// Compare draws the DET curves of several reports on one plot (det.png in
// dir) and writes compare.md, a table of their figures side by side, which
// it also returns.
func Compare(dir string, reports []Report) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var curves []DETCurve
	for _, r := range reports {
		curves = append(curves, DETCurve{Label: r.Label, Points: r.DET, EER: deref(r.EER), Genuine: r.GenuineCount, Impostor: r.ImpostorCount})
	}
	if err := PlotDET(filepath.Join(dir, "det.png"), "DET comparison", curves...); err != nil {
		return nil, fmt.Errorf("det.png: %w", err)
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# bmbench compare\n\n| run | modality | algorithm | command | protocol | genuine | impostor | FTE | EER |")
	for _, fmr := range ReportFMRs {
		p(" FNMR@FMR=%s |", fmtKey(fmr))
	}
	p(" rank-1 |\n|---|---|---|---|---|---|---|---|---|")
	for range ReportFMRs {
		p("---|")
	}
	p("---|\n")
	for _, r := range reports {
		p("| %s | %s | %s | %s | %s | %d | %d | %s | %s |", r.Label, r.Modality, r.Algorithm, r.Command, r.Protocol,
			r.GenuineCount, r.ImpostorCount, pct(r.FTE), optPct(r.EER))
		for _, fmr := range ReportFMRs {
			p(" %s |", optPct(r.FNMRAtFMR[fmtKey(fmr)]))
		}
		p(" %s |\n", optPct(r.Rank1))
	}
	p("\n![DET curves](det.png)\n\n")
	hashes := map[string]bool{}
	for _, r := range reports {
		hashes[r.DataSet.SHA256] = true
	}
	if len(hashes) > 1 {
		p("The runs were measured on different data (their data set hashes differ): compare the curves' shapes, not their exact values.\n")
	}
	out := []byte(b.String())
	return out, os.WriteFile(filepath.Join(dir, "compare.md"), out, 0o644)
}
