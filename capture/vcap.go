package capture

// #cgo pkg-config: opencv4
// #cgo CXXFLAGS: -std=c++17 -O2
// #include <stdlib.h>
// #include "vcap.h"
import "C"

import (
	"errors"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// vcap is a cv::VideoCapture opened with open and read timeouts, which
// gocv 0.31's VideoCapture cannot set (they are open-only properties in
// OpenCV 4.6, honoured by the FFmpeg backend). Not safe for concurrent use.
type vcap struct{ p *C.vcap }

func openVcap(uri string, api gocv.VideoCaptureAPI, openTimeout, readTimeout time.Duration) (*vcap, error) {
	curi := C.CString(uri)
	defer C.free(unsafe.Pointer(curi))
	var cerr *C.char
	p := C.vcap_open(curi, C.int(api), C.int(openTimeout.Milliseconds()), C.int(readTimeout.Milliseconds()), &cerr)
	if p == nil {
		defer C.free(unsafe.Pointer(cerr))
		return nil, errors.New(C.GoString(cerr))
	}
	return &vcap{p: p}, nil
}

// read reads the next frame into m: false without one (end of a file,
// timeout, lost stream), an error when OpenCV threw (a bad frame).
func (v *vcap) read(m *gocv.Mat) (bool, error) {
	var cerr *C.char
	switch C.vcap_read(v.p, unsafe.Pointer(m.Ptr()), &cerr) {
	case 1:
		return true, nil
	case 0:
		return false, nil
	}
	defer C.free(unsafe.Pointer(cerr))
	return false, errors.New(C.GoString(cerr))
}

func (v *vcap) get(prop gocv.VideoCaptureProperties) float64 {
	return float64(C.vcap_get(v.p, C.int(prop)))
}

func (v *vcap) set(prop gocv.VideoCaptureProperties, val float64) bool {
	return C.vcap_set(v.p, C.int(prop), C.double(val)) == 1
}

func (v *vcap) close() {
	if v.p != nil {
		C.vcap_close(v.p)
		v.p = nil
	}
}
