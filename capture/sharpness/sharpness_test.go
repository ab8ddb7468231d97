package sharpness

import (
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// TestLaplacianVariance: a flat image has no sharpness, and blurring a
// sharp one lowers it.
func TestLaplacianVariance(t *testing.T) {
	flat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 0, 0, 0), 64, 64, gocv.MatTypeCV8U)
	defer flat.Close()
	if v := LaplacianVariance(flat); v != 0 {
		t.Errorf("flat image: %v, want 0", v)
	}
	sharp := gocv.NewMatWithSize(64, 64, gocv.MatTypeCV8U)
	defer sharp.Close()
	for y := range 64 {
		for x := range 64 {
			if (x/4+y/4)%2 == 0 {
				sharp.SetUCharAt(y, x, 255)
			}
		}
	}
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(sharp, &blurred, image.Pt(7, 7), 2, 2, gocv.BorderDefault)
	s, b := LaplacianVariance(sharp), LaplacianVariance(blurred)
	if !(s > 10*b && b > 0) {
		t.Errorf("checkerboard %v, blurred %v: want the blurred far below", s, b)
	}
}
