package face

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// point is a landmark in sub-pixel image coordinates.
type point struct{ X, Y float64 }

// arcFace112 is insightface's five-point template for 112x112 faces (eye
// centres, nose tip, mouth corners, left to right as seen in the image),
// which ArcFace-style networks, MobileFaceNets among them, were trained
// on.
var arcFace112 = [5]point{
	{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366}, {41.5493, 92.3655}, {70.7299, 92.2041},
}

// fivePoints reduces dlib's 68 landmarks to the five the alignment uses:
// the centres of the two eye contours (36-41, 42-47), the nose tip (30)
// and the mouth corners (48, 54).
func fivePoints(p [68][2]float64) [5]point {
	mean := func(a [][2]float64) point {
		var x, y float64
		for _, q := range a {
			x += q[0]
			y += q[1]
		}
		return point{x / float64(len(a)), y / float64(len(a))}
	}
	pt := func(q [2]float64) point { return point{q[0], q[1]} }
	return [5]point{mean(p[36:42]), mean(p[42:48]), pt(p[30]), pt(p[48]), pt(p[54])}
}

// similarity is the 2x3 matrix of the least-squares similarity transform
// (rotation, uniform scale, translation; no reflection) taking src onto
// dst: Umeyama's solution, which for 2-D points has this closed form.
func similarity(src, dst [5]point) [2][3]float64 {
	var ms, md point
	for i := range src {
		ms.X += src[i].X / 5
		ms.Y += src[i].Y / 5
		md.X += dst[i].X / 5
		md.Y += dst[i].Y / 5
	}
	var num1, num2, den float64
	for i := range src {
		sx, sy := src[i].X-ms.X, src[i].Y-ms.Y
		dx, dy := dst[i].X-md.X, dst[i].Y-md.Y
		num1 += sx*dx + sy*dy
		num2 += sx*dy - sy*dx
		den += sx*sx + sy*sy
	}
	if den == 0 {
		return [2][3]float64{{1, 0, md.X - ms.X}, {0, 1, md.Y - ms.Y}}
	}
	a, b := num1/den, num2/den
	return [2][3]float64{
		{a, -b, md.X - (a*ms.X - b*ms.Y)},
		{b, a, md.Y - (b*ms.X + a*ms.Y)},
	}
}

// alignArcFace warps the face onto the ArcFace template: a 112x112 RGB Mat
// (bilinear, black outside the image, as insightface does). src is the
// image as an 8-bit 3-channel Mat in RGB order.
func alignArcFace(src gocv.Mat, five [5]point) (gocv.Mat, error) {
	t := similarity(five, arcFace112)
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	for r := 0; r < 2; r++ {
		for c := 0; c < 3; c++ {
			m.SetDoubleAt(r, c, t[r][c])
		}
	}
	dst := gocv.NewMat()
	gocv.WarpAffineWithParams(src, &dst, m, image.Pt(112, 112), gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	if dst.Empty() || dst.Rows() != 112 || dst.Cols() != 112 {
		dst.Close()
		return gocv.Mat{}, fmt.Errorf("templates: OpenCV: warping the face gave an empty image")
	}
	return dst, nil
}

// pose estimates the head's yaw, pitch and roll in degrees from the five
// points, against the ArcFace template's frontal face. Roll is the eye
// line's angle; yaw comes from how far the nose tip sits from the eyes'
// midpoint along the eye line (0 frontal, ±90 when it reaches an eye);
// pitch from the nose tip's height between the eye and mouth lines. They
// are estimates for quality bands, not a head-pose measurement.
func pose(f [5]point) (yaw, pitch, roll float64) {
	le, re, nose := f[0], f[1], f[2]
	mouth := point{(f[3].X + f[4].X) / 2, (f[3].Y + f[4].Y) / 2}
	ex, ey := re.X-le.X, re.Y-le.Y
	d := math.Hypot(ex, ey)
	if d == 0 {
		return 0, 0, 0
	}
	roll = math.Atan2(ey, ex) * 180 / math.Pi
	ux, uy := ex/d, ey/d // along the eyes
	vx, vy := -uy, ux    // down the face
	mid := point{(le.X + re.X) / 2, (le.Y + re.Y) / 2}
	along := ((nose.X-mid.X)*ux + (nose.Y-mid.Y)*uy) / (d / 2)
	yaw = math.Asin(math.Max(-1, math.Min(1, along))) * 180 / math.Pi
	noseDown := (nose.X-mid.X)*vx + (nose.Y-mid.Y)*vy
	mouthDown := (mouth.X-mid.X)*vx + (mouth.Y-mid.Y)*vy
	if mouthDown <= 0 {
		return yaw, 0, roll
	}
	// The template's nose sits at 0.494 of the way from the eyes to the
	// mouth; a face turned down brings it towards the mouth.
	const frontal = (71.7366 - 51.5989) / (92.2848 - 51.5989)
	r := noseDown/mouthDown - frontal
	pitch = math.Asin(math.Max(-1, math.Min(1, 2*r))) * 180 / math.Pi
	return yaw, pitch, roll
}
