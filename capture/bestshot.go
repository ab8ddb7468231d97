package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"path/filepath"
	"time"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/capture/facedetect"
)

// LandmarkModelFile is the landmark model a Selector loads from its models
// directory, the one templates/face's extractor opens too (facedetect
// shares it), which `make models` builds.
const LandmarkModelFile = facedetect.ShapesFile

// maxFaces bounds the faces reported per frame: a gate lane holds one
// traveller, a few more faces are people queueing behind.
const maxFaces = 8

// SelectorConfig configures a Selector.
type SelectorConfig struct {
	// ModelsDir holds the landmark model (LandmarkModelFile, which
	// `make models` builds).
	ModelsDir string
	// DetectWidth: frames wider than this are scaled down to it for face
	// detection (default 640). The HOG detector's cost grows with the
	// pixel count, and it finds faces down to about 80 pixels across in the
	// image it sees: at 640 a face must be about an eighth of a 1080p
	// frame's width. Quality is measured on the full frame.
	DetectWidth int
	// Upsample doubles the detection image this many times first (default
	// 0), to find smaller faces at four times the cost per step.
	Upsample int
	// MaxDetectFPS caps how many frames a second BestShot assesses, to leave
	// CPU to other work; 0: as many as the CPU allows. Frames arriving
	// meanwhile are dropped by the Source, never queued.
	MaxDetectFPS float64
	Quality      QualityConfig
}

// Candidate is a face found in a frame and its quality.
type Candidate struct {
	// Box is the detector's face rectangle in frame pixels.
	Box image.Rectangle
	// Landmarks in frame pixels (68 points with the model `make models`
	// builds).
	Landmarks []image.Point
	Quality   FaceQuality
}

// Selector finds faces in frames and rates them, to keep the best shot of a
// traveller. A Selector serialises its detector: use one per camera. The
// selectors of a process share one landmark model per file, so a second
// one costs a HOG detector (a few MB), not another 100 MB model.
type Selector struct {
	cfg    SelectorConfig
	shapes *facedetect.Shapes
	det    *facedetect.Detector
}

// NewSelector loads the landmark model, unless another open Selector has
// loaded it already.
func NewSelector(cfg SelectorConfig) (*Selector, error) {
	if cfg.DetectWidth <= 0 {
		cfg.DetectWidth = 640
	}
	if cfg.DetectWidth < 80 {
		return nil, fmt.Errorf("capture: DetectWidth %d is too small to find faces", cfg.DetectWidth)
	}
	if cfg.Upsample < 0 || cfg.Upsample > 2 {
		return nil, fmt.Errorf("capture: Upsample %d must be 0, 1 or 2", cfg.Upsample)
	}
	cfg.Quality.defaults()
	if err := cfg.Quality.validate(); err != nil {
		return nil, err
	}
	if cfg.ModelsDir == "" {
		cfg.ModelsDir = "."
	}
	shapes, err := facedetect.OpenShapes(filepath.Join(cfg.ModelsDir, LandmarkModelFile))
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	// HOG only: every frame is assessed, and the next frame is another
	// chance, so the CNN's cost buys nothing here.
	det, err := facedetect.NewDetector(shapes, "")
	if err != nil {
		shapes.Close()
		return nil, fmt.Errorf("capture: %w", err)
	}
	return &Selector{cfg: cfg, shapes: shapes, det: det}, nil
}

// Config returns the configuration in use, defaults filled in.
func (s *Selector) Config() SelectorConfig { return s.cfg }

// Close frees the detector, and the landmark model when no other Selector
// uses it.
func (s *Selector) Close() error {
	s.det.Close()
	s.shapes.Close()
	return nil
}

