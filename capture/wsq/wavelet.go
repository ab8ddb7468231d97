package wsq

// Inverse wavelet transform.
//
// The encoder's analysis filters are symmetric with odd lengths: lowpass h0
// centred on the even samples, highpass h1 centred on the odd ones. A line
// x of n samples is extended symmetrically about its first and last samples
// (whole-sample symmetry, x[-i] = x[i], x[n-1+i] = x[n-1-i]) and filtered;
// the lowpass band keeps the even outputs L[m] = (h0*x)[2m], the highpass
// band the odd ones H[m] = (h1*x)[2m+1].
//
// Put back at their positions (z[2m] = L[m], z[2m+1] = H[m]), both bands
// inherit that whole-sample symmetry about 0 and n-1, which fixes the
// extension the spec prescribes for each band and each parity of n: the
// lowpass band mirrors about its first sample and, for odd n, its last
// (L[-1] = L[1]) but repeats its last one for even n (L[n/2] = L[n/2-1]); the
// highpass band repeats its first sample (H[-1] = H[0]) and, for odd n, its
// last, and mirrors about its last for even n. Synthesis is then
//
//	x[i] = Σ_m L[m]·g0[i-2m] + Σ_m H[m]·g1[i-2m-1]
//
// with g0[k] = (-1)^k·h1[k] and g1[k] = (-1)^k·h0[k] (centred indices):
// the DTT carries h0 and h1, and these are the spec's synthesis filters.
// Reading z through the same mirror, x[i] = Σ_k f_(i mod 2)[k]·z[i-k], where
// each f takes its even and odd taps from g0 and g1 by the parity of i-k.

// filterBank holds the synthesis filters as the two parity filters
// f[i mod 2][k+pad], k = -pad…pad.
type filterBank struct {
	f   [2][]float32
	rev [2][]float32 // f reversed: an output is a dot product from the left
	pad int
}

// newFilterBank builds the synthesis bank from the halves h0[0…], h1[0…] of
// the symmetric analysis filters that DTT transmits.
func newFilterBank(h0, h1 []float64) *filterBank {
	pad := max(len(h0), len(h1)) - 1
	fb := &filterBank{pad: pad}
	tap := func(h []float64, k int) float64 {
		if k < 0 {
			k = -k
		}
		if k >= len(h) {
			return 0
		}
		if k%2 == 1 {
			return -h[k]
		}
		return h[k]
	}
	for p := range 2 {
		fb.f[p] = make([]float32, 2*pad+1)
		for k := -pad; k <= pad; k++ {
			g := tap(h0, k) // g1: weights the highpass samples
			if (p-k)&1 == 0 {
				g = tap(h1, k) // g0: weights the lowpass samples
			}
			fb.f[p][k+pad] = float32(g)
		}
		fb.rev[p] = make([]float32, 2*pad+1)
		for j, c := range fb.f[p] {
			fb.rev[p][2*pad-j] = c
		}
	}
	return fb
}

// defaultFilterBank is the spec's 9/7 filter pair, used when a file has no
// DTT: the taps exactly as NBIS's encoder transmits them (and as the test
// files carry them).
var defaultFilterBank = newFilterBank(
	[]float64{0.852698573, 0.3774028186, -0.1106243994, -0.02384946381, 0.03782845235},
	[]float64{0.788485632, -0.4180923187, -0.04068942234, 0.0645388851},
)

