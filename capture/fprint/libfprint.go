package fprint

/*
#cgo pkg-config: libfprint-2
#include "glue.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"runtime"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/bordermatch/bordermatch/capture/fpimage"
)

// DeviceInfo describes a scanner libfprint found.
type DeviceInfo struct {
	// Index is the device's place in libfprint's list, which Open accepts.
	Index int
	// ID is libfprint's device id for the driver. Not unique across
	// drivers: both virtual devices are "0".
	ID string
	// Driver is the libfprint driver ("elan", "uru4000", "virtual_image" …).
	Driver string
	// Name is the driver's name for the device ("Digital Persona U.are.U 4000/4000B/4500").
	Name string
	// Swipe: the sensor is swiped over rather than pressed.
	Swipe bool
	// Images: the device gives out images (libfprint's capture feature).
	// Match-on-chip sensors do not, and Open refuses them.
	Images bool
}

func (d DeviceInfo) String() string {
	return fmt.Sprintf("[%d] %s %q (id %s)", d.Index, d.Driver, d.Name, d.ID)
}

// The loop thread (see glue.h).
var (
	loopOnce sync.Once
	loopErr  error
)

func start() error {
	loopOnce.Do(func() {
		ready := make(chan error, 1)
		h := cgo.NewHandle(ready)
		defer h.Delete()
		go func() {
			// Never unlocked: the thread is GLib's main loop from now on.
			runtime.LockOSThread()
			C.bm_loop_run(C.uintptr_t(h))
		}()
		loopErr = <-ready
	})
	return loopErr
}

//export goFprintReady
func goFprintReady(h C.uintptr_t, msg *C.char) {
	var err error
	if msg != nil {
		err = fmt.Errorf("fprint: cannot start libfprint: %s", C.GoString(msg))
	}
	cgo.Handle(h).Value().(chan error) <- err
}

//export goFprintRun
func goFprintRun(h C.uintptr_t) {
	hd := cgo.Handle(h)
	f := hd.Value().(func())
	hd.Delete()
	f()
}

// onLoop runs f on the loop thread and waits for it. f must not block.
func onLoop(f func()) {
	done := make(chan struct{})
	C.bm_invoke(C.uintptr_t(cgo.NewHandle(func() { f(); close(done) })))
	<-done
}

//export goFprintDone
func goFprintDone(h C.uintptr_t, gerr *C.GError) {
	cgo.Handle(h).Value().(chan error) <- gError(gerr)
}

// captured is a capture's outcome.
type captured struct {
	img  *image.Gray
	ppmm float64
	err  error
}

//export goFprintCaptured
func goFprintCaptured(h C.uintptr_t, img *C.FpImage, gerr *C.GError) {
	var r captured
	switch {
	case gerr != nil:
		r.err = gError(gerr)
	case img == nil:
		r.err = errors.New("fprint: the driver returned no image")
	default:
		w, ht := int(C.fp_image_get_width(img)), int(C.fp_image_get_height(img))
		var n C.gsize
		data := C.fp_image_get_data(img, &n)
		if w <= 0 || ht <= 0 || data == nil || int(n) != w*ht {
			r.err = fmt.Errorf("fprint: the driver returned a %d×%d image with %d bytes", w, ht, int(n))
			break
		}
		// Copied: libfprint frees the image when this returns.
		r.img = &image.Gray{
			Pix:    C.GoBytes(unsafe.Pointer(data), C.int(n)),
			Stride: w,
			Rect:   image.Rect(0, 0, w, ht),
		}
		r.ppmm = float64(C.fp_image_get_ppmm(img))
	}
	cgo.Handle(h).Value().(chan captured) <- r
}

// gError converts a GError (nil: success) into a Go error.
func gError(e *C.GError) error {
	if e == nil {
		return nil
	}
	msg := C.GoString(e.message)
	switch C.bm_error_kind(e) {
	case C.BM_ERR_RETRY:
		return fmt.Errorf("%w (%s)", ErrRetry, msg)
	case C.BM_ERR_CANCELLED:
		return context.Canceled
	case C.BM_ERR_REMOVED:
		return fmt.Errorf("%w (%s)", ErrRemoved, msg)
	}
	return errors.New("libfprint: " + msg)
}

// Devices lists the scanners libfprint finds (USB readers it has a driver
// for, and its virtual devices when their environment variables are set).
// The list follows hot-plugging.
func Devices() ([]DeviceInfo, error) {
	if err := start(); err != nil {
		return nil, err
	}
	var out []DeviceInfo
	onLoop(func() { out = listDevices(nil) })
	return out, nil
}

// listDevices reads libfprint's list on the loop thread; keep, when not
// nil, receives each device's FpDevice.
func listDevices(keep func(int, *C.FpDevice)) []DeviceInfo {
	n := int(C.bm_device_count())
	out := make([]DeviceInfo, 0, n)
	for i := range n {
		d := C.bm_device_at(C.guint(i))
		out = append(out, DeviceInfo{
			Index:  i,
			ID:     C.GoString(C.fp_device_get_device_id(d)),
			Driver: C.GoString(C.fp_device_get_driver(d)),
			Name:   C.GoString(C.fp_device_get_name(d)),
			Swipe:  C.fp_device_get_scan_type(d) == C.FP_SCAN_TYPE_SWIPE,
			Images: C.bm_device_can_capture(d) != 0,
		})
		if keep != nil {
			keep(i, d)
		}
	}
	return out
}

// Config configures OpenConfig.
type Config struct {
	// Device selects the scanner, as Open's name.
	Device string
	// DPI, when positive, is the scanner's resolution, over what the
	// driver reports (libfprint's drivers mostly report none, and 500 is
	// assumed then).
	DPI int
}

// Device is an open libfprint scanner. It is safe for concurrent use;
// captures are taken one at a time.
type Device struct {
	info DeviceInfo
	dpi  int
	dev  *C.FpDevice // our reference; used on the loop thread only

	busy chan struct{} // holds a token while a capture or Close runs

	mu     sync.Mutex
	cancel *C.GCancellable // the capture in progress's
	closed bool
}

var _ Scanner = (*Device)(nil)

// Open opens a scanner by name: its index in Devices ("0"), else its
// libfprint device id, its driver ("uru4000") or its name,
// case-insensitively, in that order; "" opens the first scanner that gives
// images. An id, driver or name that several devices share is refused as
// ambiguous: use the index. A match-on-chip scanner is refused with
// ErrNoImages.
func Open(name string) (*Device, error) { return OpenConfig(Config{Device: name}) }

// OpenConfig opens the scanner cfg.Device (as Open).
func OpenConfig(cfg Config) (*Device, error) {
	if err := start(); err != nil {
		return nil, err
	}
	var (
		info DeviceInfo
		dev  *C.FpDevice
		err  error
	)
	onLoop(func() {
		var devs []*C.FpDevice
		all := listDevices(func(_ int, d *C.FpDevice) { devs = append(devs, d) })
		var i int
		if i, err = pick(all, cfg.Device); err == nil {
			info, dev = all[i], devs[i]
			// Ours until Close: libfprint drops its own when the device is
			// unplugged.
			C.g_object_ref(C.gpointer(dev))
		}
	})
	if err != nil {
		return nil, err
	}
	if !info.Images {
		onLoop(func() { C.bm_unref(C.gpointer(dev)) })
		return nil, fmt.Errorf("%w: %s matches fingerprints on the chip", ErrNoImages, info)
	}
	done := make(chan error, 1)
	h := cgo.NewHandle(done)
	defer h.Delete()
	onLoop(func() { C.bm_open(dev, C.uintptr_t(h)) })
	if err := <-done; err != nil {
		onLoop(func() { C.bm_unref(C.gpointer(dev)) })
		return nil, &deviceError{"opening", info, err}
	}
	d := &Device{info: info, dpi: cfg.DPI, dev: dev, busy: make(chan struct{}, 1)}
	return d, nil
}

// pick finds name among the devices.
func pick(all []DeviceInfo, name string) (int, error) {
	found := func() string {
		if len(all) == 0 {
			return "libfprint found none (is the scanner plugged in, supported by libfprint, and its USB device readable by this user?)"
		}
		s := make([]string, len(all))
		for i, d := range all {
			s[i] = d.String()
		}
		return "libfprint found " + strings.Join(s, ", ")
	}
	if name == "" {
		for i, d := range all {
			if d.Images {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%w giving images: %s", ErrNoDevice, found())
	}
	if i, err := strconv.Atoi(name); err == nil {
		if i < 0 || i >= len(all) {
			return 0, fmt.Errorf("%w at index %d: %s", ErrNoDevice, i, found())
		}
		return i, nil
	}
	for _, match := range []func(DeviceInfo) bool{
		func(d DeviceInfo) bool { return d.ID == name },
		func(d DeviceInfo) bool { return d.Driver == name },
		func(d DeviceInfo) bool { return strings.EqualFold(d.Name, name) },
	} {
		var hits []int
		for i, d := range all {
			if match(d) {
				hits = append(hits, i)
			}
		}
		switch len(hits) {
		case 0:
			continue
		case 1:
			return hits[0], nil
		}
		return 0, fmt.Errorf("fprint: scanner %q is ambiguous, give its index: %s", name, found())
	}
	return 0, fmt.Errorf("%w %q: %s", ErrNoDevice, name, found())
}

// Info describes the scanner.
func (d *Device) Info() DeviceInfo { return d.info }

// Name is the driver's name for the device.
func (d *Device) Name() string { return d.info.Name }

// Capture waits for a finger on the scanner and returns its image. A bad
// scan returns ErrRetry; ctx ending cancels the capture in libfprint and
// returns ctx's error once the device is idle again.
func (d *Device) Capture(ctx context.Context) (Scan, error) {
	if err := ctx.Err(); err != nil {
		return Scan{}, d.captureErr(err)
	}
	select {
	case d.busy <- struct{}{}:
	case <-ctx.Done():
		return Scan{}, d.captureErr(ctx.Err())
	}
	defer func() { <-d.busy }()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return Scan{}, ErrClosed
	}
	cancel := C.g_cancellable_new()
	d.cancel = cancel
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.cancel = nil
		d.mu.Unlock()
		C.g_object_unref(C.gpointer(cancel))
	}()

	done := make(chan captured, 1)
	h := cgo.NewHandle(done)
	defer h.Delete()
	onLoop(func() { C.bm_capture(d.dev, cancel, C.uintptr_t(h)) })
	var r captured
	select {
	case r = <-done:
	case <-ctx.Done():
		cancelOnLoop(cancel)
		// libfprint finishes every operation, cancelled ones too; waiting
		// for it leaves the device idle for the next Capture.
		r = <-done
	}
	t := time.Now()
	if r.err != nil {
		if errors.Is(r.err, context.Canceled) {
			d.mu.Lock()
			closed := d.closed
			d.mu.Unlock()
			switch {
			case closed:
				return Scan{}, ErrClosed
			case ctx.Err() != nil:
				return Scan{}, d.captureErr(ctx.Err())
			}
		}
		return Scan{}, d.captureErr(r.err)
	}
	return Scan{
		Image:  r.img,
		DPI:    d.resolution(r.ppmm),
		Device: d.info.Name,
		Source: d.info.Driver + "/" + d.info.ID,
		Time:   t,
	}, nil
}

// cancelOnLoop cancels on the loop thread, where libfprint's "cancelled"
// handlers then run (they run on the cancelling thread).
func cancelOnLoop(c *C.GCancellable) {
	onLoop(func() { C.g_cancellable_cancel(c) })
}

// resolution: the configured one, else the driver's, else 500.
func (d *Device) resolution(ppmm float64) int {
	if d.dpi > 0 {
		return d.dpi
	}
	if dpi := int(math.Round(ppmm * 25.4)); fpimage.PlausibleDPI(dpi) {
		return dpi
	}
	return fpimage.DefaultDPI
}

// deviceError names the operation and the device that failed.
type deviceError struct {
	op  string
	dev DeviceInfo
	err error
}

func (e *deviceError) Error() string {
	return fmt.Sprintf("fprint: %s %s: %s", e.op, e.dev, strings.TrimPrefix(e.err.Error(), "fprint: "))
}

func (e *deviceError) Unwrap() error { return e.err }

func (d *Device) captureErr(err error) error { return &deviceError{"capture on", d.info, err} }

// Close cancels a capture in progress, closes the device and releases it.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if c := d.cancel; c != nil {
		// The capture unreferences its cancellable when it returns.
		C.g_object_ref(C.gpointer(c))
		defer C.g_object_unref(C.gpointer(c))
		d.mu.Unlock()
		cancelOnLoop(c)
	} else {
		d.mu.Unlock()
	}
	d.busy <- struct{}{} // the capture in progress has returned
	// Captures waiting for the device then find it closed.
	defer func() { <-d.busy }()
	done := make(chan error, 1)
	h := cgo.NewHandle(done)
	defer h.Delete()
	onLoop(func() { C.bm_close(d.dev, C.uintptr_t(h)) })
	err := <-done
	onLoop(func() { C.bm_unref(C.gpointer(d.dev)) })
	if err != nil && !errors.Is(err, ErrRemoved) {
		return &deviceError{"closing", d.info, err}
	}
	return nil
}

// State reads the device's state from libfprint.
func (d *Device) State() DeviceState {
	// Held so that Close cannot release the device meanwhile (nothing on
	// the loop thread takes it).
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return DeviceState{Closed: true}
	}
	st := DeviceState{Capturing: len(d.busy) > 0}
	onLoop(func() {
		st.Open = C.fp_device_is_open(d.dev) != 0
		st.Listed = C.bm_device_listed(d.dev) != 0
		fs := C.fp_device_get_finger_status(d.dev)
		st.FingerNeeded = fs&C.FP_FINGER_STATUS_NEEDED != 0
		st.FingerPresent = fs&C.FP_FINGER_STATUS_PRESENT != 0
		switch C.fp_device_get_temperature(d.dev) {
		case C.FP_TEMPERATURE_COLD:
			st.Temperature = "cold"
		case C.FP_TEMPERATURE_WARM:
			st.Temperature = "warm"
		case C.FP_TEMPERATURE_HOT:
			st.Temperature = "hot"
		}
	})
	return st
}
