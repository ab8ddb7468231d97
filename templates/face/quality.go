package face

import (
	"fmt"
	"image"
	"image/draw"
	"math"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/capture/sharpness"
)

// interEye measures the distance between the eye centres for dlib's 68-point
// layout (eye contours at 36-41 and 42-47) and its 5-point layout (outer and
// inner corners of one eye at 0-1, of the other at 2-3). Other layouts give 0.
func interEye(s []image.Point) float64 {
	var a, b []image.Point
	switch len(s) {
	case 68:
		a, b = s[36:42], s[42:48]
	case 5:
		a, b = s[0:2], s[2:4]
	default:
		return 0
	}
	ax, ay := centre(a)
	bx, by := centre(b)
	return math.Hypot(ax-bx, ay-by)
}

func centre(pts []image.Point) (x, y float64) {
	for _, p := range pts {
		x += float64(p.X)
		y += float64(p.Y)
	}
	return x / float64(len(pts)), y / float64(len(pts))
}

// sharpness is the variance of the Laplacian (OpenCV, 3x3 aperture) over the
// grey face region of img. A box outside the image gives 0.
func faceSharpness(img image.Image, box image.Rectangle) (float64, error) {
	r := box.Intersect(img.Bounds())
	if r.Dx() < 3 || r.Dy() < 3 {
		return 0, nil
	}
	grey := image.NewGray(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(grey, grey.Bounds(), img, r.Min, draw.Src)
	m, err := gocv.NewMatFromBytes(r.Dy(), r.Dx(), gocv.MatTypeCV8U, grey.Pix)
	if err != nil {
		return 0, fmt.Errorf("templates: OpenCV: %w", err)
	}
	defer m.Close()
	return sharpness.LaplacianVariance(m), nil
}

func area(r image.Rectangle) int { return r.Dx() * r.Dy() }
