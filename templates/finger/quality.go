package finger

import "math"

// quality fills in the NFIQ-style score. It multiplies four factors in
// [0, 1]: orientation certainty (the mean consistency of the smoothed
// orientation field over the foreground — NFIQ 2's OCL), ridge clarity (the
// share of foreground blocks whose x-signature gave a clean period — like
// NFIQ 2's frequency-domain measures), usable area (foreground against a
// 12×12 mm plain impression) and minutiae count (against 25, where
// matching becomes reliable).
func (p *pipeline) quality(r *Result) {
	var coh float64
	fg := 0
	for k, f := range p.fg {
		if f {
			coh += float64(p.consist[k])
			fg++
		}
	}
	if fg == 0 {
		return
	}
	coh /= float64(fg)
	area := float64(fg) * float64(p.step*p.step) / (p.pxPerMM * p.pxPerMM)
	r.ForegroundMM2 = area
	r.Coherence = coh
	fOCL := clamp01((coh - 0.2) / 0.5)
	fClar := clamp01(p.validFreq / float64(fg) / 0.8)
	fArea := clamp01(area / 144)
	fMin := clamp01(float64(len(r.View.Minutiae)) / 25)
	q := 100 * math.Pow(fOCL, 0.6) * math.Sqrt(fClar) * math.Sqrt(fArea) * math.Sqrt(fMin)
	r.Quality = int(math.Round(q))
}

func clamp01(x float64) float64 { return min(max(x, 0), 1) }