// Assess finds the faces in an 8-bit BGR (or grey) frame and rates each,
// largest first. It does not keep or close frame.
func (s *Selector) Assess(frame gocv.Mat) ([]Candidate, error) {
	if frame.Empty() {
		return nil, errors.New("capture: empty frame")
	}
	if t := frame.Type(); t != gocv.MatTypeCV8UC3 && t != gocv.MatTypeCV8UC1 {
		return nil, fmt.Errorf("capture: frame type %v, want 8-bit BGR or grey", t)
	}
	scale := 1.0
	if frame.Cols() > s.cfg.DetectWidth {
		scale = float64(s.cfg.DetectWidth) / float64(frame.Cols())
	}
	small := gocv.NewMat()
	defer small.Close()
	if scale < 1 {
		gocv.Resize(frame, &small, image.Point{}, scale, scale, gocv.InterpolationArea)
	} else {
		frame.CopyTo(&small)
	}
	grey := gocv.NewMat()
	defer grey.Close()
	if small.Channels() == 1 {
		small.CopyTo(&grey)
	} else {
		gocv.CvtColor(small, &grey, gocv.ColorBGRToGray)
	}
	pix := grey.ToBytes()
	found, err := s.det.Detect(facedetect.Image{Pix: pix, W: grey.Cols(), H: grey.Rows(), Stride: grey.Cols(), Channels: 1},
		facedetect.Options{Upsample: s.cfg.Upsample, Max: maxFaces})
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, 0, len(found))
	up := func(v float64) float64 { return v / scale }
	for _, d := range found {
		c := Candidate{
			Box: image.Rect(int(up(float64(d.Box.Min.X))), int(up(float64(d.Box.Min.Y))),
				int(up(float64(d.Box.Max.X))), int(up(float64(d.Box.Max.Y)))),
			Landmarks: make([]image.Point, len(d.Landmarks)),
		}
		lm := make([][2]float64, len(d.Landmarks))
		for i, p := range d.Landmarks {
			lm[i] = [2]float64{up(p[0]), up(p[1])}
			c.Landmarks[i] = image.Pt(int(math.Round(lm[i][0])), int(math.Round(lm[i][1])))
		}
		q := &c.Quality
		q.Confidence = d.Confidence
		var le, re [2]float64
		var ok bool
		q.Yaw, q.Roll, le, re, ok = pose(lm)
		if ok {
			q.InterEye = math.Hypot(re[0]-le[0], re[1]-le[1])
		}
		if err := measure(frame, c.Box, q); err != nil {
			q.Reject = err.Error()
		} else if !ok {
			q.Reject = fmt.Sprintf("landmark model with %d points: no pose", len(lm))
		} else {
			s.cfg.Quality.score(q)
		}
		out = append(out, c)
	}
	byArea(out)
	return out, nil
}

// Shot is the best face of a window.
type Shot struct {
	// JPEG is the face with a margin around it (about one face width each
	// side), at full resolution: what the matcher's extractor takes
	// (templates/face.Extractor.Extract).
	JPEG []byte
	// Box and Landmarks are in the frame's pixels.
	Box       image.Rectangle
	Landmarks []image.Point
	Quality   FaceQuality
	// Seq and Time are those of the frame it came from.
	Seq  uint64
	Time time.Time
	// Frames counts the frames assessed in the window, FaceFrames those
	// with a usable face. FirstFace is when a usable face was first seen.
	Frames, FaceFrames int
	FirstFace          time.Time
}

// Window keeps the best face over a series of frames. It is not safe for
// concurrent use.
type Window struct {
	sel       *Selector
	best      Candidate
	have      bool
	crop      gocv.Mat // the best face's surroundings, owned
	cropBox   image.Rectangle
	seq       uint64
	at        time.Time
	frames    int
	faceFrame int
	first     time.Time
}

// NewWindow starts an empty window.
func (s *Selector) NewWindow() *Window { return &Window{sel: s} }

// Offer assesses a frame and keeps its largest usable face if it beats the
// best so far. It returns that face (Quality.Reject says why it is not
// usable; ok is false when the frame had no face) and whether it became the
// best. The frame stays the caller's.
func (w *Window) Offer(f Frame) (c Candidate, ok, improved bool, err error) {
	cands, err := w.sel.Assess(f.Mat)
	if err != nil {
		return Candidate{}, false, false, err
	}
	w.frames++
	if len(cands) == 0 {
		return Candidate{}, false, false, nil
	}
	// The largest face is the traveller at the gate; others queue behind.
	c = cands[0]
	if c.Quality.Reject != "" {
		return c, true, false, nil
	}
	w.faceFrame++
	if w.first.IsZero() {
		w.first = f.Time
		if w.first.IsZero() {
			w.first = time.Now()
		}
	}
	if w.have && c.Quality.Score <= w.best.Quality.Score {
		return c, true, false, nil
	}
	fb := image.Rect(0, 0, f.Mat.Cols(), f.Mat.Rows())
	bw, bh := c.Box.Dx(), c.Box.Dy()
	r := image.Rect(c.Box.Min.X-bw, c.Box.Min.Y-bh, c.Box.Max.X+bw, c.Box.Max.Y+bh*3/4).Intersect(fb)
	if r.Empty() {
		return c, true, false, nil
	}
	roi := f.Mat.Region(r)
	if w.crop.Ptr() == nil {
		w.crop = gocv.NewMat()
	}
	roi.CopyTo(&w.crop)
	roi.Close()
	w.best, w.have, w.cropBox, w.seq, w.at = c, true, r, f.Seq, f.Time
	return c, true, true, nil
}

