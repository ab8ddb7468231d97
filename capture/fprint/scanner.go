// Package fprint captures fingerprint images for the matcher: from live
// scanners through libfprint (the fprint project's library, which drives
// most USB fingerprint readers on Linux), and from folders of earlier scans
// replayed in order. Both give a Scan: an 8-bit grey image with the
// resolution to extract it at. Scanners return images; the caller
// extracts (templates/finger), so this package links no extractor.
//
// libfprint is a GLib library whose devices all run on GLib's global
// default main context. The first call into this package (Devices, Open)
// starts a thread that owns that context for the rest of the process and
// makes every libfprint call; nothing else in the process may run the
// default main context after that. Captures on different devices proceed
// at once; captures on one device are serialised.
package fprint

import (
	"context"
	"errors"
	"fmt"
	"image"
	"strings"
	"time"
)

// Scanner is a source of fingerprint scans: a live scanner or a replay.
type Scanner interface {
	// Capture waits for the next scan. It returns when ctx is done, with
	// ctx's error wrapped, and leaves the scanner ready for another
	// Capture.
	Capture(ctx context.Context) (Scan, error)
	// Name names the scanner in logs and errors.
	Name() string
	// Close releases the scanner; a Capture in progress returns ErrClosed.
	Close() error
}

// Scan is one captured fingerprint image.
type Scan struct {
	Image *image.Gray
	// DPI is the resolution to extract the image at: the one the device or
	// the file declares, else the one configured, else 500 (libfprint's
	// own assumption for its drivers, and the extractor's default).
	DPI int
	// Device names the scanner (Scanner.Name).
	Device string
	// Source says where the image came from: "driver/device-id" for
	// libfprint, the file's path for a folder.
	Source string
	// Time is when the scan was taken (libfprint) or read (folder).
	Time time.Time
}

// StateReader is a Scanner that reports its state: Device (read from
// libfprint) and Folder.
type StateReader interface {
	State() DeviceState
}

// DeviceState is a scanner's state as the device reports it (libfprint's
// fp_device_* getters; a Folder is open until closed).
type DeviceState struct {
	// Open: libfprint has the device open (fp_device_is_open).
	Open bool
	// Listed: the device is still in libfprint's list; false once it was
	// unplugged.
	Listed bool
	// FingerNeeded: the sensor waits for a finger; FingerPresent: a finger
	// is on it (fp_device_get_finger_status).
	FingerNeeded, FingerPresent bool
	// Temperature is the sensor's: "cold", "warm" or "hot" (a hot sensor
	// cannot be used until it cools).
	Temperature string
	// Capturing: a Capture is running on the device.
	Capturing bool
	// Closed: Close was called.
	Closed bool
}

// String is the state in a few words, e.g. "open, waiting for a finger".
func (s DeviceState) String() string {
	var p []string
	switch {
	case s.Closed:
		p = append(p, "closed")
	case !s.Listed:
		p = append(p, "removed")
	case s.Open:
		p = append(p, "open")
	default:
		p = append(p, "not open")
	}
	switch {
	case s.FingerPresent:
		p = append(p, "finger on the sensor")
	case s.FingerNeeded:
		p = append(p, "waiting for a finger")
	case s.Capturing:
		p = append(p, "capturing")
	case s.Open && s.Listed && !s.Closed:
		p = append(p, "idle")
	}
	if s.Temperature != "" && s.Temperature != "cold" {
		p = append(p, "sensor "+s.Temperature)
	}
	return strings.Join(p, ", ")
}

// Ready: the device can take a capture now (open, plugged in, not hot).
func (s DeviceState) Ready() bool {
	return s.Open && s.Listed && !s.Closed && s.Temperature != "hot"
}

var (
	// ErrClosed: the scanner was closed, before or during the call.
	ErrClosed = errors.New("fprint: scanner closed")
	// ErrNoDevice: no scanner matches the name given to Open.
	ErrNoDevice = errors.New("fprint: no such fingerprint scanner")
	// ErrNoImages: the scanner matches on the chip and gives out no images
	// (most recent laptop sensors), so Bordermatch cannot use it.
	ErrNoImages = errors.New("fprint: scanner gives no images")
	// ErrRetry: the scan was bad (too short a swipe, finger off-centre,
	// poor quality); the traveller should present the finger again.
	ErrRetry = errors.New("fprint: bad scan, present the finger again")
	// ErrRemoved: the scanner was unplugged.
	ErrRemoved = errors.New("fprint: scanner removed")
)

// OpenScanner opens the scanner a configuration string names:
// "libfprint:NAME" (NAME as Open takes it; "libfprint:" is the first
// scanner giving images) or "folder:DIR" (a replay, looping). dpi, when
// positive, is the scanner's resolution: over the driver's for libfprint,
// for the images that declare none for a folder.
func OpenScanner(spec string, dpi int) (Scanner, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	switch {
	case !ok:
	case kind == "libfprint":
		return OpenConfig(Config{Device: arg, DPI: dpi})
	case kind == "folder" && arg != "":
		return OpenFolder(arg, FolderConfig{DPI: dpi, Loop: true})
	}
	return nil, fmt.Errorf("fprint: scanner %q: want libfprint:NAME or folder:DIR", spec)
}
