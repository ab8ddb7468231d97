package benchmarks

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

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

// DETCurve is one system's DET curve for PlotDET, or its FNIR-against-FPIR
// curve for PlotFNIR.
type DETCurve struct {
	Label  string
	Points []errrate.DETPoint
	EER    float64 // NaN: no EER marked
	// Genuine and Impostor are how many comparisons the rates were
	// measured on (for PlotFNIR, mated and non-mated searches): a rate
	// below 3/N of them cannot be told from zero (the rule of three), so
	// the curve stops there.
	Genuine, Impostor int
}

// tradeoff names the axes and the counts of a DET-like plot.
type tradeoff struct {
	x, y string // axis labels
	// counts says what a curve's Genuine and Impostor count.
	counts func(genuine, impostor int) string
}

var (
	detAxes = tradeoff{x: "False match rate (FMR)", y: "False non-match rate (FNMR)",
		counts: func(g, i int) string { return fmt.Sprintf("%d genuine, %d impostor comparisons", g, i) }}
	fnirAxes = tradeoff{x: "False positive identification rate (FPIR)", y: "False negative identification rate (FNIR)",
		counts: func(g, i int) string { return fmt.Sprintf("%d mated, %d non-mated searches", g, i) }}
)

// curveStyle gives curve i a colour and dash pattern that stay apart in
// print too.
func curveStyle(i int) draw.LineStyle {
	return draw.LineStyle{Color: plotutil.DarkColors[i%len(plotutil.DarkColors)], Width: vg.Points(1.5),
		Dashes: plotutil.Dashes(i / len(plotutil.DarkColors))}
}

// ruleOfThree is the lowest rate n trials measure: 3/n (1 for none).
func ruleOfThree(n int) float64 { return math.Min(1, 3/float64(max(1, n))) }

// MeasurableDET is the part of a DET curve both of whose rates can be
// told from zero: FMR >= 3/impostor and FNMR >= 3/genuine. Below that the
// curve's steps are one or two comparisons each, and a curve drawn on to
// zero would be an extrapolation.
func MeasurableDET(p []errrate.DETPoint, genuine, impostor int) []errrate.DETPoint {
	// The tolerance absorbs 3/n against k/n rounding apart.
	fmrMin, fnmrMin := ruleOfThree(impostor)*(1-1e-9), ruleOfThree(genuine)*(1-1e-9)
	var out []errrate.DETPoint
	for _, q := range p {
		if q.FMR >= fmrMin && q.FNMR >= fnmrMin {
			out = append(out, q)
		}
	}
	return out
}

// drawn is the part of the curve a plot draws: the measurable part,
// thinned.
func (c DETCurve) drawn() []errrate.DETPoint {
	return ThinDET(MeasurableDET(c.Points, c.Genuine, c.Impostor), detMaxPoints)
}

// PlotDET draws DET curves as FVC and NIST draw them: FNMR against FMR,
// both axes log-scaled, one colour and legend entry per curve, so several
// runs compare on one plot. Each curve is drawn where its rates are
// measurable (MeasurableDET) and its legend entry says how many
// comparisons it was measured on; each axis runs from 1 down to the
// largest power of ten at or below the lowest measurable rate of any
// curve on it. Each EER is marked with a dot on the dotted FMR = FNMR
// diagonal and quoted in the legend (not marked when it is below what the
// curve can measure). Curves are thinned with ThinDET, so millions of
// points plot quickly. The plot is written to path as an 800×600 PNG.
func PlotDET(path, title string, curves ...DETCurve) error {
	p, err := tradeoffPlot(detAxes, title, curves)
	if err != nil {
		return err
	}
	return savePNG(p, path)
}

// PlotFNIR draws open-set identification curves, NIST FRTE's
// "DET" for 1:N: FNIR against FPIR on log axes, each curve over its
// mated (Genuine) and non-mated (Impostor) searches, drawn where both
// rates are measurable, as PlotDET draws.
func PlotFNIR(path, title string, curves ...DETCurve) error {
	p, err := tradeoffPlot(fnirAxes, title, curves)
	if err != nil {
		return err
	}
	return savePNG(p, path)
}

