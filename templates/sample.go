package templates

import (
	"errors"
	"image"
)

// FaceDim is the length of a face descriptor of FaceAlgorithm.
const FaceDim = 128

// Errors about a sample image. They describe the sample, not the system: a
// server answers them with InvalidArgument (or ResourceExhausted for
// ErrImageTooLarge), a benchmark counts them as failures to enrol or
// acquire. They live here, beside the template codec, so that callers can
// tell them apart without linking an extractor (templates/face).
var (
	ErrImageUnreadable   = errors.New("image is unreadable")
	ErrUnsupportedFormat = errors.New("image format is not supported (use JPEG or PNG)")
	ErrImageTooLarge     = errors.New("image is too large")
	ErrNoFace            = errors.New("no face found")
	ErrMultipleFaces     = errors.New("several faces found")
)

// Face is the face found in an image and the template made from it.
type Face struct {
	// Box is the detector's face rectangle in image pixels; it may reach
	// past the image's edges.
	Box image.Rectangle
	// Landmarks are the shape predictor's points (68 with Debian's model, 5
	// with dlib's official 5-point model).
	Landmarks []image.Point
	Quality   FaceQuality
	Template  Template
	// Faces is how many faces the image held.
	Faces int
}

// FaceQuality describes how usable a face image is. The server reports it
// with every template it makes, so an enrolment desk can ask for a better
// photo.
type FaceQuality struct {
	// InterEyePixels is the distance between the eye centres, in pixels of
	// the submitted image. ICAO 9303 passport photos have at least 90; dlib's
	// HOG detector finds faces down to about 30.
	InterEyePixels float64
	// Sharpness is the variance of the Laplacian of the grey face region:
	// blurred or heavily compressed faces score low (tens), sharp ones
	// hundreds or more. It depends on the face's size in pixels, so compare
	// it between photos of similar resolution.
	Sharpness float64
	// FaceFraction is the face box area (clipped to the image) over the
	// image area.
	FaceFraction float64
	// Detector is how the face was found: "hog", "hog-x2" (the image
	// upsampled), "hog-padded" (the image's edges extended, for a tight
	// crop) or "cnn"; the later ones are fallbacks tried only when the
	// earlier found nothing, so they mark harder photos.
	Detector string
	// DetectorConfidence is the detector's score for the face: the HOG
	// detector's SVM margin or the CNN's MMOD score, 0 at the detector's
	// threshold; frontal, well-lit faces score 1 and more.
	DetectorConfidence float64
	// Yaw, Pitch and Roll estimate the head's pose in degrees from the five
	// alignment points (eye centres, nose tip, mouth corners): 0 is
	// frontal, yaw positive when the nose points to the image's right,
	// pitch positive when the head is bowed, roll positive when the right
	// eye (in the image) is lower. ICAO portraits keep each within about
	// 5 to 8 degrees.
	Yaw, Pitch, Roll float64
}

// ExtractOptions adjust one face extraction.
type ExtractOptions struct {
	// TakeLargest picks the largest face when the image holds several (a
	// gate camera frame). Otherwise the face of interest is taken only when
	// it clearly dominates the others (face.Dominant), and several
	// comparable faces are an error: enrolment must not guess who is
	// meant.
	TakeLargest bool
}
