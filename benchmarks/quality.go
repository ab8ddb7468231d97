package benchmarks

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/templates"
)

// QualityFMR is the global FMR whose threshold the quality-band report
// applies to every band; when the data cannot measure it, the lowest
// measurable of ReportFMRs is used instead.
const QualityFMR = 0.001

// Quality bands: a genuine pair falls in the band of the worse of its two
// samples (the smaller inter-eye distance, the larger absolute yaw, a fallback
// detector if either needed one).
var (
	InterEyeBands = []float64{40, 60, 90} // px: <40, 40-60, 60-90, >=90
	YawBands      = []float64{10, 25}     // degrees: <10, 10-25, >=25
	hogDetector   = "hog"                 // the first pass; the others are fallbacks
	fallbackBand  = "fallback (hog-padded, hog-x2 or cnn)"
	qualityRule   = "A genuine pair falls in the band of the worse of its two samples: the smaller inter-eye distance, the larger absolute yaw, and \"fallback\" when either sample's face was found only by a fallback detector. Pairs with a sample that failed to enrol are in no band (they are non-matches at every threshold)."
	bandDims      = []string{"inter-eye distance (px)", "abs(yaw) (degrees)", "detector"}
	bandDimOrders = [][]string{
		{"<40", "40-60", "60-90", ">=90"},
		{"<10", "10-25", ">=25"},
		{hogDetector, fallbackBand},
	}
)

// QualityReport is FNMR per quality band of the genuine pairs, at one
// global threshold.
type QualityReport struct {
	Rule string `json:"rule"`
	// FMRTarget is the global FMR whose threshold is applied, Threshold
	// that threshold, FMR and FNMR the global rates there.
	FMRTarget float64 `json:"fmr_target"`
	Threshold float64 `json:"threshold"`
	FMR       float64 `json:"fmr"`
	FNMR      float64 `json:"fnmr"`
	// NoTemplate is the genuine pairs in no band: a sample failed to enrol.
	NoTemplate int           `json:"no_template_pairs"`
	Bands      []QualityBand `json:"bands"`
}

// QualityBand is one band's genuine pairs and FNMR.
type QualityBand struct {
	Dimension    string   `json:"dimension"`
	Band         string   `json:"band"`
	GenuineCount int      `json:"genuine_count"`
	FNMR         *float64 `json:"fnmr"` // null without genuine pairs
}

func bandOf(v float64, edges []float64, labels []string) string {
	for i, e := range edges {
		if v < e {
			return labels[i]
		}
	}
	return labels[len(edges)]
}

// pairBands is the band of each dimension for a pair of qualities.
func pairBands(a, b templates.FaceQuality) [3]string {
	eye := min(a.InterEyePixels, b.InterEyePixels)
	yaw := max(math.Abs(a.Yaw), math.Abs(b.Yaw))
	det := hogDetector
	if a.Detector != hogDetector || b.Detector != hogDetector {
		det = fallbackBand
	}
	return [3]string{bandOf(eye, InterEyeBands, bandDimOrders[0]), bandOf(yaw, YawBands, bandDimOrders[1]), det}
}

// qualityThreshold picks the operating point the bands are measured at:
// QualityFMR's when measurable, else the lowest measurable FMR.
func qualityThreshold(r Report) (errrate.OperatingPoint, bool) {
	var best errrate.OperatingPoint
	found := false
	for _, op := range r.OperatingPoints {
		if !op.Measurable || math.IsNaN(op.Threshold) {
			continue
		}
		if op.Target == QualityFMR {
			return op, true
		}
		if !found || op.Target < best.Target {
			best, found = op, true
		}
	}
	return best, found
}

// QualityBands measures FNMR per quality band of res's genuine pairs at
// r's threshold for QualityFMR (or the lowest measurable FMR). It is nil
// when no sample carries a face quality or no FMR is measurable.
func QualityBands(r Report, res VerifyResult) *QualityReport {
	if len(res.Quality) == 0 {
		return nil
	}
	op, ok := qualityThreshold(r)
	if !ok {
		return nil
	}
	q := &QualityReport{Rule: qualityRule, FMRTarget: op.Target, Threshold: op.Threshold, FMR: op.FMR, FNMR: op.Rate}
	scores := map[[2]string][]float64{}
	for k, p := range res.GenuinePairs {
		qa, qb := res.Quality[p.A], res.Quality[p.B]
		if qa == nil || qb == nil {
			q.NoTemplate++
			continue
		}
		for d, band := range pairBands(*qa, *qb) {
			key := [2]string{bandDims[d], band}
			scores[key] = append(scores[key], res.Genuine[k])
		}
	}
	for d, dim := range bandDims {
		for _, band := range bandDimOrders[d] {
			s := scores[[2]string{dim, band}]
			b := QualityBand{Dimension: dim, Band: band, GenuineCount: len(s)}
			if len(s) > 0 {
				b.FNMR = num(errrate.FNMR(s, op.Threshold))
			}
			q.Bands = append(q.Bands, b)
		}
	}
	return q
}

// markdown writes the quality-band section of report.md.
func (q *QualityReport) markdown(p func(string, ...any)) {
	p("## Accuracy by quality band\n\n")
	p("FNMR at the global threshold %.4f (FMR %s over all impostor pairs; there FNMR %s overall). %s\n\n",
		q.Threshold, rateLabel(q.FMRTarget), pct(q.FNMR), q.Rule)
	if q.FMRTarget != QualityFMR {
		p("FMR %s is not measurable on this data; the lowest measurable, %s, is used.\n\n", rateLabel(QualityFMR), rateLabel(q.FMRTarget))
	}
	q.table(p)
}

// table writes the bands as a markdown table (report.md, and the
// side-by-side report of several models).
func (q *QualityReport) table(p func(string, ...any)) {
	p("| quality | band | genuine pairs | FNMR |\n|---|---|---:|---:|\n")
	for _, b := range q.Bands {
		p("| %s | %s | %d | %s |\n", b.Dimension, b.Band, b.GenuineCount, optPct(b.FNMR))
	}
	if q.NoTemplate > 0 {
		p("| (a sample failed to enrol) | none | %d | 100%% |\n", q.NoTemplate)
	}
	p("\n")
}

// fteReasons counts failures by kind.
func fteReasons(fs []Failure) map[string]int {
	if len(fs) == 0 {
		return nil
	}
	m := map[string]int{}
	for _, f := range fs {
		k := f.Kind
		if k == "" {
			k = "other"
		}
		m[k]++
	}
	return m
}

// reasonsText is "3 (2 no face found, 1 several faces)".
func reasonsText(m map[string]int) string {
	n := 0
	keys := make([]string, 0, len(m))
	for k, v := range m {
		n += v
		keys = append(keys, k)
	}
	if n == 0 {
		return "0"
	}
	slices.Sort(keys)
	s := fmt.Sprintf("%d (", n)
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", m[k], k)
	}
	return s + ")"
}

// percentiles are the p50 and p95 of ts in milliseconds (0 for none).
func percentiles(ts []time.Duration) (p50, p95 float64) {
	if len(ts) == 0 {
		return 0, 0
	}
	s := slices.Clone(ts)
	slices.Sort(s)
	return ms(s[len(s)/2]), ms(s[min(len(s)-1, len(s)*95/100)])
}