// tradeoffPlot is PlotDET's and PlotFNIR's plot.
func tradeoffPlot(ax tradeoff, title string, curves []DETCurve) (*plot.Plot, error) {
	if len(curves) == 0 {
		return nil, errors.New("benchmarks: PlotDET: no curves")
	}
	xmin, ymin := 1.0, 1.0
	for _, c := range curves {
		if len(c.Points) == 0 {
			return nil, fmt.Errorf("benchmarks: PlotDET: curve %q has no points", c.Label)
		}
		if c.Genuine <= 0 || c.Impostor <= 0 {
			return nil, fmt.Errorf("benchmarks: PlotDET: curve %q: no comparison counts (genuine %d, impostor %d)", c.Label, c.Genuine, c.Impostor)
		}
		xmin, ymin = math.Min(xmin, ruleOfThree(c.Impostor)), math.Min(ymin, ruleOfThree(c.Genuine))
	}
	xmin, ymin = decadeBelow(xmin), decadeBelow(ymin)
	// The axes are linear in log10 of the rate, labelled as rates:
	// gonum's plot.LogScale pads the plot by the axis labels' boxes placed
	// at the linear midpoint of the range, which on a log axis leaves a
	// blank band at the top and right.
	lg := func(v, lo float64) float64 { return math.Log10(math.Min(1, math.Max(v, lo))) }

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = ax.x
	p.Y.Label.Text = ax.y
	p.X.Tick.Marker, p.Y.Tick.Marker = logTicks(xmin), logTicks(ymin)
	p.Add(plotter.NewGrid())

	// The diagonal FMR = FNMR, on which every EER lies.
	lo := math.Max(xmin, ymin)
	diag, err := plotter.NewLine(plotter.XYs{{X: math.Log10(lo), Y: math.Log10(lo)}, {X: 0, Y: 0}})
	if err != nil {
		return nil, err
	}
	diag.LineStyle = draw.LineStyle{Color: color.Gray{Y: 150}, Width: vg.Points(0.75), Dashes: []vg.Length{vg.Points(2), vg.Points(3)}}
	p.Add(diag)

	for i, c := range curves {
		pts := c.drawn()
		xy := make(plotter.XYs, len(pts))
		for k, q := range pts {
			xy[k] = plotter.XY{X: lg(q.FMR, xmin), Y: lg(q.FNMR, ymin)}
		}
		l := &plotter.Line{XYs: xy, LineStyle: curveStyle(i)}
		p.Add(l)
		label := c.Label + ": " + ax.counts(c.Genuine, c.Impostor)
		if len(pts) == 0 {
			label += ", no point with both rates at or above 3/N"
		}
		if !math.IsNaN(c.EER) {
			label = fmt.Sprintf("%s (EER %s)", label, pct(c.EER))
			if c.EER >= ruleOfThree(c.Impostor) && c.EER >= ruleOfThree(c.Genuine) {
				e := math.Log10(c.EER)
				s, err := plotter.NewScatter(plotter.XYs{{X: e, Y: e}})
				if err != nil {
					return nil, err
				}
				s.GlyphStyle = draw.GlyphStyle{Color: l.LineStyle.Color, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
				p.Add(s)
			} else {
				label = strings.TrimSuffix(label, ")") + ", below 3/N: not marked)"
			}
		}
		p.Legend.Add(label, l)
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = math.Log10(xmin), 0, math.Log10(ymin), 0
	legendAbove(p, len(curves))
	return p, nil
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
	p.Legend.XOffs = -legendMargin
}

// legendMargin keeps a right-aligned legend's symbols off the image's
// edge, where they were cut off.
const legendMargin = vg.Length(6)

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

// render draws p at plotWidth×plotHeight pixels.
func render(p *plot.Plot) *vgimg.Canvas {
	const inch = float64(vg.Inch)
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(plotWidth*inch/plotDPI), vg.Length(plotHeight*inch/plotDPI)), vgimg.UseDPI(plotDPI))
	p.Draw(draw.New(c))
	return c
}

// savePNG renders p and writes it to path as a PNG.
func savePNG(p *plot.Plot, path string) error {
	c := render(p)
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
