package finger

import (
	"math"
	"slices"
)

// integral is a summed-area table with a zero first row and column.
type integral struct {
	w, h int // of the source
	s    []float64
}

func newIntegral(w, h int, f func(i int) float64) integral {
	s := make([]float64, (w+1)*(h+1))
	for y := range h {
		var row float64
		o := (y+1)*(w+1) + 1
		p := y * (w + 1)
		for x := range w {
			row += f(y*w + x)
			s[o+x] = s[p+1+x] + row
		}
	}
	return integral{w, h, s}
}

// box sums the window [x0,x1)×[y0,y1), clipped to the image, and returns
// the sum and the pixel count.
func (it *integral) box(x0, y0, x1, y1 int) (float64, int) {
	x0, y0 = max(x0, 0), max(y0, 0)
	x1, y1 = min(x1, it.w), min(y1, it.h)
	if x1 <= x0 || y1 <= y0 {
		return 0, 0
	}
	W := it.w + 1
	return it.s[y1*W+x1] - it.s[y0*W+x1] - it.s[y1*W+x0] + it.s[y0*W+x0], (x1 - x0) * (y1 - y0)
}

// gradientSigma is the sigma, in pixels at 500 dpi, of the Gaussian that
// smooths the image before its gradients are taken: well under half a
// ridge period (8–12 px), so ridges keep their contrast.
const gradientSigma = 1.0

// blockFields computes, per block of the grid, the raw orientation tensor,
// its coherence, and the local mean and contrast of the grey levels.
func (p *pipeline) blockFields() {
	w, h := p.w, p.h
	// Gradients of a Gaussian-smoothed image: pores, sweat dots and
	// sensor speckle are a pixel or two across and, with raw Sobel
	// gradients, dominate the tensor of faint or dry prints (coherence
	// under 0.3 over whole FVC2000 DB2 prints with clearly visible ridges,
	// which then fell out of the foreground).
	g := slices.Clone(p.g)
	gaussBlur(g, w, h, gradientSigma*p.scale)
	n := w * h
	gxx := make([]float32, n)
	gyy := make([]float32, n)
	gxy := make([]float32, n)
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			a, b, c := g[i-w-1], g[i-w], g[i-w+1]
			d, f := g[i-1], g[i+1]
			gg, hh, ii := g[i+w-1], g[i+w], g[i+w+1]
			gx := (c + 2*f + ii) - (a + 2*d + gg)
			gy := (gg + 2*hh + ii) - (a + 2*b + c)
			gxx[i] = gx * gx
			gyy[i] = gy * gy
			gxy[i] = gx * gy
		}
	}
	ixx := newIntegral(w, h, func(i int) float64 { return float64(gxx[i]) })
	iyy := newIntegral(w, h, func(i int) float64 { return float64(gyy[i]) })
	ixy := newIntegral(w, h, func(i int) float64 { return float64(gxy[i]) })
	ig := newIntegral(w, h, func(i int) float64 { return float64(p.g[i]) })
	ig2 := newIntegral(w, h, func(i int) float64 { return float64(p.g[i]) * float64(p.g[i]) })

	nb := p.bw * p.bh
	p.va = make([]float32, nb)
	p.vb = make([]float32, nb)
	p.coh = make([]float32, nb)
	p.mean = make([]float32, nb)
	p.contrast = make([]float32, nb)
	half := p.win / 2
	for by := range p.bh {
		for bx := range p.bw {
			cx, cy := p.blockCentre(bx, by)
			x0, y0, x1, y1 := cx-half, cy-half, cx+half, cy+half
			sxx, _ := ixx.box(x0, y0, x1, y1)
			syy, _ := iyy.box(x0, y0, x1, y1)
			sxy, _ := ixy.box(x0, y0, x1, y1)
			sg, cnt := ig.box(x0, y0, x1, y1)
			sg2, _ := ig2.box(x0, y0, x1, y1)
			k := by*p.bw + bx
			a, b, e := sxx-syy, 2*sxy, sxx+syy
			if e > 0 {
				p.va[k] = float32(a / e)
				p.vb[k] = float32(b / e)
				p.coh[k] = float32(math.Hypot(a, b) / e)
			}
			if cnt > 0 {
				m := sg / float64(cnt)
				p.mean[k] = float32(m)
				p.contrast[k] = float32(math.Sqrt(max(sg2/float64(cnt)-m*m, 0)))
			}
		}
	}
}

