package benchmarks

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CMCCurve is one system's cumulative match characteristic for PlotCMC:
// Rates[r-1] is the identification rate at rank r, over Searches mated
// searches.
type CMCCurve struct {
	Label    string
	Rates    []float64
	Searches int
}

// PlotCMC draws CMC curves: rank 1..len(Rates) on x, identification rate
// in percent on y (from 100% down to the next 10% below the lowest rate),
// one colour and legend entry (its mated searches and rank 1, as the
// report writes them) per curve. Written to path as an 800×600 PNG.
func PlotCMC(path, title string, curves ...CMCCurve) error {
	p, err := cmcPlot(title, curves)
	if err != nil {
		return err
	}
	return savePNG(p, path)
}

func cmcPlot(title string, curves []CMCCurve) (*plot.Plot, error) {
	if len(curves) == 0 {
		return nil, errors.New("benchmarks: PlotCMC: no curves")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "Rank"
	p.Y.Label.Text = "Identification rate"
	p.Add(plotter.NewGrid())
	lowest, ranks := 1.0, 0
	for i, c := range curves {
		if len(c.Rates) == 0 {
			return nil, fmt.Errorf("benchmarks: PlotCMC: curve %q has no ranks", c.Label)
		}
		xy := make(plotter.XYs, 0, len(c.Rates))
		for r, v := range c.Rates {
			if math.IsNaN(v) {
				return nil, fmt.Errorf("benchmarks: PlotCMC: curve %q: rate at rank %d is NaN (no mated searches?)", c.Label, r+1)
			}
			xy = append(xy, plotter.XY{X: float64(r + 1), Y: 100 * v})
			lowest = math.Min(lowest, v)
		}
		ranks = max(ranks, len(c.Rates))
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, fmt.Errorf("benchmarks: PlotCMC: curve %q: %w", c.Label, err)
		}
		l.LineStyle = curveStyle(i)
		s.GlyphStyle = draw.GlyphStyle{Color: l.LineStyle.Color, Radius: vg.Points(2.5), Shape: plotutil.Shape(i)}
		p.Add(l, s)
		label := fmt.Sprintf("%s (rank 1: %s)", c.Label, pct(c.Rates[0]))
		if c.Searches > 0 {
			label = fmt.Sprintf("%s: %d mated searches (rank 1: %s)", c.Label, c.Searches, pct(c.Rates[0]))
		}
		p.Legend.Add(label, l, s)
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
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, percentTicks{}
	p.X.Min, p.X.Max = 0.5, float64(ranks)+0.5
	ymin := math.Max(0, math.Floor(lowest*10-1e-9)/10)
	if ymin == 1 {
		ymin = 0.9
	}
	// Headroom: a curve at 100% stays clear of the title.
	p.Y.Min, p.Y.Max = 100*ymin, 100*(1+0.02*(1-ymin))
	p.Legend.Top = false // bottom right: CMC curves rise to the top right
	p.Legend.XOffs = -legendMargin
	return p, nil
}

// percentTicks are niceTicks on an axis of percentages, labelled "95%".
type percentTicks struct{}

func (percentTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := niceTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label += "%"
		}
	}
	return ts
}
