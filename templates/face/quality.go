package face

import (
	"fmt"
	"image"
	"image/draw"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/capture/sharpness"
)

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
