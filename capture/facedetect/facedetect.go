// Package facedetect finds faces and their landmarks with dlib: the HOG
// frontal face detector, the MMOD CNN detector and a shape predictor. It
// serves the gate's best-shot selector (package capture), which assesses
// every frame, and the template extractor (templates/face), which aligns
// the face it keeps; a process loads each shape predictor (100 MB for
// the 68-point model) once, however many detectors use it.
package facedetect

// #cgo CXXFLAGS: -std=c++17 -Wall -O3 -DNDEBUG -march=native
// #cgo LDFLAGS: -ldlib -lblas -lcblas -llapack
// #include <stdlib.h>
// #include "facedetect.h"
import "C"

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"unsafe"
)

// The model files in a models directory that `make models` fills.
const (
	// ShapesFile is dlib's 68-point shape predictor (Debian's
	// libdlib-data), under the name go-face used to open.
	ShapesFile = "shape_predictor_5_face_landmarks.dat"
	// CNNFile is dlib's MMOD CNN face detector.
	CNNFile = "mmod_human_face_detector.dat"
)

// Shapes is a shape predictor, shared by every Detector of the process
// that opened the same file.
type Shapes struct {
	p      *C.fdshapes
	path   string
	points int
	refs   int // guarded by shapesMu
}

var (
	shapesMu sync.Mutex
	shapes   = map[string]*Shapes{}
)

// OpenShapes loads the shape predictor at path, or shares the one loaded
// already; Close it when done.
func OpenShapes(path string) (*Shapes, error) {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if s := shapes[path]; s != nil {
		s.refs++
		return s, nil
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	p := C.fdshapes_load(cpath, &cerr)
	if p == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("facedetect: loading the landmark model %s (run `make models`): %s", path, C.GoString(cerr))
	}
	s := &Shapes{p: p, path: path, points: int(C.fdshapes_points(p)), refs: 1}
	shapes[path] = s
	return s, nil
}

// Points is the number of landmarks the predictor places on a face (68 or
// 5 with dlib's models).
func (s *Shapes) Points() int { return s.points }

// Close releases the predictor; the last Close frees it.
func (s *Shapes) Close() {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(shapes, s.path)
		C.fdshapes_free(s.p)
		s.p = nil
	}
}

// loaded reports how many predictors the process holds (for tests).
func loaded() int {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	return len(shapes)
}

// Face is a face found, in the pixels of the image searched.
type Face struct {
	Box image.Rectangle
	// Confidence is the detector's score: the HOG detector's SVM margin or
	// the CNN's MMOD score, 0 at the detector's threshold.
	Confidence float64
	// Landmarks are the shape predictor's points, sub-pixel.
	Landmarks [][2]float64
}

// Image is an 8-bit image: grey (Channels 1) or RGB (Channels 3), rows
// Stride bytes apart.
type Image struct {
	Pix                    []byte
	W, H, Stride, Channels int
}

// Options adjust one search.
type Options struct {
	// CNN uses dlib's MMOD CNN detector instead of HOG (the Detector must
	// have loaded it).
	CNN bool
	// Upsample doubles the image's size this many times first, to find
	// faces smaller than the detector's 80-pixel window.
	Upsample int
	// Max bounds the faces reported; 0 means 64.
	Max int
}

// ErrClosed is returned by Detect after Close.
var ErrClosed = errors.New("facedetect: detector is closed")

// Detector runs the detectors and the shape predictor. It is safe for
// concurrent use; calls are serialised (the detectors keep scratch state),
// so a caller that wants parallel searches makes several.
type Detector struct {
	mu     sync.Mutex
	d      *C.fddetector
	shapes *Shapes
}

// NewDetector makes a detector placing the points of shapes (which must
// stay open while the detector is used) and, when cnnPath is not empty,
// loads the CNN detector from it.
func NewDetector(s *Shapes, cnnPath string) (*Detector, error) {
	var cpath *C.char
	if cnnPath != "" {
		cpath = C.CString(cnnPath)
		defer C.free(unsafe.Pointer(cpath))
	}
	var cerr *C.char
	d := C.fddetector_new(cpath, &cerr)
	if d == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("facedetect: loading %s (run `make models`): %s", cnnPath, C.GoString(cerr))
	}
	return &Detector{d: d, shapes: s}, nil
}

// Detect finds the faces in img.
func (d *Detector) Detect(img Image, opt Options) ([]Face, error) {
	if img.Channels != 1 && img.Channels != 3 {
		return nil, fmt.Errorf("facedetect: %d channels, want 1 or 3", img.Channels)
	}
	if img.W <= 0 || img.H <= 0 || img.Stride < img.W*img.Channels || len(img.Pix) < (img.H-1)*img.Stride+img.W*img.Channels {
		return nil, fmt.Errorf("facedetect: bad image %dx%d, %d channels, stride %d (%d bytes)", img.W, img.H, img.Channels, img.Stride, len(img.Pix))
	}
	if opt.Upsample < 0 || opt.Upsample > 2 {
		return nil, fmt.Errorf("facedetect: upsample %d must be 0, 1 or 2", opt.Upsample)
	}
	if opt.Max <= 0 {
		opt.Max = 64
	}
	np := d.shapes.points
	boxes := make([]C.double, 4*opt.Max)
	scores := make([]C.double, opt.Max)
	points := make([]C.double, 2*np*opt.Max)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.d == nil {
		return nil, ErrClosed
	}
	var cerr *C.char
	n := int(C.fddetect(d.d, d.shapes.p, (*C.uint8_t)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H), C.int(img.Stride), C.int(img.Channels),
		cbool(opt.CNN), C.int(opt.Upsample), C.int(opt.Max), &boxes[0], &scores[0], &points[0], &cerr))
	if n < 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("facedetect: dlib: %s", C.GoString(cerr))
	}
	out := make([]Face, min(n, opt.Max))
	for i := range out {
		b := boxes[4*i : 4*i+4]
		out[i] = Face{
			Box:        image.Rect(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
			Confidence: float64(scores[i]),
			Landmarks:  make([][2]float64, np),
		}
		for p := range np {
			out[i].Landmarks[p] = [2]float64{float64(points[2*(i*np+p)]), float64(points[2*(i*np+p)+1])}
		}
	}
	return out, nil
}

// Close frees the detectors (not the shape predictor).
func (d *Detector) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.d != nil {
		C.fddetector_free(d.d)
		d.d = nil
	}
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