// segment marks foreground blocks: enough contrast and a clear orientation,
// then cleaned by a closing and an opening, holes filled, and only the
// largest component kept. It reports false when no fingerprint is found.
func (p *pipeline) segment() bool {
	nb := p.bw * p.bh
	sorted := slices.Clone(p.contrast)
	slices.Sort(sorted)
	p95 := sorted[nb*95/100]
	if p95 < 4 { // a blank or nearly blank image
		return false
	}
	thr := float32(p.cfg.SegmentationContrast) * p95
	fg := make([]bool, nb)
	for k := range nb {
		fg[k] = p.contrast[k] > thr && p.coh[k] > float32(p.cfg.SegmentationCoherence)
	}
	fg = p.morph(fg, true, 1)
	fg = p.morph(fg, false, 1)
	fg = p.morph(fg, false, 1)
	fg = p.morph(fg, true, 1)
	p.fillHoles(fg)
	p.largestComponent(fg)
	p.fg = fg
	cnt := 0
	for _, f := range fg {
		if f {
			cnt++
		}
	}
	// Under about 4×4 mm of ridges there is nothing to match.
	area := float64(cnt) * float64(p.step*p.step) / (p.pxPerMM * p.pxPerMM)
	return area >= 16
}

// morph dilates (dilate=true) or erodes the block mask with a square of
// the given radius; outside the grid counts as background.
func (p *pipeline) morph(m []bool, dilate bool, r int) []bool {
	out := make([]bool, len(m))
	for by := range p.bh {
		for bx := range p.bw {
			v := !dilate
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					x, y := bx+dx, by+dy
					in := x >= 0 && y >= 0 && x < p.bw && y < p.bh && m[y*p.bw+x]
					if dilate && in {
						v = true
					}
					if !dilate && !in {
						v = false
					}
				}
			}
			out[by*p.bw+bx] = v
		}
	}
	return out
}

func (p *pipeline) fillHoles(m []bool) {
	outside := make([]bool, len(m))
	var stack []int
	push := func(x, y int) {
		if x < 0 || y < 0 || x >= p.bw || y >= p.bh {
			return
		}
		k := y*p.bw + x
		if m[k] || outside[k] {
			return
		}
		outside[k] = true
		stack = append(stack, k)
	}
	for x := range p.bw {
		push(x, 0)
		push(x, p.bh-1)
	}
	for y := range p.bh {
		push(0, y)
		push(p.bw-1, y)
	}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := k%p.bw, k/p.bw
		push(x+1, y)
		push(x-1, y)
		push(x, y+1)
		push(x, y-1)
	}
	for k := range m {
		if !outside[k] {
			m[k] = true
		}
	}
}

func (p *pipeline) largestComponent(m []bool) {
	label := make([]int32, len(m))
	var sizes []int
	var stack []int
	for s := range m {
		if !m[s] || label[s] != 0 {
			continue
		}
		id := int32(len(sizes) + 1)
		size := 0
		label[s] = id
		stack = append(stack[:0], s)
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			x, y := k%p.bw, k/p.bw
			for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
				nx, ny := x+d[0], y+d[1]
				if nx < 0 || ny < 0 || nx >= p.bw || ny >= p.bh {
					continue
				}
				j := ny*p.bw + nx
				if m[j] && label[j] == 0 {
					label[j] = id
					stack = append(stack, j)
				}
			}
		}
		sizes = append(sizes, size)
	}
	best := 0
	for i, s := range sizes {
		if s > sizes[best] {
			best = i
		}
	}
	for k := range m {
		m[k] = m[k] && int(label[k]) == best+1
	}
}

