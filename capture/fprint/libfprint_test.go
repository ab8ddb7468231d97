//go:build cgo

package fprint

// Built with cgo only, as libfprint.go is (a file importing "C" is), so
// that the pure-Go Folder still builds, vets and tests with CGO_ENABLED=0.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// The tests drive libfprint's own virtual image device (driver
// virtual_image, built into Debian's libfprint-2-2): with FP_VIRTUAL_IMAGE
// naming a path when libfprint enumerates, the device listens on that Unix
// socket once opened, and a client feeds it scans. Each message is two
// native-endian int32s, then, for an image, width×height grey bytes; a
// negative width is a command (-1: retry with the code in the second int,
// -2: device error with that code).
var virtualSocket string

const fingers = "../../templates/finger/testdata"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bm-fprint-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Read by libfprint when this package first enumerates, in the first
	// test to call Devices or Open.
	virtualSocket = filepath.Join(dir, "virtual-image.socket")
	os.Setenv("FP_VIRTUAL_IMAGE", virtualSocket)
	// Only the virtual device, even on a machine with a scanner plugged in
	// (FP_DEVICE_EMULATION is not needed: it only changes some USB
	// drivers' behaviour under umockdev).
	os.Setenv("FP_DRIVERS_WHITELIST", "virtual_image:virtual_device")
	// libfprint's virtual match-on-chip device: it gives no images, and is
	// never written to here.
	os.Setenv("FP_VIRTUAL_DEVICE", filepath.Join(dir, "virtual-device.socket"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// openVirtual opens the virtual image device, closed when t ends.
func openVirtual(t *testing.T) *Device {
	t.Helper()
	d, err := Open("virtual_image")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// send plays the finger: it connects to the virtual device and writes one
// message. A new connection each time: libfprint drops the previous one,
// and reads from the new one only while a capture is waiting for a finger,
// so the message may be sent before or after Capture starts.
func send(t testing.TB, header [2]int32, pix []byte) {
	t.Helper()
	c, err := net.Dial("unix", virtualSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, header)
	b.Write(pix)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func sendImage(t testing.TB, g *image.Gray) {
	t.Helper()
	w, h := g.Rect.Dx(), g.Rect.Dy()
	pix := make([]byte, 0, w*h)
	for y := range h {
		pix = append(pix, g.Pix[y*g.Stride:y*g.Stride+w]...)
	}
	send(t, [2]int32{int32(w), int32(h)}, pix)
}

func loadGray(t testing.TB, path string) (*image.Gray, fpimage.Info) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, info, err := fpimage.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return g, info
}

type result struct {
	scan Scan
	err  error
}

// capture starts a Capture on d and returns its outcome's channel.
func capture(ctx context.Context, d *Device) <-chan result {
	ch := make(chan result, 1)
	go func() {
		s, err := d.Capture(ctx)
		ch <- result{s, err}
	}()
	return ch
}

func TestDevicesListsVirtualImage(t *testing.T) {
	devs, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, d := range devs {
		t.Logf("device %s images=%v swipe=%v", d, d.Images, d.Swipe)
		if d.Driver == "virtual_image" {
			found = true
			if !d.Images {
				t.Errorf("%s: libfprint says it gives no images", d)
			}
		}
	}
	if !found {
		t.Fatalf("libfprint lists no virtual_image device with FP_VIRTUAL_IMAGE=%s: %v", virtualSocket, devs)
	}
}

func TestOpenUnknownScanner(t *testing.T) {
	for _, name := range []string{"no-such-scanner", "99", "-1"} {
		d, err := Open(name)
		if err == nil {
			d.Close()
			t.Fatalf("Open(%q) opened %s", name, d.Info())
		}
		if !errors.Is(err, ErrNoDevice) {
			t.Errorf("Open(%q): %v, want ErrNoDevice", name, err)
		}
		// The message lists what is there, so that a gate's operator can fix
		// the configuration.
		if !strings.Contains(err.Error(), "virtual_image") {
			t.Errorf("Open(%q): %v does not list the scanners found", name, err)
		}
	}
}

func TestOpenMatchOnChip(t *testing.T) {
	d, err := Open("virtual_device")
	if err == nil {
		d.Close()
		t.Fatalf("opened %s, which gives no images", d.Info())
	}
	if !errors.Is(err, ErrNoImages) {
		t.Fatalf("Open(virtual_device): %v, want ErrNoImages", err)
	}
	t.Log(err)
}

func TestPick(t *testing.T) {
	moc := DeviceInfo{Index: 0, ID: "1", Driver: "goodixmoc", Name: "Goodix MOC Fingerprint Sensor"}
	a := DeviceInfo{Index: 1, ID: "2", Driver: "uru4000", Name: "Digital Persona U.are.U 4000/4000B/4500", Images: true}
	b := DeviceInfo{Index: 2, ID: "3", Driver: "uru4000", Name: "Digital Persona U.are.U 4000/4000B/4500", Images: true}
	c := DeviceInfo{Index: 3, ID: "usb-7", Driver: "elan", Name: "ElanTech Fingerprint Sensor", Images: true}
	all := []DeviceInfo{moc, a, b, c}
	for _, tc := range []struct {
		devs []DeviceInfo
		name string
		want int    // when err is ""
		err  string // part of the error
	}{
		{all, "", 1, ""}, // the first giving images
		{all, "2", 2, ""},
		{all, "usb-7", 3, ""},
		{all, "elan", 3, ""},
		{all, "elantech fingerprint SENSOR", 3, ""},
		{all, "goodixmoc", 0, ""}, // Open refuses it after
		{all, "uru4000", 0, "ambiguous"},
		{all, "4", 0, "no such fingerprint scanner at index 4"},
		{all, "aes3500", 0, `no such fingerprint scanner "aes3500": libfprint found [0] goodixmoc`},
		{[]DeviceInfo{moc}, "", 0, "giving images"},
		{nil, "", 0, "libfprint found none"},
	} {
		i, err := pick(tc.devs, tc.name)
		switch {
		case tc.err == "" && (err != nil || i != tc.want):
			t.Errorf("pick(%q) = %d, %v; want %d", tc.name, i, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("pick(%q) = %d, %v; want an error with %q", tc.name, i, err, tc.err)
		}
	}
}

func TestOpenTwice(t *testing.T) {
	openVirtual(t)
	d, err := Open("virtual_image")
	if err == nil {
		d.Close()
		t.Fatal("opened the virtual device twice")
	}
	if !strings.Contains(err.Error(), "already been opened") {
		t.Fatalf("second Open: %v", err)
	}
	t.Log(err)
}

// TestCaptureIdentify is the whole path: FVC images put on the virtual
// scanner, captured through libfprint, extracted, and identified against a
// gallery of other impressions of the same fingers.
func TestCaptureIdentify(t *testing.T) {
	ex := finger.NewExtractor(finger.Config{})
	idx := matcher.NewFingerIndex()
	enrol := func(id, path string) {
		g, info := loadGray(t, path)
		dpi := info.DPI
		if strings.Contains(path, "db2") {
			dpi = 569 // FVC2002 DB2's scanner; the TIFFs declare none
		}
		res, err := ex.Extract(g, dpi)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ft, err := matcher.PrepareFinger(res.View)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := idx.Add(id, minutiae.PositionUnknown, ft); err != nil {
			t.Fatal(err)
		}
	}
	enrol("db1-101", fingers+"/fvc2002_db1_b/101_1.tif")
	enrol("db1-102", fingers+"/fvc2002_db1_b/102_1.tif")
	enrol("db2-101", fingers+"/fvc2002_db2_b/101_1.tif")

	d := openVirtual(t)
	if d.Info().Driver != "virtual_image" {
		t.Fatalf("opened %s", d.Info())
	}
	for _, probe := range []struct{ path, want string }{
		{fingers + "/fvc2002_db1_b/101_2.tif", "db1-101"},
		{fingers + "/fvc2002_db1_b/102_3.tif", "db1-102"},
		{fingers + "/fvc2002_db1_b/101_3.tif", "db1-101"},
	} {
		g, _ := loadGray(t, probe.path)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ch := capture(ctx, d)
		sendImage(t, g)
		r := <-ch
		cancel()
		if r.err != nil {
			t.Fatalf("%s: %v", probe.path, r.err)
		}
		s := r.scan
		if s.Image.Rect != g.Rect || !bytes.Equal(s.Image.Pix, g.Pix) {
			t.Fatalf("%s: captured a %v image, sent %v (or other pixels)", probe.path, s.Image.Rect, g.Rect)
		}
		if s.DPI != 500 || s.Device != d.Name() || !strings.HasPrefix(s.Source, "virtual_image/") || s.Time.IsZero() {
			t.Errorf("%s: scan %d dpi from %q (%s) at %v", probe.path, s.DPI, s.Device, s.Source, s.Time)
		}
		res, err := ex.Extract(s.Image, s.DPI)
		if err != nil {
			t.Fatalf("%s: %v", probe.path, err)
		}
		ft, err := matcher.PrepareFinger(res.View)
		if err != nil {
			t.Fatal(err)
		}
		hits, err := idx.Search(ft, matcher.SearchOptions{K: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s via %s: %d minutiae, quality %d, hits %v", filepath.Base(probe.path), s.Source, len(res.View.Minutiae), res.Quality, hits)
		if len(hits) == 0 || hits[0].SubjectID != probe.want {
			t.Errorf("%s: rank 1 is %v, want %s", probe.path, hits, probe.want)
		}
	}
}

// TestDeviceState: the state is libfprint's: open and idle, waiting for a
// finger during a capture, closed after Close.
func TestDeviceState(t *testing.T) {
	d, err := Open("virtual_image")
	if err != nil {
		t.Fatal(err)
	}
	st := d.State()
	if !st.Open || !st.Listed || st.Closed || st.Capturing || !st.Ready() {
		t.Fatalf("opened: %+v (%s)", st, st)
	}
	t.Logf("opened: %s", st)
	ch := capture(context.Background(), d)
	deadline := time.Now().Add(10 * time.Second)
	for st = d.State(); !st.FingerNeeded; st = d.State() {
		if time.Now().After(deadline) {
			t.Fatalf("capturing: %+v (%s)", st, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !st.Capturing || !strings.Contains(st.String(), "waiting for a finger") {
		t.Fatalf("capturing: %+v (%s)", st, st)
	}
	t.Logf("capturing: %s", st)
	g, _ := loadGray(t, fingers+"/fvc2002_db1_b/101_1.tif")
	sendImage(t, g)
	if r := <-ch; r.err != nil {
		t.Fatal(r.err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if st = d.State(); !st.Closed || st.Ready() || st.String() != "closed" {
		t.Fatalf("closed: %+v (%s)", st, st)
	}
}

func TestCaptureRetry(t *testing.T) {
	d := openVirtual(t)
	ch := capture(context.Background(), d)
	send(t, [2]int32{-1, 1}, nil) // FP_DEVICE_RETRY_TOO_SHORT
	r := <-ch
	if !errors.Is(r.err, ErrRetry) {
		t.Fatalf("a retry from the scanner gave %v, want ErrRetry", r.err)
	}
	t.Log(r.err)
	// The device takes the next finger.
	g, _ := loadGray(t, fingers+"/fvc2002_db1_b/102_2.tif")
	ch = capture(context.Background(), d)
	sendImage(t, g)
	if r := <-ch; r.err != nil || !bytes.Equal(r.scan.Image.Pix, g.Pix) {
		t.Fatalf("capture after a retry: %v", r.err)
	}
}

func TestCaptureDeviceError(t *testing.T) {
	d := openVirtual(t)
	ch := capture(context.Background(), d)
	send(t, [2]int32{-2, 5}, nil) // FP_DEVICE_ERROR_PROTO
	r := <-ch
	if r.err == nil || errors.Is(r.err, ErrRetry) || !strings.Contains(r.err.Error(), "protocol") {
		t.Fatalf("a device error gave %v", r.err)
	}
	t.Log(r.err)
}

// TestCaptureCancel: a capture nobody puts a finger on ends with its
// context, cleanly: the device takes the next capture.
func TestCaptureCancel(t *testing.T) {
	d := openVirtual(t)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := d.Capture(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Capture past its deadline: %v", err)
	}
	t.Logf("deadline: %v after %v", err, time.Since(start).Round(time.Millisecond))

	ctx, cancel = context.WithCancel(context.Background())
	ch := capture(ctx, d)
	time.Sleep(100 * time.Millisecond)
	cancel()
	if r := <-ch; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Capture: %v", r.err)
	}

	// Already cancelled: no capture at all.
	if _, err := d.Capture(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Capture with a cancelled context: %v", err)
	}

	g, _ := loadGray(t, fingers+"/fvc2002_db1_b/101_1.tif")
	ch = capture(context.Background(), d)
	sendImage(t, g)
	if r := <-ch; r.err != nil || !bytes.Equal(r.scan.Image.Pix, g.Pix) {
		t.Fatalf("capture after cancellations: %v", r.err)
	}
}

// TestCaptureSerialised: concurrent Captures on one device take turns,
// each getting one finger.
func TestCaptureSerialised(t *testing.T) {
	d := openVirtual(t)
	paths := []string{"101_1", "101_2", "102_1"}
	sent := map[string]bool{}
	var imgs []*image.Gray
	for _, p := range paths {
		g, _ := loadGray(t, fingers+"/fvc2002_db1_b/"+p+".tif")
		imgs = append(imgs, g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results := make(chan result, len(paths))
	var wg sync.WaitGroup
	for range paths {
		wg.Go(func() {
			s, err := d.Capture(ctx)
			results <- result{s, err}
		})
	}
	for i, g := range imgs {
		sendImage(t, g)
		r := <-results
		if r.err != nil {
			t.Fatalf("capture %d: %v", i, r.err)
		}
		for j, g := range imgs {
			if bytes.Equal(r.scan.Image.Pix, g.Pix) {
				if sent[paths[j]] {
					t.Fatalf("%s captured twice", paths[j])
				}
				sent[paths[j]] = true
			}
		}
	}
	wg.Wait()
	if len(sent) != len(paths) {
		t.Fatalf("captured %v of %v", sent, paths)
	}
}

// TestCloseDuringCapture: Close ends a waiting capture with ErrClosed, and
// the device opens again.
func TestCloseDuringCapture(t *testing.T) {
	d, err := Open("virtual_image")
	if err != nil {
		t.Fatal(err)
	}
	ch := capture(context.Background(), d)
	time.Sleep(100 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; !errors.Is(r.err, ErrClosed) {
		t.Fatalf("capture during Close: %v", r.err)
	}
	if _, err := d.Capture(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("capture after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d = openVirtual(t) // opens again
}

func TestOpenScanner(t *testing.T) {
	dir, _ := scanFolder(t)
	for _, tc := range []struct {
		spec   string
		dpi    int
		device string // Name() of what opens; "" for an error
		err    string
	}{
		{spec: "libfprint:virtual_image", device: "Virtual image device for debugging"},
		{spec: "libfprint:", device: "Virtual image device for debugging"},
		{spec: "libfprint:0", dpi: 1000, device: "Virtual image device for debugging"},
		{spec: "folder:" + dir, device: dir},
		{spec: "libfprint:no-such-scanner", err: "no such fingerprint scanner"},
		{spec: "folder:", err: "want libfprint:NAME or folder:DIR"},
		{spec: dir, err: "want libfprint:NAME or folder:DIR"},
		{spec: "camera:0", err: "want libfprint:NAME or folder:DIR"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := OpenScanner(tc.spec, tc.dpi)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Name() != tc.device {
				t.Fatalf("opened %q, want %q", s.Name(), tc.device)
			}
			if d, ok := s.(*Device); ok && tc.dpi > 0 {
				g, _ := loadGray(t, fingers+"/fvc2002_db1_b/101_1.tif")
				ch := capture(context.Background(), d)
				sendImage(t, g)
				if r := <-ch; r.err != nil || r.scan.DPI != tc.dpi {
					t.Fatalf("capture: %v at %d dpi, want %d", r.err, r.scan.DPI, tc.dpi)
				}
			}
		})
	}
}

// BenchmarkCaptureVirtual: one capture through libfprint, from the image
// reaching the virtual device's socket to the Scan. Most of it is the
// NBIS minutiae detection libfprint runs on every image it captures (to
// normalise its orientation, it says), which Bordermatch does not use.
func BenchmarkCaptureVirtual(b *testing.B) {
	d, err := Open("virtual_image")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	g, _ := loadGray(b, fingers+"/fvc2002_db1_b/101_1.tif")
	for b.Loop() {
		ch := capture(context.Background(), d)
		sendImage(b, g)
		if r := <-ch; r.err != nil {
			b.Fatal(r.err)
		}
	}
}

// TestUnplugged: the scanner disappearing (the virtual device's -5
// command, as a USB unplug) ends a capture with ErrRemoved, and the device
// leaves the list. In a child process, since the device is then gone for
// the rest of the process.
func TestUnplugged(t *testing.T) {
	if os.Getenv("BM_FPRINT_UNPLUG") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestUnplugged$", "-test.v")
		cmd.Env = append(os.Environ(), "BM_FPRINT_UNPLUG=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestUnplugged") {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		return
	}
	d, err := Open("virtual_image")
	if err != nil {
		t.Fatal(err)
	}
	ch := capture(context.Background(), d)
	send(t, [2]int32{-5, 0}, nil)
	r := <-ch
	if !errors.Is(r.err, ErrRemoved) {
		t.Fatalf("capture on an unplugged scanner: %v, want ErrRemoved", r.err)
	}
	t.Log(r.err)
	if err := d.Close(); err != nil {
		t.Fatalf("Close after unplugging: %v", err)
	}
	// libfprint drops the device from its list from an idle callback once
	// it is closed: soon, not at once.
	gone := time.After(10 * time.Second) // a bound, not a speed goal
	for listed := true; listed; {
		devs, err := Devices()
		if err != nil {
			t.Fatal(err)
		}
		listed = false
		for _, dv := range devs {
			listed = listed || dv.Driver == "virtual_image"
		}
		if listed {
			select {
			case <-gone:
				t.Fatal("still listed 10 s after unplugging")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if _, err := Open("virtual_image"); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Open after unplugging: %v, want ErrNoDevice", err)
	}
}
