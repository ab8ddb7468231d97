package benchmarks

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ScoreSets names the two score sets of PlotScores in its legend.
type ScoreSets struct{ Genuine, Impostor string }

// comparisons are PlotScores' usual sets.
var comparisons = ScoreSets{Genuine: "genuine comparisons", Impostor: "impostor comparisons"}

// PlotScores draws the genuine and impostor score distributions as
// densities (each histogram has unit area, so a set of a million impostor
// scores and one of a thousand genuine ones compare), overlaid and
// translucent, with a vertical line at threshold (none if it is NaN).
// The legend counts every score given, as the report counts comparisons;
// failed comparisons (-Inf, NaN) cannot be placed on the score axis, and
// the legend says how many are not drawn. Each set is binned on its own
// with the Freedman–Diaconis rule (10 to 200 bins). When every score is
// positive and they span a decade or more (a fingerprint matcher's, whose
// impostors crowd near zero), the score axis is logarithmic and the bins
// are even in log10 of the score. Written to path as an 800×600 PNG.
func PlotScores(path, title string, genuine, impostor []float64, threshold float64) error {
	p, err := scoresPlot(title, comparisons, genuine, impostor, threshold)
	if err != nil {
		return err
	}
	return savePNG(p, path)
}

func scoresPlot(title string, names ScoreSets, genuine, impostor []float64, threshold float64) (*plot.Plot, error) {
	g, gFailed := finiteSorted(genuine)
	im, iFailed := finiteSorted(impostor)
	if len(g) == 0 && len(im) == 0 {
		return nil, errors.New("benchmarks: PlotScores: no finite scores")
	}
	logX := logScores(g, im)
	x := func(v float64) float64 { return v }
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "Score (higher = more similar)"
	p.Y.Label.Text = "Density"
	p.X.Tick.Marker = niceTicks{}
	if logX {
		x = math.Log10
		p.X.Label.Text += ", log scale"
		p.Y.Label.Text = "Density (per decade of score)"
		p.X.Tick.Marker = logScoreTicks{}
		g, im = mapped(g, x), mapped(im, x)
	}
	p.Add(plotter.NewGrid())
	ymax, entries := 0.0, 0
	for _, set := range []struct {
		name   string
		s      []float64
		failed int
		colour color.NRGBA
	}{
		{names.Impostor, im, iFailed, color.NRGBA{R: 214, G: 39, B: 40, A: 255}},
		{names.Genuine, g, gFailed, color.NRGBA{R: 31, G: 119, B: 180, A: 255}},
	} {
		if len(set.s) == 0 {
			continue
		}
		h := density(set.s)
		for _, b := range h.Bins {
			ymax = math.Max(ymax, b.Weight)
		}
		// One filled outline, not a bar per bin: a bar per bin draws
		// seams between neighbours.
		poly, err := plotter.NewPolygon(envelope(h))
		if err != nil {
			return nil, fmt.Errorf("benchmarks: PlotScores: %s: %w", set.name, err)
		}
		fill := set.colour
		fill.A = 90
		poly.Color = fill
		poly.LineStyle = draw.LineStyle{Color: set.colour, Width: vg.Points(1.25)}
		p.Add(poly)
		label := fmt.Sprintf("%d %s", len(set.s)+set.failed, set.name)
		if set.failed > 0 {
			label += fmt.Sprintf(" (%d failed: no score to draw)", set.failed)
		}
		p.Legend.Add(label, poly)
		entries++
	}
	if !math.IsNaN(threshold) && (!logX || threshold > 0) {
		t := x(threshold)
		l, err := plotter.NewLine(plotter.XYs{{X: t, Y: 0}, {X: t, Y: ymax * 1.05}})
		if err != nil {
			return nil, fmt.Errorf("benchmarks: PlotScores: threshold %v: %w", threshold, err)
		}
		l.LineStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %.4g", threshold), l)
		entries++
	}
	p.Y.Min = 0
	if logX {
		// From a labelled value: an axis that starts just past one reads
		// as if it had no scale.
		p.X.Min = roundDown125(p.X.Min)
	}
	legendAbove(p, entries)
	return p, nil
}

// logScores reports whether sorted finite scores are better drawn on a
// log axis: all positive and spanning at least a decade.
func logScores(sets ...[]float64) bool {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range sets {
		if len(s) > 0 {
			lo, hi = math.Min(lo, s[0]), math.Max(hi, s[len(s)-1])
		}
	}
	return lo > 0 && hi >= 10*lo
}

