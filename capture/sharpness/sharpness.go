// Package sharpness is the one sharpness measure of Bordermatch: enrolment
// photos (templates/face) and gate shots (capture) are rated alike, so that
// a gate's "sharp enough" means what an enrolment desk's does. It is a leaf
// over OpenCV, below both its users.
package sharpness

import "gocv.io/x/gocv"

// LaplacianVariance is the variance of the Laplacian (3x3 aperture) of a
// grey Mat: blurred or heavily compressed faces score low (tens), sharp
// ones hundreds or more.
func LaplacianVariance(grey gocv.Mat) float64 {
	lap := gocv.NewMat()
	defer lap.Close()
	gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 1, 1, 0, gocv.BorderDefault)
	mean, std := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer std.Close()
	gocv.MeanStdDev(lap, &mean, &std)
	sd := std.GetDoubleAt(0, 0)
	return sd * sd
}
