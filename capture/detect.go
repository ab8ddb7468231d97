package capture

// #cgo CXXFLAGS: -std=c++17 -Wall -O3 -DNDEBUG -march=native
// #cgo LDFLAGS: -ldlib -lblas -lcblas -llapack
// #include <stdlib.h>
// #include "detect.h"
import "C"

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"unsafe"
)

// maxFaces bounds the faces reported per frame: a gate lane holds one
// traveller, a few more faces are people queueing behind.
const maxFaces = 8

// detected is a face found by faceDetector, in the coordinates of the image
// it was given.
type detected struct {
	box       image.Rectangle
	score     float64 // the HOG detector's confidence (margin over its threshold)
	landmarks [][2]float64
}

// faceDetector runs dlib's HOG detector and shape predictor only: no
// recognition network, which costs far more and is needed only for the one
// shot finally kept. Calls are serialised.
type faceDetector struct {
	mu    sync.Mutex
	d     *C.facedet
	model *landmarkModel
	np    int
}

// landmarkModel is a shape predictor loaded once per file and shared by
// every detector of the process: the 68-point model is 100 MB and takes
// seconds to read, and a server has a detector per assessment slot.
type landmarkModel struct {
	path string
	m    *C.facemodel
	refs int // detectors using it; guarded by landmarkModelsMu
}

var (
	landmarkModelsMu sync.Mutex
	landmarkModels   = map[string]*landmarkModel{}
)

// acquireLandmarkModel returns the model of path, loading it if no detector
// holds it; release it with releaseLandmarkModel.
func acquireLandmarkModel(path string) (*landmarkModel, error) {
	landmarkModelsMu.Lock()
	defer landmarkModelsMu.Unlock()
	if lm := landmarkModels[path]; lm != nil {
		lm.refs++
		return lm, nil
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	m := C.facemodel_load(cpath, &cerr)
	if m == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("capture: loading the landmark model %s (run `make models`): %s", path, C.GoString(cerr))
	}
	lm := &landmarkModel{path: path, m: m, refs: 1}
	landmarkModels[path] = lm
	return lm, nil
}

func releaseLandmarkModel(lm *landmarkModel) {
	landmarkModelsMu.Lock()
	defer landmarkModelsMu.Unlock()
	if lm.refs--; lm.refs == 0 {
		delete(landmarkModels, lm.path)
		C.facemodel_free(lm.m)
	}
}

func newFaceDetector(shapePredictor string) (*faceDetector, error) {
	lm, err := acquireLandmarkModel(shapePredictor)
	if err != nil {
		return nil, err
	}
	var cerr *C.char
	d := C.facedet_new(lm.m, &cerr)
	if d == nil {
		defer C.free(unsafe.Pointer(cerr))
		releaseLandmarkModel(lm)
		return nil, fmt.Errorf("capture: face detector: %s", C.GoString(cerr))
	}
	return &faceDetector{d: d, model: lm, np: int(C.facemodel_points(lm.m))}, nil
}

// detect finds faces in a grey image (w x h bytes, stride bytes a row).
func (f *faceDetector) detect(grey []byte, w, h, stride, upsample int) ([]detected, error) {
	if w <= 0 || h <= 0 || len(grey) < (h-1)*stride+w {
		return nil, fmt.Errorf("capture: bad grey image %dx%d stride %d (%d bytes)", w, h, stride, len(grey))
	}
	boxes := make([]C.int, 4*maxFaces)
	scores := make([]C.double, maxFaces)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.d == nil {
		return nil, errors.New("capture: face detector is closed")
	}
	points := make([]C.double, 2*f.np*maxFaces)
	var cerr *C.char
	n := int(C.facedet_detect(f.d, (*C.uint8_t)(unsafe.Pointer(&grey[0])), C.int(w), C.int(h), C.int(stride), C.int(upsample), maxFaces,
		&boxes[0], &scores[0], &points[0], &cerr))
	if n < 0 {
		defer C.free(unsafe.Pointer(cerr))
		return nil, fmt.Errorf("capture: dlib: %s", C.GoString(cerr))
	}
	out := make([]detected, n)
	for i := range out {
		out[i].box = image.Rect(int(boxes[4*i]), int(boxes[4*i+1]), int(boxes[4*i+2]), int(boxes[4*i+3]))
		out[i].score = float64(scores[i])
		out[i].landmarks = make([][2]float64, f.np)
		for p := 0; p < f.np; p++ {
			out[i].landmarks[p] = [2]float64{float64(points[2*(i*f.np+p)]), float64(points[2*(i*f.np+p)+1])}
		}
	}
	return out, nil
}

func (f *faceDetector) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.d != nil {
		C.facedet_free(f.d)
		f.d = nil
		releaseLandmarkModel(f.model)
	}
}