// smoothOrientation blurs the doubled-angle vectors with a Gaussian over
// the foreground blocks, giving the orientation field and its consistency.
func (p *pipeline) smoothOrientation() {
	nb := p.bw * p.bh
	a := make([]float32, nb)
	b := make([]float32, nb)
	for k := range nb {
		if p.fg[k] {
			a[k], b[k] = p.va[k], p.vb[k]
		}
	}
	sigma := p.cfg.OrientationSmoothing
	gaussBlur(a, p.bw, p.bh, sigma)
	gaussBlur(b, p.bw, p.bh, sigma)
	wt := make([]float32, nb)
	for k := range nb {
		if p.fg[k] {
			wt[k] = 1
		}
	}
	gaussBlur(wt, p.bw, p.bh, sigma)
	p.sa, p.sb = a, b
	p.consist = make([]float32, nb)
	for k := range nb {
		if wt[k] > 0 {
			p.consist[k] = float32(math.Hypot(float64(a[k]), float64(b[k]))) / wt[k]
		}
	}
}

// gaussBlur blurs f in place with a separable Gaussian (edges clamped).
func gaussBlur(f []float32, w, h int, sigma float64) {
	r := int(math.Ceil(2.5 * sigma))
	k := make([]float32, 2*r+1)
	var s float32
	for i := -r; i <= r; i++ {
		k[i+r] = float32(math.Exp(-float64(i*i) / (2 * sigma * sigma)))
		s += k[i+r]
	}
	for i := range k {
		k[i] /= s
	}
	tmp := make([]float32, len(f))
	for y := range h {
		for x := range w {
			var v float32
			for i := -r; i <= r; i++ {
				xx := min(max(x+i, 0), w-1)
				v += k[i+r] * f[y*w+xx]
			}
			tmp[y*w+x] = v
		}
	}
	for y := range h {
		for x := range w {
			var v float32
			for i := -r; i <= r; i++ {
				yy := min(max(y+i, 0), h-1)
				v += k[i+r] * tmp[yy*w+x]
			}
			f[y*w+x] = v
		}
	}
}

// bilinear samples a block field at pixel (x, y).
func (p *pipeline) bilinear(f []float32, x, y int) float32 {
	fx := (float32(x)+0.5)/float32(p.step) - 0.5
	fy := (float32(y)+0.5)/float32(p.step) - 0.5
	x0, y0 := int(math.Floor(float64(fx))), int(math.Floor(float64(fy)))
	tx, ty := fx-float32(x0), fy-float32(y0)
	x1, y1 := min(max(x0+1, 0), p.bw-1), min(max(y0+1, 0), p.bh-1)
	x0, y0 = min(max(x0, 0), p.bw-1), min(max(y0, 0), p.bh-1)
	a := f[y0*p.bw+x0]*(1-tx) + f[y0*p.bw+x1]*tx
	b := f[y1*p.bw+x0]*(1-tx) + f[y1*p.bw+x1]*tx
	return a*(1-ty) + b*ty
}

// ridgeAngle is the ridge direction at pixel (x, y) in [0, π), image
// coordinates (y down).
func (p *pipeline) ridgeAngle(x, y int) float64 {
	a, b := p.bilinear(p.sa, x, y), p.bilinear(p.sb, x, y)
	t := 0.5*math.Atan2(float64(b), float64(a)) + math.Pi/2
	if t >= math.Pi {
		t -= math.Pi
	}
	return t
}

