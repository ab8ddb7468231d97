package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// OpenDevice opens a V4L2 camera by path (/dev/video0) or index ("0").
// A missing device fails at once with ErrNoDevice.
func OpenDevice(ctx context.Context, dev string, opt Options) (Source, error) {
	path := dev
	if n, err := strconv.Atoi(dev); err == nil {
		if n < 0 {
			return nil, fmt.Errorf("%w: device index %d", ErrBadURI, n)
		}
		path = "/dev/video" + dev
	} else if !strings.HasPrefix(dev, "/dev/") {
		return nil, fmt.Errorf("%w: %q is neither a device path (/dev/videoN) nor an index", ErrBadURI, dev)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDevice, path, err)
	}
	s := newSource("v4l2:"+path, opt, nil)
	s.open = func() (grabber, error) {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoDevice, path, err)
		}
		return openCapture(path, gocv.VideoCaptureV4L2, s.opt)
	}
	return s.start(ctx)
}

// OpenStream opens an RTSP or HTTP(S) stream through OpenCV's FFmpeg
// backend (RTSP over TCP). A stream that drops is reopened with backoff.
func OpenStream(ctx context.Context, url string, opt Options) (Source, error) {
	s := newSource(redact(url), opt, nil)
	s.open = func() (grabber, error) { return openCapture(url, gocv.VideoCaptureFFmpeg, s.opt) }
	return s.start(ctx)
}

// OpenFile reads a video file through OpenCV's FFmpeg backend, at the
// file's frame rate by default (see Options.FPS).
func OpenFile(ctx context.Context, path string, opt Options) (Source, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w video file %s: %v", ErrOpen, path, err)
	}
	s := newSource("file:"+path, opt, nil)
	s.block = opt.FPS < 0
	s.permanent = func(err error) bool { _, serr := os.Stat(path); return serr != nil }
	s.open = func() (grabber, error) {
		g, err := openCapture(path, gocv.VideoCaptureFFmpeg, s.opt)
		if err != nil {
			return nil, err
		}
		g.file = true
		g.loop = opt.Loop
		g.fps = opt.FPS
		if g.fps == 0 {
			g.fps = g.vc.get(gocv.VideoCaptureFPS)
		}
		g.start = time.Now()
		return g, nil
	}
	return s.start(ctx)
}

// captureGrabber reads through an OpenCV VideoCapture (vcap.cc).
type captureGrabber struct {
	vc    *vcap
	name  string
	file  bool
	loop  bool
	fps   float64
	n     int
	start time.Time
}

// OpenCV's FFmpeg backend reads RTSP over UDP by default, which loses
// packets (and so frames) on busy links and does not pass many firewalls;
// TCP is what gate installations use. The variable is read at every open,
// so it is set once before the first one unless the operator set it.
var ffmpegOptionsOnce sync.Once

func setFFmpegOptions() {
	ffmpegOptionsOnce.Do(func() {
		if _, ok := os.LookupEnv("OPENCV_FFMPEG_CAPTURE_OPTIONS"); !ok {
			os.Setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
		}
	})
}

func openCapture(uri string, api gocv.VideoCaptureAPI, opt Options) (*captureGrabber, error) {
	if api == gocv.VideoCaptureFFmpeg {
		setFFmpegOptions()
	}
	vc, err := openVcap(uri, api, opt.OpenTimeout, opt.ReadTimeout)
	if err != nil {
		why := "no such device, or not a video device"
		if api == gocv.VideoCaptureFFmpeg {
			why = fmt.Sprintf("unreachable, refused, no such stream or file, not a video, or no answer within %v", opt.OpenTimeout)
		}
		return nil, fmt.Errorf("%w %s: OpenCV's %s backend: %v (%s)", ErrOpen, redact(uri), backendName(api), err, why)
	}
	return &captureGrabber{vc: vc, name: redact(uri)}, nil
}

var errNoFrame = errors.New("capture: stream gave no frame")

func (g *captureGrabber) grab(m *gocv.Mat) error {
	if g.file && g.fps > 0 {
		due := g.start.Add(time.Duration(float64(g.n) / g.fps * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
	}
	ok, err := g.vc.read(m)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errDecode, g.name, err)
	}
	if !ok || m.Empty() {
		if g.file {
			if g.loop && g.n > 0 {
				g.vc.set(gocv.VideoCapturePosFrames, 0)
				g.start, g.n = time.Now(), 0
				if ok, _ := g.vc.read(m); ok && !m.Empty() {
					g.n++
					return nil
				}
			}
			return io.EOF
		}
		return fmt.Errorf("%w: %s", errNoFrame, g.name)
	}
	g.n++
	return nil
}

func (g *captureGrabber) close() { g.vc.close() }

func backendName(api gocv.VideoCaptureAPI) string {
	switch api {
	case gocv.VideoCaptureFFmpeg:
		return "FFmpeg"
	case gocv.VideoCaptureV4L2:
		return "V4L2"
	case gocv.VideoCaptureGstreamer:
		return "GStreamer"
	}
	return fmt.Sprintf("#%d", int(api))
}
