package capture

import (
	"fmt"
	"image"
	"math"
	"sort"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/capture/sharpness"
)

// QualityConfig sets what a usable face and a good-enough face are. Each
// criterion has a minimum (below it the face is not used at all) and a
// target (at or beyond it the criterion is fully met); the selector stops
// looking once a face meets every target. The defaults follow the ICAO
// Doc 9303 part 3 and ISO/IEC 19794-5 (full frontal image) criteria that a
// camera frame can be checked against — eye distance, pose, exposure,
// dynamic range — loosened for the minimums so that a traveller who never
// looks straight at the camera still gets matched. They do not make a frame
// a compliant passport photo (background, lighting symmetry, expression and
// the geometry of the crop are not checked).
type QualityConfig struct {
	// MinInterEye and TargetInterEye bound the distance between the eye
	// centres, in frame pixels. Defaults 40 and 90: ISO/IEC 19794-5 and
	// ICAO 9303 ask for at least 90 (about 180 across the head); dlib's
	// descriptor loses accuracy quickly below 40.
	MinInterEye, TargetInterEye float64
	// MinSharpness and TargetSharpness bound the variance of the Laplacian
	// of the grey face, rescaled first so that the eyes are 64 pixels apart
	// (so that the figure compares faces of any size). Defaults 20 and 80,
	// from testdata/video/gate.mp4 (TestAssessGateClip logs the figures):
	// heavily blurred faces score 5 to 10, mildly blurred ones about 35,
	// sharp ones 140 to 225.
	MinSharpness, TargetSharpness float64
	// MaxYaw and TargetYaw bound the head's left-right turn in degrees, as
	// estimated from the landmarks. Defaults 30 and 5 (ISO/IEC 19794-5:
	// within ±5° of frontal).
	MaxYaw, TargetYaw float64
	// MaxRoll and TargetRoll bound the head's tilt (the angle of the eye
	// line) in degrees. Defaults 20 and 8 (ISO/IEC 19794-5: ±8°).
	MaxRoll, TargetRoll float64
	// MinBrightness and MaxBrightness bound the mean grey level (0–255) of
	// the face for it to count as well exposed. Defaults 70 and 190; faces
	// darker than 25 or brighter than 235 are not used.
	MinBrightness, MaxBrightness float64
	// MaxClipped is the largest fraction of face pixels at 0–5 or 250–255
	// (crushed shadows, blown highlights) of a well exposed face. Default
	// 0.05.
	MaxClipped float64
	// MinDynamicRange is the smallest spread of grey levels (between the 1st
	// and 99th percentiles) of a well exposed face. Default 128: ISO/IEC
	// 19794-5 asks for at least 7 bits of intensity variation in the face.
	MinDynamicRange float64
}

// DefaultQuality is the QualityConfig that zero fields fall back to.
var DefaultQuality = QualityConfig{
	MinInterEye: 40, TargetInterEye: 90,
	MinSharpness: 20, TargetSharpness: 80,
	MaxYaw: 30, TargetYaw: 5,
	MaxRoll: 20, TargetRoll: 8,
	MinBrightness: 70, MaxBrightness: 190,
	MaxClipped:      0.05,
	MinDynamicRange: 128,
}

func (q *QualityConfig) defaults() {
	d := DefaultQuality
	set := func(v *float64, def float64) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&q.MinInterEye, d.MinInterEye)
	set(&q.TargetInterEye, d.TargetInterEye)
	set(&q.MinSharpness, d.MinSharpness)
	set(&q.TargetSharpness, d.TargetSharpness)
	set(&q.MaxYaw, d.MaxYaw)
	set(&q.TargetYaw, d.TargetYaw)
	set(&q.MaxRoll, d.MaxRoll)
	set(&q.TargetRoll, d.TargetRoll)
	set(&q.MinBrightness, d.MinBrightness)
	set(&q.MaxBrightness, d.MaxBrightness)
	set(&q.MaxClipped, d.MaxClipped)
	set(&q.MinDynamicRange, d.MinDynamicRange)
}

func (q QualityConfig) validate() error {
	switch {
	case q.TargetInterEye < q.MinInterEye:
		return fmt.Errorf("capture: TargetInterEye %.0f is below MinInterEye %.0f", q.TargetInterEye, q.MinInterEye)
	case q.TargetSharpness < q.MinSharpness:
		return fmt.Errorf("capture: TargetSharpness %.0f is below MinSharpness %.0f", q.TargetSharpness, q.MinSharpness)
	case q.TargetYaw > q.MaxYaw:
		return fmt.Errorf("capture: TargetYaw %.0f is above MaxYaw %.0f", q.TargetYaw, q.MaxYaw)
	case q.TargetRoll > q.MaxRoll:
		return fmt.Errorf("capture: TargetRoll %.0f is above MaxRoll %.0f", q.TargetRoll, q.MaxRoll)
	case q.MaxBrightness <= q.MinBrightness || q.MaxBrightness > 255:
		return fmt.Errorf("capture: brightness range %.0f–%.0f is empty or beyond 255", q.MinBrightness, q.MaxBrightness)
	case q.MaxClipped >= 1:
		return fmt.Errorf("capture: MaxClipped %.2f must be below 1", q.MaxClipped)
	}
	return nil
}

