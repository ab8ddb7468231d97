package templates

import (
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	face "github.com/Kagami/go-face"
)

// Detector selects dlib's face detector.
type Detector int

const (
	// DetectorHOG is dlib's HOG + linear SVM frontal face detector: fast
	// (tens to hundreds of milliseconds a photo on one core), finds roughly
	// frontal faces of about 80x80 pixels and up.
	DetectorHOG Detector = iota
	// DetectorCNN is dlib's MMOD CNN detector: finds more faces at more
	// angles, at many times the cost on a CPU.
	DetectorCNN
)

func (d Detector) String() string {
	switch d {
	case DetectorHOG:
		return "hog"
	case DetectorCNN:
		return "cnn"
	}
	return fmt.Sprintf("detector(%d)", int(d))
}

// ModelFiles are the files go-face loads from the models directory.
// `make models` (models/build.sh) builds them.
var ModelFiles = []string{
	"dlib_face_recognition_resnet_model_v1.dat",
	"shape_predictor_5_face_landmarks.dat",
	"mmod_human_face_detector.dat",
}

// FaceConfig configures a FaceExtractor.
type FaceConfig struct {
	// ModelsDir holds ModelFiles.
	ModelsDir string
	Detector  Detector
	// MaxPixels refuses larger images from their header, before decoding
	// them; 0 means DefaultMaxPixels.
	MaxPixels int
	// Workers is the number of recognisers that run in parallel, each with
	// its own copy of the models (about 130 MB with the 68-point landmark
	// model); 0 means GOMAXPROCS.
	Workers int
}

// Face is the face found in an image and the template made from it.
type Face struct {
	// Box is the detector's face rectangle in image pixels; it may reach
	// past the image's edges.
	Box image.Rectangle
	// Landmarks are the shape predictor's points (68 with Debian's model, 5
	// with dlib's official 5-point model).
	Landmarks []image.Point
	Quality   Quality
	Template  Template
	// Faces is how many faces the image held.
	Faces int
}

// ExtractOptions adjust one extraction.
type ExtractOptions struct {
	// TakeLargest picks the largest face when the image holds several (a
	// gate camera frame); otherwise several faces are an error (enrolment
	// must not guess who is meant).
	TakeLargest bool
}

// ErrClosed is returned by Extract after Close.
var ErrClosed = errors.New("templates: face extractor is closed")

// FaceExtractor turns photos into face templates with dlib (through
// go-face): detection, landmarks, alignment to a 150x150 chip, and the
// ResNet-29 descriptor. It is safe for concurrent use: up to Workers
// extractions run in parallel, the others wait.
type FaceExtractor struct {
	cfg       FaceConfig
	pool      chan *face.Recognizer
	done      chan struct{}
	closeOnce sync.Once
	n         int
}

// NewFaceExtractor loads the models. It fails with a message naming any
// missing model file.
func NewFaceExtractor(cfg FaceConfig) (*FaceExtractor, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.Detector != DetectorHOG && cfg.Detector != DetectorCNN {
		return nil, fmt.Errorf("templates: unknown detector %d", cfg.Detector)
	}
	if cfg.ModelsDir == "" {
		cfg.ModelsDir = "."
	}
	var missing []string
	for _, f := range ModelFiles {
		if st, err := os.Stat(filepath.Join(cfg.ModelsDir, f)); err != nil || st.Size() == 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("templates: face model files missing in %s: %v: run `make models` (or pass --models DIR with a directory holding %v)",
			cfg.ModelsDir, missing, ModelFiles)
	}
	e := &FaceExtractor{cfg: cfg, pool: make(chan *face.Recognizer, cfg.Workers), done: make(chan struct{})}
	for i := 0; i < cfg.Workers; i++ {
		rec, err := face.NewRecognizer(cfg.ModelsDir)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("templates: loading face models from %s (rebuild them with `make models`): %w", cfg.ModelsDir, err)
		}
		e.pool <- rec
		e.n++
	}
	return e, nil
}

// Close waits for running extractions and frees the models. Later calls to
// Extract fail with ErrClosed.
func (e *FaceExtractor) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		for i := 0; i < e.n; i++ {
			(<-e.pool).Close()
		}
	})
	return nil
}

// Algorithm reports the algorithm of the templates this extractor makes.
func (e *FaceExtractor) Algorithm() Algorithm { return FaceAlgorithm }

func (e *FaceExtractor) recognize(jpegBytes []byte) ([]face.Face, error) {
	var rec *face.Recognizer
	select {
	case <-e.done:
		return nil, ErrClosed
	default:
	}
	select {
	case rec = <-e.pool:
	case <-e.done:
		return nil, ErrClosed
	}
	defer func() { e.pool <- rec }()
	if e.cfg.Detector == DetectorCNN {
		return rec.RecognizeCNN(jpegBytes)
	}
	return rec.Recognize(jpegBytes)
}

// Extract finds the face in a JPEG or PNG photo and makes its template.
// Errors wrap ErrImageUnreadable, ErrUnsupportedFormat, ErrImageTooLarge,
// ErrNoFace or ErrMultipleFaces when the photo is at fault.
func (e *FaceExtractor) Extract(img []byte, opt ExtractOptions) (Face, error) {
	d, err := decodeImage(img, e.cfg.MaxPixels)
	if err != nil {
		return Face{}, err
	}
	faces, err := e.recognize(d.jpeg)
	var le face.ImageLoadError
	if errors.As(err, &le) && !d.reencoded {
		// libjpeg (as go-face drives it) treats warnings as errors, Go's
		// decoder does not: give dlib the pixels Go read.
		if d.jpeg, err = encodeJPEG(d.img); err != nil {
			return Face{}, err
		}
		faces, err = e.recognize(d.jpeg)
	}
	if err != nil {
		if errors.As(err, &le) {
			return Face{}, fmt.Errorf("%w: dlib: %v", ErrImageUnreadable, err)
		}
		if errors.Is(err, ErrClosed) {
			return Face{}, err
		}
		return Face{}, fmt.Errorf("templates: dlib: %w", err)
	}
	if len(faces) == 0 {
		return Face{}, fmt.Errorf("%w (%s detector, %dx%d image)", ErrNoFace, e.cfg.Detector, d.img.Bounds().Dx(), d.img.Bounds().Dy())
	}
	best := 0
	if len(faces) > 1 {
		if !opt.TakeLargest {
			return Face{}, fmt.Errorf("%w: %d faces in the image, enrolment needs exactly one", ErrMultipleFaces, len(faces))
		}
		for i, f := range faces {
			if area(f.Rectangle) > area(faces[best].Rectangle) {
				best = i
			}
		}
	}
	f := faces[best]
	bounds := d.img.Bounds()
	out := Face{
		Box:       f.Rectangle,
		Landmarks: f.Shapes,
		Faces:     len(faces),
		Template: Template{
			Modality:  ModalityFace,
			Algorithm: FaceAlgorithm,
			Vector:    append([]float32(nil), f.Descriptor[:]...),
		},
		Quality: Quality{
			InterEyePixels: interEye(f.Shapes),
			FaceFraction:   float64(area(f.Rectangle.Intersect(bounds))) / float64(area(bounds)),
		},
	}
	if out.Quality.Sharpness, err = sharpness(d.img, f.Rectangle); err != nil {
		return Face{}, err
	}
	return out, nil
}