// roundDown125 is log10 of the largest 1, 2 or 5 times a power of ten
// at or below 10^lg.
func roundDown125(lg float64) float64 {
	e := math.Floor(lg + 1e-9)
	for _, m := range []float64{5, 2, 1} {
		if v := e + math.Log10(m); v <= lg+1e-9 {
			return v
		}
	}
	return e
}

func mapped(s []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = f(v)
	}
	return out
}

// logScoreTicks label an axis of log10 scores with the scores: 1, 2 and
// 5 times each power of ten (only the powers past three decades), minor
// ticks at the other multiples.
type logScoreTicks struct{}

func (logScoreTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		for m := 1; m <= 9; m++ {
			v := e + math.Log10(float64(m))
			if v < lo-1e-9 || v > hi+1e-9 {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (hi-lo <= 3 && (m == 2 || m == 5)) {
				t.Label = strconv.FormatFloat(float64(m)*math.Pow(10, e), 'g', 6, 64)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// finiteSorted returns the finite scores of s, ascending, and how many
// were failures (-Inf, NaN). +Inf is not drawable either and counts as
// failed here.
func finiteSorted(s []float64) (out []float64, failed int) {
	out = make([]float64, 0, len(s))
	for _, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			failed++
			continue
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, failed
}

// density bins sorted finite scores into a unit-area histogram, bin width
// by the Freedman–Diaconis rule, 2·IQR/n^(1/3), held to 10..200 bins.
func density(s []float64) *plotter.Histogram {
	n := len(s)
	lo, hi := s[0], s[n-1]
	iqr := s[n*3/4] - s[n/4]
	bins := 10
	if hi > lo && iqr > 0 {
		w := 2 * iqr / math.Cbrt(float64(n))
		bins = min(200, max(10, int(math.Ceil((hi-lo)/w))))
	}
	if hi == lo { // one value: a narrow bar around it
		lo, hi = lo-0.005, hi+0.005
	}
	w := (hi - lo) / float64(bins)
	h := &plotter.Histogram{Width: w, Bins: make([]plotter.HistogramBin, bins)}
	for i := range h.Bins {
		h.Bins[i].Min, h.Bins[i].Max = lo+float64(i)*w, lo+float64(i+1)*w
	}
	for _, v := range s {
		i := min(bins-1, int((v-lo)/w))
		h.Bins[i].Weight++
	}
	for i := range h.Bins {
		h.Bins[i].Weight /= float64(n) * w
	}
	return h
}

// envelope is the outline of a histogram: a step line over its bars,
// from zero at the left end to zero at the right.
func envelope(h *plotter.Histogram) plotter.XYs {
	xy := make(plotter.XYs, 0, 2*len(h.Bins)+2)
	xy = append(xy, plotter.XY{X: h.Bins[0].Min})
	for _, b := range h.Bins {
		xy = append(xy, plotter.XY{X: b.Min, Y: b.Weight}, plotter.XY{X: b.Max, Y: b.Weight})
	}
	return append(xy, plotter.XY{X: h.Bins[len(h.Bins)-1].Max})
}

// niceTicks labels 5 to 10 round values (1, 2 or 5 times a power of ten
// apart) and marks minor ticks between them.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	decade := math.Pow(10, math.Floor(math.Log10(hi-lo)))
	// Major step: 0.1, 0.2, 0.5 or 1 decade, the finest with at most 10
	// labels; minor ticks split 1 and 5 into fifths, 2 into quarters.
	var step, minor float64
	for _, m := range []struct{ step, parts float64 }{{0.1, 5}, {0.2, 4}, {0.5, 5}, {1, 5}} {
		step, minor = m.step*decade, m.step*decade/m.parts
		if (hi-lo)/step <= 10 {
			break
		}
	}
	var ts []plot.Tick
	for k := math.Ceil(lo/minor - 1e-9); k*minor <= hi*(1+1e-12); k++ {
		t := plot.Tick{Value: k * minor}
		if r := k * minor / step; math.Abs(r-math.Round(r)) < 1e-6 {
			// 'g' with 10 digits drops the float noise of 3×0.1.
			t.Label = strconv.FormatFloat(math.Round(r)*step, 'g', 10, 64)
		}
		ts = append(ts, t)
	}
	return ts
}