// mirror maps position i of the extended line of n samples into 0…n-1 by
// whole-sample symmetry about 0 and n-1. A line of one sample has no
// highpass band: its odd positions are zero (-1).
func mirror(i, n int) int {
	if n == 1 {
		if i&1 != 0 {
			return -1
		}
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// bandIndex maps position p (0…n-1) of the interleaved line to the index of
// its sample in the stored line: the lowpass band first, or the highpass
// band first when the line is inverted.
func bandIndex(p, n int, inv bool) int {
	low := n - n/2 // samples in the lowpass band
	if p&1 == 0 {
		if inv {
			return n/2 + p/2
		}
		return p / 2
	}
	if inv {
		return p / 2
	}
	return low + p/2
}

// reconstruct runs the inverse transform in place on coef (width w), node by
// node from the deepest (19) to the whole image (0): each node's columns,
// then its rows.
func (fb *filterBank) reconstruct(coef []float32, w int, t *trees) {
	tmp := make([]float32, len(coef))
	line := make([]float32, w+2*fb.pad)
	for i := numNodes - 1; i >= 0; i-- {
		n := t.nodes[i]
		if n.w == 0 || n.h == 0 {
			continue
		}
		fb.columns(tmp[:n.w*n.h], coef, w, n)
		fb.rows(coef, w, tmp[:n.w*n.h], n, line)
	}
}

// columns synthesises the node's columns from coef into out (n.w×n.h, row
// major), a row of output at a time so the inner loop runs along memory.
func (fb *filterBank) columns(out, coef []float32, w int, n node) {
	var zero []float32
	for y := range n.h {
		dst := out[y*n.w : (y+1)*n.w]
		f := fb.f[y&1]
		if len(f) == 9 {
			// Nine taps, as in the spec's 9/7 bank: one pass over nine
			// source rows.
			var rows [9][]float32
			for j := range rows {
				p := mirror(y+fb.pad-j, n.h)
				if p < 0 {
					if zero == nil {
						zero = make([]float32, n.w)
					}
					rows[j] = zero
					continue
				}
				r := n.y + bandIndex(p, n.h, n.invCols)
				rows[j] = coef[r*w+n.x : r*w+n.x+n.w]
			}
			column9(dst, f, &rows)
			continue
		}
		clear(dst)
		for j, c := range f {
			if c == 0 {
				continue
			}
			p := mirror(y+fb.pad-j, n.h)
			if p < 0 {
				continue
			}
			r := n.y + bandIndex(p, n.h, n.invCols)
			src := coef[r*w+n.x : r*w+n.x+n.w]
			for x, v := range src {
				dst[x] += c * v
			}
		}
	}
}

// rows synthesises the rows of in (n.w×n.h) into the node's place in coef.
// line is scratch of at least n.w+2·pad.
func (fb *filterBank) rows(coef []float32, w int, in []float32, n node, line []float32) {
	pad := fb.pad
	ext := line[:n.w+2*pad]
	mid := ext[pad : pad+n.w]
	taps := len(fb.f[0])
	nlow := n.w - n.w/2
	for y := range n.h {
		src := in[y*n.w : (y+1)*n.w]
		low, high := src[:nlow], src[nlow:]
		if n.invRows {
			high, low = src[:n.w/2], src[n.w/2:]
		}
		for m, v := range low {
			mid[2*m] = v
		}
		for m, v := range high {
			mid[2*m+1] = v
		}
		for i := range pad {
			ext[i] = mirrored(mid, i-pad)
			ext[pad+n.w+i] = mirrored(mid, n.w+i)
		}
		dst := coef[(n.y+y)*w+n.x : (n.y+y)*w+n.x+n.w]
		if taps == 9 {
			row9(dst, ext, &fb.rev)
			continue
		}
		for x := range dst {
			r := fb.rev[x&1]
			win := ext[x : x+taps]
			win = win[:len(r)]
			var s float32
			for j, c := range r {
				s += c * win[j]
			}
			dst[x] = s
		}
	}
}

// mirrored is z[i] of the interleaved line z extended by mirror.
func mirrored(z []float32, i int) float32 {
	p := mirror(i, len(z))
	if p < 0 {
		return 0
	}
	return z[p]
}

// column9 is dst[x] = Σ_j f[j]·rows[j][x] for nine taps.
func column9(dst, f []float32, rows *[9][]float32) {
	f = f[:9]
	c0, c1, c2, c3, c4, c5, c6, c7, c8 := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
	n := len(dst)
	r0, r1, r2, r3, r4 := rows[0][:n], rows[1][:n], rows[2][:n], rows[3][:n], rows[4][:n]
	r5, r6, r7, r8 := rows[5][:n], rows[6][:n], rows[7][:n], rows[8][:n]
	for x := range dst {
		a := c0*r0[x] + c2*r2[x] + c4*r4[x] + c6*r6[x] + c8*r8[x]
		b := c1*r1[x] + c3*r3[x] + c5*r5[x] + c7*r7[x]
		dst[x] = a + b
	}
}

// row9 is dst[x] = Σ_j rev[x mod 2][j]·ext[x+j] for nine taps.
func row9(dst, ext []float32, rev *[2][]float32) {
	e, o := rev[0][:9], rev[1][:9]
	e0, e1, e2, e3, e4, e5, e6, e7, e8 := e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]
	o0, o1, o2, o3, o4, o5, o6, o7, o8 := o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8]
	x := 0
	for ; x+1 < len(dst); x += 2 {
		w := ext[x : x+10]
		a := e0*w[0] + e2*w[2] + e4*w[4] + e6*w[6] + e8*w[8]
		b := e1*w[1] + e3*w[3] + e5*w[5] + e7*w[7]
		dst[x] = a + b
		a = o0*w[1] + o2*w[3] + o4*w[5] + o6*w[7] + o8*w[9]
		b = o1*w[2] + o3*w[4] + o5*w[6] + o7*w[8]
		dst[x+1] = a + b
	}
	if x < len(dst) {
		w := ext[x : x+9]
		a := e0*w[0] + e2*w[2] + e4*w[4] + e6*w[6] + e8*w[8]
		b := e1*w[1] + e3*w[3] + e5*w[5] + e7*w[7]
		dst[x] = a + b
	}
}
