// Package face makes face templates from photos with dlib (through
// go-face) and OpenCV: image checks and decoding, detection, landmarks,
// alignment, the descriptor network and the photo's quality. It is the only
// cgo part of the template layer; the template codec and the sample errors
// are in package templates, so that the store, the matcher and the engine
// need not link it.
package face

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	goface "github.com/Kagami/go-face"

	"github.com/bordermatch/bordermatch/templates"
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

// Config configures a Extractor.
type Config struct {
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

// ErrClosed is returned by Extract after Close.
var ErrClosed = errors.New("templates: face extractor is closed")

// Extractor turns photos into face templates with dlib (through
// go-face): detection, landmarks, alignment to a 150x150 chip, and the
// ResNet-29 descriptor. It is safe for concurrent use: up to Workers
// extractions run in parallel, the others wait.
type Extractor struct {
	cfg       Config
	pool      chan *goface.Recognizer
	done      chan struct{}
	closeOnce sync.Once
	n         int
}

// NewExtractor loads the models. It fails with a message naming any
// missing model file.
func NewExtractor(cfg Config) (*Extractor, error) {
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
	e := &Extractor{cfg: cfg, pool: make(chan *goface.Recognizer, cfg.Workers), done: make(chan struct{})}
	for i := 0; i < cfg.Workers; i++ {
		rec, err := goface.NewRecognizer(cfg.ModelsDir)
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
func (e *Extractor) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		for i := 0; i < e.n; i++ {
			(<-e.pool).Close()
		}
	})
	return nil
}

// Algorithm reports the algorithm of the templates this extractor makes.
func (e *Extractor) Algorithm() templates.Algorithm { return templates.FaceAlgorithm }

func (e *Extractor) recognize(jpegBytes []byte) ([]goface.Face, error) {
	var rec *goface.Recognizer
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
// Errors wrap templates.ErrImageUnreadable, templates.ErrUnsupportedFormat, templates.ErrImageTooLarge,
// templates.ErrNoFace or templates.ErrMultipleFaces when the photo is at fault.
func (e *Extractor) Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error) {
	d, err := decodeImage(img, e.cfg.MaxPixels)
	if err != nil {
		return templates.Face{}, err
	}
	faces, err := e.recognize(d.jpeg)
	var le goface.ImageLoadError
	if errors.As(err, &le) && !d.reencoded {
		// libjpeg (as go-face drives it) treats warnings as errors, Go's
		// decoder does not: give dlib the pixels Go read.
		if d.jpeg, err = encodeJPEG(d.img); err != nil {
			return templates.Face{}, err
		}
		faces, err = e.recognize(d.jpeg)
	}
	if err != nil {
		if errors.As(err, &le) {
			return templates.Face{}, fmt.Errorf("%w: dlib: %v", templates.ErrImageUnreadable, err)
		}
		if errors.Is(err, ErrClosed) {
			return templates.Face{}, err
		}
		return templates.Face{}, fmt.Errorf("templates: dlib: %w", err)
	}
	if len(faces) == 0 {
		return templates.Face{}, fmt.Errorf("%w (%s detector, %dx%d image)", templates.ErrNoFace, e.cfg.Detector, d.img.Bounds().Dx(), d.img.Bounds().Dy())
	}
	best := 0
	if len(faces) > 1 {
		if !opt.TakeLargest {
			return templates.Face{}, fmt.Errorf("%w: %d faces in the image, enrolment needs exactly one", templates.ErrMultipleFaces, len(faces))
		}
		for i, f := range faces {
			if area(f.Rectangle) > area(faces[best].Rectangle) {
				best = i
			}
		}
	}
	f := faces[best]
	bounds := d.img.Bounds()
	out := templates.Face{
		Box:       f.Rectangle,
		Landmarks: f.Shapes,
		Faces:     len(faces),
		Template: templates.Template{
			Modality:  templates.ModalityFace,
			Algorithm: templates.FaceAlgorithm,
			Vector:    append([]float32(nil), f.Descriptor[:]...),
		},
		Quality: templates.FaceQuality{
			InterEyePixels: interEye(f.Shapes),
			FaceFraction:   float64(area(f.Rectangle.Intersect(bounds))) / float64(area(bounds)),
		},
	}
	if out.Quality.Sharpness, err = faceSharpness(d.img, f.Rectangle); err != nil {
		return templates.Face{}, err
	}
	return out, nil
}
