package face

// #cgo CXXFLAGS: -std=c++17 -Wall -O3 -DNDEBUG -march=native
// #cgo LDFLAGS: -ldlib -lblas -lcblas -llapack -ljpeg
// #include <stdlib.h>
// #include "chip.h"
import "C"

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"path/filepath"
	"sync"
	"unsafe"
)

// ChipSize is the side of the aligned face chips dlib's network describes.
const ChipSize = 150

// ChipDescriber runs dlib's face recognition network directly on a 150x150
// face chip, skipping detection and alignment (which FaceExtractor does
// before it describes). It checks the network against descriptors computed
// elsewhere on the same chips, and serves callers that align faces
// themselves. It is safe for concurrent use; calls are serialised.
type ChipDescriber struct {
	mu  sync.Mutex
	net *C.chipnet
}

// NewChipDescriber loads dlib_face_recognition_resnet_model_v1.dat from
// modelsDir.
func NewChipDescriber(modelsDir string) (*ChipDescriber, error) {
	return newChipDescriber(filepath.Join(modelsDir, ModelFiles[0]), false)
}

// newChipDescriber can make the network divide input pixels by 255 as TF.js
// ports do, instead of dlib's 256 (tfjsInputScale), to measure what that
// difference does.
func newChipDescriber(path string, tfjsInputScale bool) (*ChipDescriber, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	scale := C.int(0)
	if tfjsInputScale {
		scale = 1
	}
	var cerr *C.char
	n := C.chipnet_new(cpath, scale, &cerr)
	if n == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("loading %s (run `make models`): %s", path, C.GoString(cerr))
	}
	return &ChipDescriber{net: n}, nil
}

// Describe returns the 128-d descriptor of a 150x150 face chip. Alpha is
// dropped; grey images are used as RGB.
func (c *ChipDescriber) Describe(img image.Image) ([]float32, error) {
	if img == nil {
		return nil, errors.New("templates: no chip image")
	}
	b := img.Bounds()
	if b.Dx() != ChipSize || b.Dy() != ChipSize {
		return nil, fmt.Errorf("templates: a face chip must be %dx%d pixels, got %dx%d", ChipSize, ChipSize, b.Dx(), b.Dy())
	}
	rgba := image.NewRGBA(image.Rect(0, 0, ChipSize, ChipSize))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	rgb := make([]byte, 0, ChipSize*ChipSize*3)
	for i := 0; i < len(rgba.Pix); i += 4 {
		rgb = append(rgb, rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2])
	}
	out := make([]float32, 128)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.net == nil {
		return nil, errors.New("templates: ChipDescriber is closed")
	}
	var cerr *C.char
	if C.chipnet_describe(c.net, (*C.uint8_t)(unsafe.Pointer(&rgb[0])), (*C.float)(unsafe.Pointer(&out[0])), &cerr) != 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("templates: dlib: %s", C.GoString(cerr))
	}
	return out, nil
}

// Close frees the network.
func (c *ChipDescriber) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.net != nil {
		C.chipnet_free(c.net)
		c.net = nil
	}
	return nil
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