// Darkest and brightest mean grey levels of a face that is used at all.
const (
	darkLimit   = 25
	brightLimit = 235
)

// FaceQuality is what the selector measured on one face of one frame.
type FaceQuality struct {
	// InterEye is the distance between the eye centres in frame pixels.
	InterEye float64
	// Sharpness is the Laplacian variance at a 64-pixel eye distance.
	Sharpness float64
	// Yaw and Roll are the estimated head turn and tilt in degrees. Yaw is
	// a rough figure from the nose's position between the jaw's sides (the
	// 68-point model) or between the eyes (the 5-point model). Pitch is not
	// estimated: 2-D landmarks without a 3-D head model do not give it
	// reliably, and dlib's frontal detector finds few faces pitched by more
	// than about 20° anyway.
	Yaw, Roll float64
	// Brightness is the mean grey level of the face, Clipped the fraction
	// of its pixels at 0–5 or 250–255, DynamicRange the spread of its grey
	// levels between the 1st and 99th percentiles.
	Brightness, Clipped, DynamicRange float64
	// Confidence is the HOG detector's margin (0 at its threshold).
	Confidence float64
	// Score combines the criteria in 0–1 (the geometric mean of size,
	// sharpness, pose and exposure, each 1 at its target); 0 when the face
	// is not usable.
	Score float64
	// MeetsTarget: every criterion is at its target.
	MeetsTarget bool
	// Reject says why the face is not usable; empty when it is.
	Reject string
}

// ramp maps x from lo..hi to 0..1, clamped.
func ramp(x, lo, hi float64) float64 {
	if hi <= lo {
		if x >= hi {
			return 1
		}
		return 0
	}
	return math.Max(0, math.Min(1, (x-lo)/(hi-lo)))
}

// pose estimates yaw and roll in degrees, and the eye centres, from dlib's
// 68- or 5-point landmarks.
func pose(lm [][2]float64) (yaw, roll float64, le, re [2]float64, ok bool) {
	mean := func(pts [][2]float64) [2]float64 {
		var c [2]float64
		for _, p := range pts {
			c[0] += p[0]
			c[1] += p[1]
		}
		return [2]float64{c[0] / float64(len(pts)), c[1] / float64(len(pts))}
	}
	var nose [2]float64
	var sideL, sideR [2]float64 // reference points either side of the nose
	switch len(lm) {
	case 68:
		le, re = mean(lm[36:42]), mean(lm[42:48])
		nose = lm[30]
		sideL, sideR = lm[0], lm[16]
	case 5:
		// dlib's 5-point layout: 0-1 one eye's corners, 2-3 the other's,
		// 4 under the nose.
		re, le = mean(lm[0:2]), mean(lm[2:4])
		if le[0] > re[0] {
			le, re = re, le
		}
		nose = lm[4]
		sideL, sideR = le, re
	default:
		return 0, 0, le, re, false
	}
	dx, dy := re[0]-le[0], re[1]-le[1]
	roll = math.Atan2(dy, dx) * 180 / math.Pi
	// Undo the roll, then compare the nose's horizontal distance to the
	// two reference points: equal when frontal.
	c, s := math.Cos(-roll*math.Pi/180), math.Sin(-roll*math.Pi/180)
	rx := func(p [2]float64) float64 { return c*p[0] - s*p[1] }
	dl, dr := rx(nose)-rx(sideL), rx(sideR)-rx(nose)
	if dl+dr <= 0 {
		return 0, roll, le, re, false
	}
	asym := (dl - dr) / (dl + dr)
	if len(lm) == 5 {
		// The eyes sit closer to the nose's axis than the jaw's sides, so
		// the same turn moves the nose relatively further between them.
		asym *= 0.6
	}
	yaw = math.Asin(math.Max(-1, math.Min(1, asym))) * 180 / math.Pi
	return yaw, roll, le, re, true
}

