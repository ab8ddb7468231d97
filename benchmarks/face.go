package benchmarks

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // photos to pad
	"image/png"
	"os"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

// FaceExtractor makes face templates; *face.Extractor is one.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// Face is the face modality: dlib's descriptors compared by cosine
// similarity, exactly as matchd scores them.
type Face struct {
	Extractor FaceExtractor
	// PadCrops retries an image in which no face was found inside a grey
	// border twice its size: tightly cropped face chips (150×150 crops of
	// the face alone) leave a detector no context. Photos as a camera takes
	// them never need it.
	PadCrops bool
}

func (f Face) Name() string              { return "face" }
func (f Face) Algorithm() string         { return templates.FaceAlgorithm.String() }
func (f Face) DefaultThreshold() float64 { return float64(matcher.DefaultFaceThreshold) }

// Compare is the cosine similarity of two descriptors.
func (f Face) Compare(a, b Template) float64 {
	return float64(matcher.Cosine(a.([]float32), b.([]float32)))
}

// Extract reads the photo and makes its descriptor. No face, several
// faces and unreadable or unsupported images are sample failures.
func (f Face) Extract(s Sample) (Template, error) {
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	face, err := f.Extractor.Extract(b, templates.ExtractOptions{})
	if err != nil && f.PadCrops && errors.Is(err, templates.ErrNoFace) {
		if padded, perr := pad(b); perr == nil {
			face, err = f.Extractor.Extract(padded, templates.ExtractOptions{})
		}
	}
	switch {
	case err == nil:
		return face.Template.Vector, nil
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

// pad puts the image in the middle of a grey canvas twice its size.
func pad(b []byte) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r := img.Bounds()
	canvas := image.NewRGBA(image.Rect(0, 0, 2*r.Dx(), 2*r.Dy()))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	draw.Draw(canvas, r.Sub(r.Min).Add(image.Pt(r.Dx()/2, r.Dy()/2)), img, r.Min, draw.Src)
	var out bytes.Buffer
	if err := png.Encode(&out, canvas); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
