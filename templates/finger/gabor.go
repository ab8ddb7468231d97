package finger

import "math"

// Gabor kernels are tabulated by ridge period (pixels) and ridge
// orientation. 16 orientations (11.25°) and half-pixel period steps keep the
// quantisation error well under what the fields themselves carry.
const (
	numOrientBins = 16
	numPeriodBins = 55 // periods 3.0 … 30.0 px in 0.5 px steps
	minPeriod     = 3.0
	periodStep    = 0.5
)

func periodOfBin(b int) float64 { return minPeriod + periodStep*float64(b) }

func periodBin(T float32) int {
	b := int(math.Round((float64(T) - minPeriod) / periodStep))
	return min(max(b, 0), numPeriodBins-1)
}

// orientOfBin is the ridge direction of bin o in [0, π), image coordinates.
func orientOfBin(o int) float64 { return float64(o) * math.Pi / numOrientBins }

func orientBin(theta float64) int {
	o := int(math.Round(theta/math.Pi*numOrientBins)) % numOrientBins
	if o < 0 {
		o += numOrientBins
	}
	return o
}

// kernel is a Gabor filter stored as horizontal runs so the inner loop reads
// contiguous pixels.
type kernel struct {
	radius int
	rows   []kernelRow
}

type kernelRow struct {
	dy, dx0 int
	w       []float32
}

// makeGabor builds a zero-mean even Gabor filter for ridges of period T
// running in direction theta: a cosine across the ridges under an
// anisotropic Gaussian. Taps whose envelope is below 2% are dropped, which
// keeps the support an ellipse rather than a square.
func makeGabor(T, theta, sAcross, sAlong float64) kernel {
	r := int(math.Ceil(2.8 * max(sAcross, sAlong)))
	// Across-ridge unit vector (the ridge normal).
	nx, ny := -math.Sin(theta), math.Cos(theta)
	type tap struct {
		dx, dy int
		env, w float64
	}
	var taps []tap
	var sw, se float64
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			u := float64(dx)*nx + float64(dy)*ny
			v := float64(dx)*ny - float64(dy)*nx
			env := math.Exp(-0.5 * (u*u/(sAcross*sAcross) + v*v/(sAlong*sAlong)))
			if env < 0.02 {
				continue
			}
			w := env * math.Cos(2*math.Pi*u/T)
			taps = append(taps, tap{dx, dy, env, w})
			sw += w
			se += env
		}
	}
	// Remove the DC response so flat regions give zero; normalise the
	// positive lobe so outputs are comparable across periods.
	dc := sw / se
	var pos float64
	for i := range taps {
		taps[i].w -= dc * taps[i].env
		if taps[i].w > 0 {
			pos += taps[i].w
		}
	}
	k := kernel{radius: r}
	for i := 0; i < len(taps); {
		j := i
		for j < len(taps) && taps[j].dy == taps[i].dy && taps[j].dx == taps[i].dx+(j-i) {
			j++
		}
		row := kernelRow{dy: taps[i].dy, dx0: taps[i].dx, w: make([]float32, j-i)}
		for t := i; t < j; t++ {
			row.w[t-i] = float32(taps[t].w / pos)
		}
		k.rows = append(k.rows, row)
		i = j
	}
	return k
}

// apply returns the filter response at (x, y) of the padded image pad
// whose row stride is stride; (x, y) are padded coordinates.
func (k *kernel) apply(pad []float32, stride, x, y int) float32 {
	var s float32
	for i := range k.rows {
		r := &k.rows[i]
		off := (y+r.dy)*stride + x + r.dx0
		px := pad[off : off+len(r.w)]
		for j, w := range r.w {
			s += w * px[j]
		}
	}
	return s
}
