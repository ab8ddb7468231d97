package face

// #cgo CXXFLAGS: -std=c++17 -Wall -O3 -DNDEBUG -march=native
// #cgo LDFLAGS: -ldlib -lblas -lcblas -llapack -ljpeg
// #include <stdlib.h>
// #include "detect.h"
import "C"

import (
	"fmt"
	"image"
	"sync"
	"unsafe"
)

// detection is one face a detector found, with its 68 landmarks, in the
// pixels of the image it was given.
type detection struct {
	box        image.Rectangle
	confidence float64
	cnn        bool // found by the CNN detector
	points     [68]image.Point
}

// shapes is dlib's 68-point shape predictor (100 MB in memory); one is
// shared by every worker of every extractor that loads the same file.
type shapes struct {
	p    *C.ffshapes
	path string
	refs int
}

var (
	shapesMu   sync.Mutex
	shapesByID = map[string]*shapes{}
)

// acquireShapes loads the predictor at path, or shares the one loaded
// already; releaseShapes frees it after its last user.
func acquireShapes(path string) (*shapes, error) {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if s, ok := shapesByID[path]; ok {
		s.refs++
		return s, nil
	}
	s, err := loadShapes(path)
	if err != nil {
		return nil, err
	}
	s.path, s.refs = path, 1
	shapesByID[path] = s
	return s, nil
}

func releaseShapes(s *shapes) {
	if s == nil {
		return
	}
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(shapesByID, s.path)
		s.close()
	}
}

func loadShapes(path string) (*shapes, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	p := C.ffshapes_load(cpath, &cerr)
	if p == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("loading %s (run `make models`): %s", path, C.GoString(cerr))
	}
	return &shapes{p: p}, nil
}

func (s *shapes) close() {
	if s != nil && s.p != nil {
		C.ffshapes_free(s.p)
		s.p = nil
	}
}

// detector is one worker's HOG and CNN detectors (not safe for concurrent
// use).
type detector struct{ p *C.ffdetector }

func newDetector(cnnPath string) (*detector, error) {
	var cpath *C.char
	if cnnPath != "" {
		cpath = C.CString(cnnPath)
		defer C.free(unsafe.Pointer(cpath))
	}
	var cerr *C.char
	p := C.ffdetector_new(cpath, &cerr)
	if p == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("loading %s (run `make models`): %s", cnnPath, C.GoString(cerr))
	}
	return &detector{p}, nil
}

func (d *detector) close() {
	if d != nil && d.p != nil {
		C.ffdetector_free(d.p)
		d.p = nil
	}
}

// maxDetections bounds the faces reported of one image; a crowd photo
// with more is refused or reduced to its largest faces all the same.
const maxDetections = 64

// detect runs the HOG (or CNN) detector on an RGB image, upsampled by 2
// first if asked, and places the landmarks on every face found.
func (d *detector) detect(s *shapes, rgb []byte, w, h int, cnn, upsample bool) ([]detection, error) {
	if len(rgb) != w*h*3 || w <= 0 || h <= 0 {
		return nil, fmt.Errorf("templates: %dx%d image with %d bytes", w, h, len(rgb))
	}
	out := make([]C.ffface, maxDetections)
	var cerr *C.char
	n := C.ffdetect(d.p, s.p, (*C.uint8_t)(unsafe.Pointer(&rgb[0])), C.int(w), C.int(h),
		cbool(cnn), cbool(upsample), &out[0], C.int(len(out)), &cerr)
	if n < 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("templates: dlib: %s", C.GoString(cerr))
	}
	dets := make([]detection, min(int(n), len(out)))
	for i := range dets {
		o := &out[i]
		dets[i] = detection{
			box:        image.Rect(int(o.left), int(o.top), int(o.right)+1, int(o.bottom)+1),
			confidence: float64(o.confidence),
			cnn:        cnn,
		}
		for j := range dets[i].points {
			dets[i].points[j] = image.Pt(int(o.points[2*j]), int(o.points[2*j+1]))
		}
	}
	return dets, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// dlibChip cuts dlib's own 150x150 chip for its face recognition network.
func dlibChip(rgb []byte, w, h int, pts [68]image.Point) (*image.RGBA, error) {
	var cp [136]C.long
	for i, p := range pts {
		cp[2*i], cp[2*i+1] = C.long(p.X), C.long(p.Y)
	}
	chip := image.NewRGBA(image.Rect(0, 0, ChipSize, ChipSize))
	buf := make([]byte, ChipSize*ChipSize*3)
	var cerr *C.char
	if C.ffdlibchip((*C.uint8_t)(unsafe.Pointer(&rgb[0])), C.int(w), C.int(h), &cp[0], (*C.uint8_t)(unsafe.Pointer(&buf[0])), &cerr) != 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("templates: dlib: %s", C.GoString(cerr))
	}
	for i := 0; i < ChipSize*ChipSize; i++ {
		chip.Pix[4*i], chip.Pix[4*i+1], chip.Pix[4*i+2], chip.Pix[4*i+3] = buf[3*i], buf[3*i+1], buf[3*i+2], 255
	}
	return chip, nil
}
