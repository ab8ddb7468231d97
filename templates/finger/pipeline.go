package finger

import (
	"context"
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// pipeline holds the working state of one extraction; it is not shared.
type pipeline struct {
	e       *Extractor
	cfg     Config
	w, h    int
	dpi     int
	scale   float64 // dpi / 500
	pxPerMM float64
	g       []float32

	// Block grid: block (bx, by) is centred on blockCentre(bx, by).
	step, win, bw, bh int
	va, vb            []float32 // raw doubled-angle gradient vectors (unit × coherence)
	coh               []float32 // raw coherence
	mean, contrast    []float32
	fg                []bool
	sa, sb            []float32 // smoothed doubled-angle vectors
	consist           []float32 // their consistency (0–1)
	period            []float32
	rawPeriod         []float32 // the x-signature's period, 0 where unclean
	validFreq         float64

	// Pixel fields.
	mask  []bool
	dist  []float32 // distance to the background, pixels
	norm  []float32 // locally normalised grey, ridges positive
	ridge []bool
	clar  float64   // mean Gabor response magnitude over the foreground
	bclar []float32 // per block: mean Gabor response magnitude / clar
	skel  []uint8

	removedBy [removalCount]int
}

func newPipeline(e *Extractor, img *image.Gray, dpi int) *pipeline {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	p := &pipeline{e: e, cfg: e.cfg, w: w, h: h, dpi: dpi, scale: float64(dpi) / 500, pxPerMM: float64(dpi) / 25.4}
	p.g = make([]float32, w*h)
	for y := range h {
		o := img.PixOffset(b.Min.X, b.Min.Y+y)
		row := img.Pix[o : o+w]
		for x, v := range row {
			p.g[y*w+x] = float32(v)
		}
	}
	p.step = max(4, int(math.Round(float64(p.cfg.BlockStep)*p.scale)))
	p.win = max(8, int(math.Round(float64(p.cfg.OrientationWindow)*p.scale)))
	p.bw = (w + p.step - 1) / p.step
	p.bh = (h + p.step - 1) / p.step
	return p
}

func (p *pipeline) blockCentre(bx, by int) (int, int) {
	return bx*p.step + p.step/2, by*p.step + p.step/2
}

// run runs the stages in order, checking ctx between them: each stage of a
// large image takes up to seconds, and a caller that gave up should not
// pay for the rest.
func (p *pipeline) run(ctx context.Context) (Result, error) {
	p.blockFields()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if !p.segment() {
		return Result{}, fmt.Errorf("%w: no ridge area", ErrNoFingerprint)
	}
	p.smoothOrientation()
	p.pixelMask()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p.normalise()
	if !p.frequency() {
		return Result{}, fmt.Errorf("%w: no ridge frequency", ErrNoFingerprint)
	}
	if p.peelEdge(1) {
		p.pixelMask()
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p.enhance()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p.cleanRidges()
	p.skel = thin(p.ridge, p.w, p.h)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	ms, removed := p.minutiae()
	res := Result{
		View: minutiae.View{
			Width: p.w, Height: p.h, DPI: p.dpi,
			Minutiae: ms,
		},
		Removed: removed,
	}
	p.quality(&res)
	res.View.Quality = uint8(res.Quality)
	return res, nil
}

// pixelMask interpolates the block mask to pixels and computes each
// pixel's distance to the background (3-4 chamfer).
func (p *pipeline) pixelMask() {
	nb := p.bw * p.bh
	f := make([]float32, nb)
	for k := range nb {
		if p.fg[k] {
			f[k] = 1
		}
	}
	p.mask = make([]bool, p.w*p.h)
	for y := range p.h {
		for x := range p.w {
			p.mask[y*p.w+x] = p.bilinear(f, x, y) >= 0.5
		}
	}
	p.dist = chamfer(p.mask, p.w, p.h)
}

// chamfer returns each pixel's distance to the nearest background pixel,
// the image edge counting as background.
func chamfer(m []bool, w, h int) []float32 {
	const inf = 1 << 30
	d := make([]int32, w*h)
	for i := range d {
		if m[i] {
			d[i] = inf
		}
	}
	at := func(x, y int) int32 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return d[y*w+x]
	}
	for y := range h {
		for x := range w {
			i := y*w + x
			if d[i] == 0 {
				continue
			}
			v := d[i]
			v = min(v, at(x-1, y)+3, at(x, y-1)+3, at(x-1, y-1)+4, at(x+1, y-1)+4)
			d[i] = v
		}
	}
	for y := h - 1; y >= 0; y-- {
		for x := w - 1; x >= 0; x-- {
			i := y*w + x
			if d[i] == 0 {
				continue
			}
			v := d[i]
			v = min(v, at(x+1, y)+3, at(x, y+1)+3, at(x+1, y+1)+4, at(x-1, y+1)+4)
			d[i] = v
		}
	}
	out := make([]float32, w*h)
	for i, v := range d {
		out[i] = float32(v) / 3
	}
	return out
}

// normalise makes each pixel zero-mean, unit-contrast with respect to its
// block neighbourhood, with ridges (dark) positive.
func (p *pipeline) normalise() {
	p.norm = make([]float32, p.w*p.h)
	for y := range p.h {
		for x := range p.w {
			i := y*p.w + x
			m := p.bilinear(p.mean, x, y)
			s := max(p.bilinear(p.contrast, x, y), 1)
			p.norm[i] = (m - p.g[i]) / s
		}
	}
}

// enhance applies, at each foreground pixel, the Gabor filter tuned to the
// local orientation and period, and binarises the response.
func (p *pipeline) enhance() {
	maxPer := float32(0)
	for k, f := range p.fg {
		if f {
			maxPer = max(maxPer, p.period[k])
		}
	}
	// Periods are interpolated between blocks, never above the largest.
	pad := p.e.kernels.get(periodBin(maxPer), 0).radius + 1
	stride := p.w + 2*pad
	buf := make([]float32, stride*(p.h+2*pad))
	for y := range p.h {
		copy(buf[(y+pad)*stride+pad:], p.norm[y*p.w:(y+1)*p.w])
	}
	p.ridge = make([]bool, p.w*p.h)
	var clar float64
	n := 0
	nb := p.bw * p.bh
	bsum := make([]float32, nb)
	bcnt := make([]int32, nb)
	for y := range p.h {
		for x := range p.w {
			i := y*p.w + x
			if !p.mask[i] {
				continue
			}
			k := p.e.kernels.get(periodBin(p.bilinear(p.period, x, y)), orientBin(p.ridgeAngle(x, y)))
			r := k.apply(buf, stride, x+pad, y+pad)
			p.ridge[i] = r > 0
			clar += math.Abs(float64(r))
			n++
			bk := p.blockIndex(x, y)
			bsum[bk] += float32(math.Abs(float64(r)))
			bcnt[bk]++
		}
	}
	if n > 0 {
		p.clar = clar / float64(n)
	}
	p.bclar = make([]float32, nb)
	for k := range nb {
		if bcnt[k] > 0 && p.clar > 0 {
			p.bclar[k] = bsum[k] / float32(bcnt[k]) / float32(p.clar)
		}
	}
}

// cleanRidges fills the small holes that sweat pores leave in ridges
// (each would thin into a loop: two false bifurcations) and drops the
// small ridge fragments that noise leaves in valleys (each would thin into
// a short line: two false endings). Small means under a quarter of a
// squared ridge period for holes and half of one for fragments.
func (p *pipeline) cleanRidges() {
	var ps []float32
	for k, f := range p.fg {
		if f {
			ps = append(ps, p.period[k])
		}
	}
	slices.Sort(ps)
	T := float64(ps[len(ps)/2])
	p.flipSmall(false, int(0.25*T*T))
	p.flipSmall(true, int(0.5*T*T))
}

// flipSmall inverts the 4-connected components of value v (inside the
// mask) that have fewer than limit pixels and do not touch the mask edge.
func (p *pipeline) flipSmall(v bool, limit int) {
	w, h := p.w, p.h
	seen := make([]bool, w*h)
	var comp, stack []int
	for s := range p.ridge {
		if seen[s] || !p.mask[s] || p.ridge[s] != v {
			continue
		}
		comp, stack = comp[:0], append(stack[:0], s)
		seen[s] = true
		edge := false
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			comp = append(comp, i)
			x, y := i%w, i/w
			for _, n := range [4]int{i - 1, i + 1, i - w, i + w} {
				if (n == i-1 && x == 0) || (n == i+1 && x == w-1) || (n == i-w && y == 0) || (n == i+w && y == h-1) {
					edge = true
					continue
				}
				if !p.mask[n] {
					edge = true
					continue
				}
				if !seen[n] && p.ridge[n] == v {
					seen[n] = true
					stack = append(stack, n)
				}
			}
		}
		if !edge && len(comp) < limit {
			for _, i := range comp {
				p.ridge[i] = !v
			}
		}
	}
}