// TargetReached reports whether the best face meets every quality target.
func (w *Window) TargetReached() bool { return w.have && w.best.Quality.MeetsTarget }

// Best returns the best face so far; false when no usable face was seen.
func (w *Window) Best() (Shot, bool, error) {
	if !w.have {
		return Shot{}, false, nil
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, w.crop, []int{gocv.IMWriteJpegQuality, 95})
	if err != nil {
		return Shot{}, false, fmt.Errorf("capture: encoding the best shot: %w", err)
	}
	jpg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	return Shot{
		JPEG: jpg, Box: w.best.Box, Landmarks: w.best.Landmarks, Quality: w.best.Quality,
		Seq: w.seq, Time: w.at, Frames: w.frames, FaceFrames: w.faceFrame, FirstFace: w.first,
	}, true, nil
}

// Close frees the kept face.
func (w *Window) Close() {
	if w.crop.Ptr() != nil {
		w.crop.Close()
		w.crop = gocv.Mat{}
	}
	w.have = false
}

// ErrNoShot: no usable face was seen in the window.
var ErrNoShot = errors.New("capture: no usable face")

// BestShotOptions adjust one BestShot call.
type BestShotOptions struct {
	// Window is how long to watch (default 3s), from the call.
	Window time.Duration
	// FullWindow watches the whole window even after a face meets every
	// quality target (by default it stops there).
	FullWindow bool
}

// BestShot reads src for a time window and returns its best face, early
// when one meets every quality target. It takes the newest frame each time
// it is ready for one, so the detector's speed sets how many frames are
// assessed and never delays the camera. It fails with ErrNoShot (wrapped,
// with the last reason a face was not used) when no usable face was seen,
// and with the source's error when the source ended or failed before any
// usable face.
func (s *Selector) BestShot(ctx context.Context, src Source, opt BestShotOptions) (Shot, error) {
	if opt.Window <= 0 {
		opt.Window = 3 * time.Second
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, opt.Window)
	defer cancel()
	w := s.NewWindow()
	defer w.Close()
	var minGap time.Duration
	if s.cfg.MaxDetectFPS > 0 {
		minGap = time.Duration(float64(time.Second) / s.cfg.MaxDetectFPS)
	}
	var last time.Time
	var lastReject string
	var srcErr error
	for {
		if minGap > 0 && !last.IsZero() {
			if d := minGap - time.Since(last); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
		}
		f, err := src.Next(ctx)
		if err != nil {
			if perr := parent.Err(); perr != nil {
				return Shot{}, perr
			}
			if ctx.Err() == nil {
				srcErr = err // the source ended or failed, not the window
			}
			break
		}
		last = time.Now()
		c, ok, _, err := w.Offer(f)
		f.Close()
		if err != nil {
			return Shot{}, err
		}
		if ok && c.Quality.Reject != "" {
			lastReject = c.Quality.Reject
		}
		if w.TargetReached() && !opt.FullWindow {
			break
		}
	}
	shot, ok, err := w.Best()
	if err != nil {
		return Shot{}, err
	}
	if ok {
		return shot, nil
	}
	if srcErr != nil {
		if errors.Is(srcErr, io.EOF) {
			return Shot{}, fmt.Errorf("%w: the source ended after %d frames", ErrNoShot, w.frames)
		}
		return Shot{}, srcErr
	}
	if lastReject != "" {
		return Shot{}, fmt.Errorf("%w in %v (%d frames; last face seen: %s)", ErrNoShot, opt.Window, w.frames, lastReject)
	}
	return Shot{}, fmt.Errorf("%w in %v (%d frames, no face)", ErrNoShot, opt.Window, w.frames)
}