// measure fills the pixel-based measures of q from the face region of
// frame (8-bit BGR).
func measure(frame gocv.Mat, box image.Rectangle, q *FaceQuality) error {
	fb := image.Rect(0, 0, frame.Cols(), frame.Rows())
	// The inner face: the box is trimmed so that hair and background weigh
	// little in exposure and sharpness.
	in := image.Rect(box.Min.X+box.Dx()/8, box.Min.Y+box.Dy()/8, box.Max.X-box.Dx()/8, box.Max.Y-box.Dy()/16).Intersect(fb)
	if in.Dx() < 8 || in.Dy() < 8 {
		return fmt.Errorf("face region %v outside the frame", box)
	}
	roi := frame.Region(in)
	defer roi.Close()
	grey := gocv.NewMat()
	defer grey.Close()
	if frame.Channels() == 1 {
		roi.CopyTo(&grey)
	} else {
		gocv.CvtColor(roi, &grey, gocv.ColorBGRToGray)
	}
	pix := grey.ToBytes()
	var hist [256]int
	var sum float64
	for _, p := range pix {
		hist[p]++
		sum += float64(p)
	}
	n := len(pix)
	q.Brightness = sum / float64(n)
	clipped := 0
	for i := 0; i <= 5; i++ {
		clipped += hist[i] + hist[255-i]
	}
	q.Clipped = float64(clipped) / float64(n)
	pct := func(f float64) int {
		want, acc := int(f*float64(n)), 0
		for v, c := range hist {
			acc += c
			if acc > want {
				return v
			}
		}
		return 255
	}
	q.DynamicRange = float64(pct(0.99) - pct(0.01))

	// Sharpness at a fixed scale: eyes 64 pixels apart.
	scale := 64 / math.Max(q.InterEye, 1)
	norm := gocv.NewMat()
	defer norm.Close()
	interp := gocv.InterpolationArea
	if scale > 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(grey, &norm, image.Point{}, scale, scale, interp)
	if norm.Cols() < 3 || norm.Rows() < 3 {
		return nil
	}
	q.Sharpness = sharpness.LaplacianVariance(norm)
	return nil
}

// score fills Score, MeetsTarget and Reject from the measures.
func (c QualityConfig) score(q *FaceQuality) {
	ay, ar := math.Abs(q.Yaw), math.Abs(q.Roll)
	switch {
	case q.InterEye < c.MinInterEye:
		q.Reject = fmt.Sprintf("face too small: eyes %.0f px apart, the minimum is %.0f", q.InterEye, c.MinInterEye)
	case q.Sharpness < c.MinSharpness:
		q.Reject = fmt.Sprintf("face blurred: sharpness %.0f, the minimum is %.0f", q.Sharpness, c.MinSharpness)
	case ay > c.MaxYaw:
		q.Reject = fmt.Sprintf("head turned %.0f°, the limit is %.0f°", q.Yaw, c.MaxYaw)
	case ar > c.MaxRoll:
		q.Reject = fmt.Sprintf("head tilted %.0f°, the limit is %.0f°", q.Roll, c.MaxRoll)
	case q.Brightness < darkLimit:
		q.Reject = fmt.Sprintf("face too dark: mean grey %.0f", q.Brightness)
	case q.Brightness > brightLimit:
		q.Reject = fmt.Sprintf("face overexposed: mean grey %.0f", q.Brightness)
	}
	if q.Reject != "" {
		q.Score, q.MeetsTarget = 0, false
		return
	}
	size := ramp(q.InterEye, c.MinInterEye, c.TargetInterEye)
	sharp := ramp(q.Sharpness, c.MinSharpness, c.TargetSharpness)
	pose := math.Min(ramp(c.MaxYaw-ay, 0, c.MaxYaw-c.TargetYaw), ramp(c.MaxRoll-ar, 0, c.MaxRoll-c.TargetRoll))
	expo := math.Min(
		math.Min(ramp(q.Brightness, darkLimit, c.MinBrightness), ramp(brightLimit-q.Brightness, 0, brightLimit-c.MaxBrightness)),
		math.Min(ramp(0.5-q.Clipped, 0, 0.5-c.MaxClipped), ramp(q.DynamicRange, 32, c.MinDynamicRange)))
	// A floor keeps one weak criterion from zeroing the others out, so
	// that two usable faces still compare.
	f := func(x float64) float64 { return 0.05 + 0.95*x }
	q.Score = math.Pow(f(size)*f(sharp)*f(pose)*f(expo), 0.25)
	q.MeetsTarget = size >= 1 && sharp >= 1 && pose >= 1 && expo >= 1
}

// byArea sorts candidates largest face first.
func byArea(c []Candidate) {
	sort.SliceStable(c, func(i, j int) bool {
		return c[i].Box.Dx()*c[i].Box.Dy() > c[j].Box.Dx()*c[j].Box.Dy()
	})
}
