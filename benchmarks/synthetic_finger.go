package benchmarks

import (
	"math"
	"math/cmplx"
	"math/rand/v2"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// SyntheticFinger is the minutiae of synthetic finger i: seeded, so every
// run makes the same ones, and each a different finger (not a distortion
// of a real one, which would make thousands of near-copies of the few
// real fingers there are, and an impostor distribution of a few fingers
// rather than of many).
//
// The model is a rough one, to fill a gallery with plausible strangers:
// a 500 dpi print of 300×400 pixels whose ridge flow follows the
// zero-pole model of Sherlock and Monro (an arch, a loop with a core and
// a delta, or a whorl with two of each, at random places, plus a slow
// random rotation), and 25 to 55 minutiae at least 12 pixels apart
// inside an elliptic contact area, each along the flow (either way) with
// a little noise, endings and bifurcations alike. It is not a fingerprint
// generator (SFinGe is one): its minutiae have no ridge spacing and its
// flow no ridge curvature beyond the model's, so impostor scores against
// it differ from those against real prints; bmbench reports the real
// and the synthetic distractors' top impostor scores apart.
func SyntheticFinger(i int) minutiae.View {
	r := rand.New(rand.NewPCG(uint64(i), 0x66696e67))
	const w, h = 300, 400
	v := minutiae.View{Width: w, Height: h, DPI: 500, Quality: 60}
	cx, cy := w/2+r.NormFloat64()*15, h/2+r.NormFloat64()*20
	a, b := 95+r.Float64()*45, 130+r.Float64()*60
	var cores, deltas []complex128
	pt := func(sx, sy float64) complex128 {
		return complex(cx+r.NormFloat64()*sx, cy+r.NormFloat64()*sy)
	}
	switch k := r.IntN(10); {
	case k < 1: // arch: no singular point
	case k < 7: // loop, leaning left or right
		c := pt(25, 30)
		cores = append(cores, c)
		deltas = append(deltas, c+complex((2*float64(r.IntN(2))-1)*(60+r.Float64()*50), 90+r.Float64()*60))
	default: // whorl
		c := pt(20, 25)
		cores = append(cores, c-complex(0, 10+r.Float64()*15), c+complex(0, 10+r.Float64()*15))
		deltas = append(deltas, c+complex(-90-r.Float64()*40, 100+r.Float64()*50), c+complex(90+r.Float64()*40, 100+r.Float64()*50))
	}
	rot := r.Float64() * math.Pi
	wave, phase := 0.2+0.3*r.Float64(), r.Float64()*2*math.Pi
	flow := func(x, y float64) float64 {
		z := complex(x, y)
		o := rot + wave*math.Sin(y/h*math.Pi+phase)
		for _, c := range cores {
			o += cmplx.Phase(z-c) / 2
		}
		for _, d := range deltas {
			o -= cmplx.Phase(z-d) / 2
		}
		return o
	}
	n := 25 + r.IntN(31)
	for tries := 0; len(v.Minutiae) < n && tries < 50*n; tries++ {
		x, y := cx+(2*r.Float64()-1)*a, cy+(2*r.Float64()-1)*b
		if dx, dy := (x-cx)/a, (y-cy)/b; dx*dx+dy*dy > 1 || x < 5 || y < 5 || x > w-5 || y > h-5 {
			continue
		}
		far := true
		for _, m := range v.Minutiae {
			if dx, dy := float64(m.X)-x, float64(m.Y)-y; dx*dx+dy*dy < 12*12 {
				far = false
				break
			}
		}
		if !far {
			continue
		}
		ang := flow(x, y) + math.Pi*float64(r.IntN(2)) + r.NormFloat64()*0.12
		kind := minutiae.KindEnding
		if r.IntN(2) == 1 {
			kind = minutiae.KindBifurcation
		}
		v.Minutiae = append(v.Minutiae, minutiae.Minutia{X: int(x), Y: int(y), Angle: minutiae.NormAngle(ang), Kind: kind, Quality: 60})
	}
	return v
}
