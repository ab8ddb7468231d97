package face

// #cgo CXXFLAGS: -std=c++17 -Wall -O3 -DNDEBUG -march=native
// #cgo LDFLAGS: -ldlib -lblas -lcblas -llapack -ljpeg
// #include <stdlib.h>
// #include "chip.h"
import "C"

import (
	"fmt"
	"image"
	"math"
	"unsafe"

	"github.com/bordermatch/bordermatch/capture/facedetect"
)

// detection is one face a detector found, with its 68 landmarks, in the
// pixels of the image it was given.
type detection struct {
	box        image.Rectangle
	confidence float64
	points     [68][2]float64
}

// maxDetections bounds the faces reported of one image; a crowd photo
// with more is refused or reduced to its largest faces all the same.
const maxDetections = 64

// detect runs the HOG (or CNN) detector on an RGB image, upsampled by 2
// first if asked, and places the landmarks on every face found.
func detect(d *facedetect.Detector, px rgbImage, cnn, upsample bool) ([]detection, error) {
	opt := facedetect.Options{CNN: cnn, Max: maxDetections}
	if upsample {
		opt.Upsample = 1
	}
	faces, err := d.Detect(facedetect.Image{Pix: px.pix, W: px.w, H: px.h, Stride: 3 * px.w, Channels: 3}, opt)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	out := make([]detection, len(faces))
	for i, f := range faces {
		if len(f.Landmarks) != 68 {
			return nil, fmt.Errorf("templates: the landmark model gives %d points, the alignment needs dlib's 68", len(f.Landmarks))
		}
		out[i] = detection{box: f.Box, confidence: f.Confidence}
		copy(out[i].points[:], f.Landmarks)
	}
	return out, nil
}

// landmarks are the points rounded to pixels, as templates.Face reports
// them.
func (d detection) landmarks() []image.Point {
	out := make([]image.Point, len(d.points))
	for i, p := range d.points {
		out[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
	}
	return out
}

// dlibChip cuts dlib's own 150x150 chip for its face recognition network.
func dlibChip(px rgbImage, pts [68][2]float64) (*image.RGBA, error) {
	var cp [136]C.double
	for i, p := range pts {
		cp[2*i], cp[2*i+1] = C.double(p[0]), C.double(p[1])
	}
	buf := make([]byte, ChipSize*ChipSize*3)
	var cerr *C.char
	if C.dlibchip_cut((*C.uint8_t)(unsafe.Pointer(&px.pix[0])), C.int(px.w), C.int(px.h), &cp[0], (*C.uint8_t)(unsafe.Pointer(&buf[0])), &cerr) != 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("templates: dlib: %s", C.GoString(cerr))
	}
	chip := image.NewRGBA(image.Rect(0, 0, ChipSize, ChipSize))
	for i := 0; i < ChipSize*ChipSize; i++ {
		chip.Pix[4*i], chip.Pix[4*i+1], chip.Pix[4*i+2], chip.Pix[4*i+3] = buf[3*i], buf[3*i+1], buf[3*i+2], 255
	}
	return chip, nil
}