// frequency estimates the ridge period of each foreground block from the
// x-signature (Hong, Wan & Jain 1998): the grey profile across the ridges,
// averaged along them, whose zero crossings give the period. Blocks without
// a clean signature are filled from their neighbours, then the field is
// smoothed.
func (p *pipeline) frequency() bool {
	nb := p.bw * p.bh
	per := make([]float32, nb)
	L := int(math.Round(32 * p.scale))
	Wd := int(math.Round(12 * p.scale))
	sig := make([]float32, L)
	lo, hi := float32(3.5*p.scale), float32(20*p.scale)
	valid := 0
	for by := range p.bh {
		for bx := range p.bw {
			k := by*p.bw + bx
			if !p.fg[k] {
				continue
			}
			cx, cy := p.blockCentre(bx, by)
			phi := 0.5 * math.Atan2(float64(p.sb[k]), float64(p.sa[k]))
			nx, ny := math.Cos(phi), math.Sin(phi)
			for i := range L {
				u := float64(i - L/2)
				var s float32
				c := 0
				for j := range Wd {
					v := float64(j - Wd/2)
					x := int(math.Round(float64(cx) + u*nx - v*ny))
					y := int(math.Round(float64(cy) + u*ny + v*nx))
					if x >= 0 && y >= 0 && x < p.w && y < p.h {
						s += p.norm[y*p.w+x]
						c++
					}
				}
				if c > 0 {
					s /= float32(c)
				}
				sig[i] = s
			}
			if T := signaturePeriod(sig); T >= lo && T <= hi {
				per[k] = T
				valid++
			}
		}
	}
	p.rawPeriod = slices.Clone(per)
	// Ridges give a clean period in most blocks; a print with under a
	// tenth of them is not one (ramps, text, random texture).
	fgBlocks := 0
	for _, f := range p.fg {
		if f {
			fgBlocks++
		}
	}
	if valid == 0 || valid*10 < fgBlocks {
		return false
	}
	// Fill the holes from valid neighbours, a ring at a time.
	for iter := 0; iter < 50; iter++ {
		missing := false
		next := slices.Clone(per)
		for by := range p.bh {
			for bx := range p.bw {
				k := by*p.bw + bx
				if !p.fg[k] || per[k] > 0 {
					continue
				}
				var s float32
				c := 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						x, y := bx+dx, by+dy
						if x >= 0 && y >= 0 && x < p.bw && y < p.bh && per[y*p.bw+x] > 0 {
							s += per[y*p.bw+x]
							c++
						}
					}
				}
				if c > 0 {
					next[k] = s / float32(c)
				} else {
					missing = true
				}
			}
		}
		per = next
		if !missing {
			break
		}
	}
	// Smooth over the foreground with a 5×5 box; background blocks take
	// the nearest value so interpolation at the edge stays sane.
	sm := make([]float32, nb)
	var all []float32
	for by := range p.bh {
		for bx := range p.bw {
			var s float32
			c := 0
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					x, y := bx+dx, by+dy
					if x >= 0 && y >= 0 && x < p.bw && y < p.bh && per[y*p.bw+x] > 0 {
						s += per[y*p.bw+x]
						c++
					}
				}
			}
			if c > 0 {
				sm[by*p.bw+bx] = s / float32(c)
				all = append(all, s/float32(c))
			}
		}
	}
	slices.Sort(all)
	med := all[len(all)/2]
	for k := range sm {
		if sm[k] == 0 {
			sm[k] = med
		}
	}
	p.period = sm
	p.validFreq = float64(valid)
	return true
}

// signaturePeriod returns the period of a roughly sinusoidal profile from
// its mean crossings, or 0 when it has fewer than three or too little
// amplitude to be ridges (the profile is in units of local contrast).
func signaturePeriod(s []float32) float32 {
	var m float32
	for _, v := range s {
		m += v
	}
	m /= float32(len(s))
	// A light [1 2 1] smoothing keeps noise from adding crossings.
	first, last := float32(-1), float32(-1)
	n := 0
	prev := float32(0)
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for i := range s {
		a := s[max(i-1, 0)]
		b := s[min(i+1, len(s)-1)]
		v := (a+2*s[i]+b)/4 - m
		lo, hi = min(lo, v), max(hi, v)
		if i > 0 && (prev < 0) != (v < 0) && prev != v {
			x := float32(i-1) + prev/(prev-v)
			if first < 0 {
				first = x
			}
			last = x
			n++
		}
		prev = v
	}
	if n < 3 || hi-lo < 0.5 {
		return 0
	}
	return 2 * (last - first) / float32(n-1)
}

// peelEdge drops, a ring at a time up to rings times, the foreground blocks
// on the edge of the mask whose x-signature gave no clean period: smears,
// latent residue and sensor noise beside the print pass the contrast and
// coherence tests but hold no ridges. It reports whether any went.
func (p *pipeline) peelEdge(rings int) bool {
	any := false
	for range rings {
		var drop []int
		for by := range p.bh {
			for bx := range p.bw {
				k := by*p.bw + bx
				if !p.fg[k] || p.rawPeriod[k] > 0 {
					continue
				}
				edge := false
				for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
					x, y := bx+d[0], by+d[1]
					if x < 0 || y < 0 || x >= p.bw || y >= p.bh || !p.fg[y*p.bw+x] {
						edge = true
					}
				}
				if edge {
					drop = append(drop, k)
				}
			}
		}
		if len(drop) == 0 {
			break
		}
		for _, k := range drop {
			p.fg[k] = false
		}
		any = true
	}
	return any
}
