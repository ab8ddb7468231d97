package benchmarks

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// Plot size: 800×600 pixels at vgimg's 96 dpi.
const (
	plotDPI    = 96
	plotWidth  = 800
	plotHeight = 600
	// detMaxPoints bounds the points drawn per DET curve (see ThinDET):
	// far more than an 800-pixel plot can show, far fewer than the
	// millions of thresholds of a large evaluation.
	detMaxPoints = 2000
)

// DETCurve is one system's DET curve for PlotDET.
type DETCurve struct {
	Label  string
	Points []errrate.DETPoint
	EER    float64 // NaN: no EER marked
}

// curveStyle gives curve i a colour and dash pattern that stay apart in
// print too.
func curveStyle(i int) draw.LineStyle {
	return draw.LineStyle{Color: plotutil.DarkColors[i%len(plotutil.DarkColors)], Width: vg.Points(1.5),
		Dashes: plotutil.Dashes(i / len(plotutil.DarkColors))}
}

// PlotDET draws DET curves as FVC and NIST draw them: FNMR against FMR,
// both axes log-scaled, one colour and legend entry per curve, so several
// runs compare on one plot. Each axis runs from 1 down to the largest power
// of ten at or below the smallest non-zero rate of any curve on it (the
// smallest rate the data can measure, 1/N or so); a zero rate, which a log
// axis cannot show, is drawn at that edge. Each EER is marked with a dot
// on the dotted FMR = FNMR diagonal and quoted in the legend. Curves are
// thinned with ThinDET, so millions of points plot quickly. The plot is
// written to path as an 800×600 PNG.
func PlotDET(path, title string, curves ...DETCurve) error {
	if len(curves) == 0 {
		return errors.New("benchmarks: PlotDET: no curves")
	}
	xmin, ymin := 1.0, 1.0
	for _, c := range curves {
		if len(c.Points) == 0 {
			return fmt.Errorf("benchmarks: PlotDET: curve %q has no points", c.Label)
		}
		for _, q := range c.Points {
			if q.FMR > 0 {
				xmin = math.Min(xmin, q.FMR)
			}
			if q.FNMR > 0 {
				ymin = math.Min(ymin, q.FNMR)
			}
		}
	}
	xmin, ymin = decadeBelow(xmin), decadeBelow(ymin)
	// The axes are linear in log10 of the rate, labelled as rates:
	// gonum's plot.LogScale pads the plot by the axis labels' boxes placed
	// at the linear midpoint of the range, which on a log axis leaves a
	// blank band at the top and right.
	lg := func(v, lo float64) float64 { return math.Log10(math.Min(1, math.Max(v, lo))) }

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "False match rate (FMR)"
	p.Y.Label.Text = "False non-match rate (FNMR)"
	p.X.Tick.Marker, p.Y.Tick.Marker = logTicks(xmin), logTicks(ymin)
	p.Add(plotter.NewGrid())

	// The diagonal FMR = FNMR, on which every EER lies.
	lo := math.Max(xmin, ymin)
	diag, err := plotter.NewLine(plotter.XYs{{X: math.Log10(lo), Y: math.Log10(lo)}, {X: 0, Y: 0}})
	if err != nil {
		return err
	}
	diag.LineStyle = draw.LineStyle{Color: color.Gray{Y: 150}, Width: vg.Points(0.75), Dashes: []vg.Length{vg.Points(2), vg.Points(3)}}
	p.Add(diag)

	for i, c := range curves {
		pts := ThinDET(c.Points, detMaxPoints)
		xy := make(plotter.XYs, len(pts))
		for k, q := range pts {
			xy[k] = plotter.XY{X: lg(q.FMR, xmin), Y: lg(q.FNMR, ymin)}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("benchmarks: PlotDET: curve %q: %w", c.Label, err)
		}
		l.LineStyle = curveStyle(i)
		p.Add(l)
		label := c.Label
		if !math.IsNaN(c.EER) {
			e := lg(c.EER, math.Max(xmin, ymin))
			s, err := plotter.NewScatter(plotter.XYs{{X: e, Y: e}})
			if err != nil {
				return err
			}
			s.GlyphStyle = draw.GlyphStyle{Color: l.LineStyle.Color, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
			p.Add(s)
			label = fmt.Sprintf("%s (EER %s)", c.Label, percent(c.EER))
		}
		p.Legend.Add(label, l)
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = math.Log10(xmin), 0, math.Log10(ymin), 0
	legendAbove(p, len(curves))
	return savePNG(p, path)
}

// legendAbove puts the legend in a band of its own between the title and
// the axes, right-aligned: a DET curve can pass through any corner of the
// axes, so no place inside them is safe from hiding it.
func legendAbove(p *plot.Plot, entries int) {
	n := vg.Length(entries)
	h := n*p.Legend.TextStyle.FontExtents().Height + (n-1)*p.Legend.Padding
	p.Title.Padding += h + vg.Points(6)
	p.Legend.Top = true
	p.Legend.YOffs = h + vg.Points(3)
}

// decadeBelow is the largest power of ten <= v, for 0 < v <= 1.
func decadeBelow(v float64) float64 {
	d := math.Pow(10, math.Floor(math.Log10(v)+1e-9))
	return math.Min(d, 0.1) // at least one decade on the axis
}

// logTicks labels every power of ten from lo to 1 as a percentage and
// marks 2..9 times each as minor ticks, on an axis of log10 rates.
func logTicks(lo float64) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for e := int(math.Round(math.Log10(lo))); e <= 0; e++ {
		ts = append(ts, plot.Tick{Value: float64(e), Label: decadePercent(e)})
		if e < 0 {
			for m := 2; m <= 9; m++ {
				ts = append(ts, plot.Tick{Value: float64(e) + math.Log10(float64(m))})
			}
		}
	}
	return ts
}

// decadePercent writes 10^e as a percentage: 0.01%, 0.1%, 1%, 10%, 100%.
func decadePercent(e int) string {
	if e >= -2 {
		return fmt.Sprintf("%.0f%%", math.Pow(10, float64(e+2)))
	}
	return fmt.Sprintf("%.*f%%", -(e + 2), math.Pow(10, float64(e+2)))
}

// percent formats a rate for a legend.
func percent(r float64) string {
	switch {
	case r == 0:
		return "0%"
	case r < 0.001:
		return fmt.Sprintf("%.3g%%", 100*r)
	}
	return fmt.Sprintf("%.2f%%", 100*r)
}

// PlotScores draws the genuine and impostor score distributions as
// densities (each histogram has unit area, so a set of a million impostor
// scores and one of a thousand genuine ones compare), overlaid and
// translucent, with a vertical line at threshold (none if it is NaN).
// Failed comparisons (-Inf, NaN) cannot be placed on the score axis: the
// legend counts them. Each set is binned on its own with the
// Freedman–Diaconis rule (10 to 200 bins). Written to path as an 800×600
// PNG.
func PlotScores(path, title string, genuine, impostor []float64, threshold float64) error {
	g, gFailed := finiteSorted(genuine)
	im, iFailed := finiteSorted(impostor)
	if len(g) == 0 && len(im) == 0 {
		return errors.New("benchmarks: PlotScores: no finite scores")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "Score (higher = more similar)"
	p.Y.Label.Text = "Density"
	p.Add(plotter.NewGrid())
	ymax, entries := 0.0, 0
	for _, set := range []struct {
		name   string
		s      []float64
		failed int
		colour color.NRGBA
	}{
		{"impostor", im, iFailed, color.NRGBA{R: 214, G: 39, B: 40, A: 255}},
		{"genuine", g, gFailed, color.NRGBA{R: 31, G: 119, B: 180, A: 255}},
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
			return fmt.Errorf("benchmarks: PlotScores: %s: %w", set.name, err)
		}
		fill := set.colour
		fill.A = 90
		poly.Color = fill
		poly.LineStyle = draw.LineStyle{Color: set.colour, Width: vg.Points(1.25)}
		p.Add(poly)
		label := fmt.Sprintf("%s: %d score%s", set.name, len(set.s), map[bool]string{true: "s"}[len(set.s) != 1])
		if set.failed > 0 {
			label += fmt.Sprintf(", %d failed (not drawn)", set.failed)
		}
		p.Legend.Add(label, poly)
		entries++
	}
	if !math.IsNaN(threshold) {
		l, err := plotter.NewLine(plotter.XYs{{X: threshold, Y: 0}, {X: threshold, Y: ymax * 1.05}})
		if err != nil {
			return fmt.Errorf("benchmarks: PlotScores: threshold %v: %w", threshold, err)
		}
		l.LineStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %.4g", threshold), l)
		entries++
	}
	p.Y.Min = 0
	p.X.Tick.Marker = niceTicks{}
	legendAbove(p, entries)
	return savePNG(p, path)
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

// CMCCurve is one system's cumulative match characteristic for PlotCMC:
// Rates[r-1] is the identification rate at rank r.
type CMCCurve struct {
	Label string
	Rates []float64
}

// PlotCMC draws CMC curves: rank 1..len(Rates) on x, identification rate
// on y (from 1 down to the next 10% below the lowest rate), one colour and
// legend entry (quoting rank 1) per curve. Written to path as an 800×600
// PNG.
func PlotCMC(path, title string, curves ...CMCCurve) error {
	if len(curves) == 0 {
		return errors.New("benchmarks: PlotCMC: no curves")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "Rank"
	p.Y.Label.Text = "Identification rate"
	p.Add(plotter.NewGrid())
	lowest, ranks := 1.0, 0
	for i, c := range curves {
		if len(c.Rates) == 0 {
			return fmt.Errorf("benchmarks: PlotCMC: curve %q has no ranks", c.Label)
		}
		xy := make(plotter.XYs, 0, len(c.Rates))
		for r, v := range c.Rates {
			if math.IsNaN(v) {
				return fmt.Errorf("benchmarks: PlotCMC: curve %q: rate at rank %d is NaN (no mated searches?)", c.Label, r+1)
			}
			xy = append(xy, plotter.XY{X: float64(r + 1), Y: v})
			lowest = math.Min(lowest, v)
		}
		ranks = max(ranks, len(c.Rates))
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("benchmarks: PlotCMC: curve %q: %w", c.Label, err)
		}
		l.LineStyle = curveStyle(i)
		s.GlyphStyle = draw.GlyphStyle{Color: l.LineStyle.Color, Radius: vg.Points(2.5), Shape: plotutil.Shape(i)}
		p.Add(l, s)
		p.Legend.Add(fmt.Sprintf("%s (rank 1: %s)", c.Label, percent(c.Rates[0])), l, s)
	}
	var ticks plot.ConstantTicks
	step := max(1, (ranks+19)/20)
	for r := 1; r <= ranks; r++ {
		t := plot.Tick{Value: float64(r)}
		if r == 1 || r%step == 0 {
			t.Label = fmt.Sprint(r)
		}
		ticks = append(ticks, t)
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, niceTicks{}
	p.X.Min, p.X.Max = 0.5, float64(ranks)+0.5
	p.Y.Min, p.Y.Max = math.Max(0, math.Floor(lowest*10-1e-9)/10), 1
	if p.Y.Min == 1 {
		p.Y.Min = 0.9
	}
	p.Y.Max = 1 + 0.02*(1-p.Y.Min) // headroom: a curve at 100% stays clear of the title
	p.Legend.Top = false           // bottom right: CMC curves rise to the top right
	return savePNG(p, path)
}

// savePNG renders p at plotWidth×plotHeight pixels and writes it to path.
func savePNG(p *plot.Plot, path string) error {
	const inch = float64(vg.Inch)
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(plotWidth*inch/plotDPI), vg.Length(plotHeight*inch/plotDPI)), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("benchmarks: plot: %w", err)
	}
	_, err = vgimg.PngCanvas{Canvas: c}.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("benchmarks: plot %s: %w", path, err)
	}
	return nil
}
