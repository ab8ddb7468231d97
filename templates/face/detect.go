package face

import (
	"fmt"
	"image"
	"math"

	"github.com/bordermatch/bordermatch/capture/facedetect"
)

// detection is one face a detector found, with its 68 landmarks, in the
// pixels of the image it was given.
type detection struct {
	box        image.Rectangle
	confidence float64
	points     [68][2]float64
}

// maxDetections bounds the faces reported of one image; a crowd photo
// with more is refused or reduced to its largest faces all the same.
const maxDetections = 64

// detect runs the HOG (or CNN) detector on an RGB image, upsampled by 2
// first if asked, and places the landmarks on every face found.
func detect(d *facedetect.Detector, px rgbImage, cnn, upsample bool) ([]detection, error) {
	opt := facedetect.Options{CNN: cnn, Max: maxDetections}
	if upsample {
		opt.Upsample = 1
	}
	faces, err := d.Detect(facedetect.Image{Pix: px.pix, W: px.w, H: px.h, Stride: 3 * px.w, Channels: 3}, opt)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	out := make([]detection, len(faces))
	for i, f := range faces {
		if len(f.Landmarks) != 68 {
			return nil, fmt.Errorf("templates: the landmark model gives %d points, the alignment needs dlib's 68", len(f.Landmarks))
		}
		out[i] = detection{box: f.Box, confidence: f.Confidence}
		copy(out[i].points[:], f.Landmarks)
	}
	return out, nil
}

// landmarks are the points rounded to pixels, as templates.Face reports
// them.
func (d detection) landmarks() []image.Point {
	out := make([]image.Point, len(d.points))
	for i, p := range d.points {
		out[i] = image.Pt(int(math.Round(p[0])), int(math.Round(p[1])))
	}
	return out
}
