package benchmarks

import (
	"errors"
	"math"
	"os"
	"strings"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

// FaceExtractor makes face templates; *face.Extractor is one.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// algorithmer is what *face.Extractor also says: the algorithm of its
// templates.
type algorithmer interface {
	Algorithm() templates.Algorithm
}

// Face is the face modality: a face model's embeddings compared by cosine
// similarity, exactly as matchd scores them.
type Face struct {
	Extractor FaceExtractor
	// PadCrops is deprecated and ignored: the extractor itself retries a
	// photo with no face found on the image with its edges extended
	// (templates.FaceQuality.Detector "hog-padded"), so tightly cropped
	// face chips enrol without it.
	PadCrops bool
}

// FaceTemplate is a face sample's template and the quality of the photo
// it came from, for the quality-band report.
type FaceTemplate struct {
	Vector  []float32
	Quality templates.FaceQuality
}

func (f Face) Name() string { return "face" }

// Algorithm is the extractor's algorithm (the model's name and version),
// or dlib's when the extractor does not say.
func (f Face) Algorithm() string {
	if a, ok := f.Extractor.(algorithmer); ok {
		return a.Algorithm().String()
	}
	return templates.FaceAlgorithm.String()
}

// DefaultThreshold is the engine's built-in threshold for the algorithm
// (engine.DefaultThresholds), NaN when it has none: dlib's 0.93 means
// nothing on another model's scores.
func (f Face) DefaultThreshold() float64 {
	if t, ok := engine.DefaultThresholds[f.Algorithm()]; ok {
		return float64(t)
	}
	return math.NaN()
}

// Compare is the cosine similarity of two embeddings.
func (f Face) Compare(a, b Template) float64 {
	return float64(matcher.Cosine(faceVector(a), faceVector(b)))
}

func faceVector(t Template) []float32 {
	switch v := t.(type) {
	case FaceTemplate:
		return v.Vector
	case *FaceTemplate:
		return v.Vector
	case []float32:
		return v
	}
	return nil
}

// faceQuality is the quality a face template carries, if it does.
func faceQuality(t Template) (templates.FaceQuality, bool) {
	switch v := t.(type) {
	case FaceTemplate:
		return v.Quality, true
	case *FaceTemplate:
		return v.Quality, true
	}
	return templates.FaceQuality{}, false
}

// Extract reads the photo and makes its template. No face, several faces
// and unreadable or unsupported images are sample failures.
func (f Face) Extract(s Sample) (Template, error) {
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	face, err := f.Extractor.Extract(b, templates.ExtractOptions{})
	switch {
	case err == nil:
		return FaceTemplate{Vector: face.Template.Vector, Quality: face.Quality}, nil
	case isFaceSampleError(err):
		return nil, &SampleError{Path: s.Path, Err: err}
	}
	return nil, err
}

func isFaceSampleError(err error) bool {
	return errors.Is(err, templates.ErrNoFace) || errors.Is(err, templates.ErrMultipleFaces) ||
		errors.Is(err, templates.ErrImageUnreadable) || errors.Is(err, templates.ErrUnsupportedFormat) ||
		errors.Is(err, templates.ErrImageTooLarge)
}

// failureReason is the kind of a sample failure, for counting them.
func failureReason(err error) string {
	switch {
	case errors.Is(err, templates.ErrNoFace):
		return "no face found"
	case errors.Is(err, templates.ErrMultipleFaces):
		return "several faces"
	case errors.Is(err, templates.ErrImageUnreadable):
		return "unreadable image"
	case errors.Is(err, templates.ErrUnsupportedFormat):
		return "unsupported format"
	case errors.Is(err, templates.ErrImageTooLarge):
		return "image too large"
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, ':'); i > 0 {
		msg = msg[:i]
	}
	return msg
}
