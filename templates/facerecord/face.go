// Package facerecord reads the face images on a passport chip: ICAO 9303
// EF.DG2 (ParseDG2) and bare face records (ParseRecord) in either of the
// two formats a DG2 may hold, ISO/IEC 19794-5:2005 and the ICAO
// application profile of ISO/IEC 39794-5.
//
// The reader is pure Go and works by hand on the BER-TLV structure
// (encoding/asn1 does not fit the CHOICE fields of 39794-5). Every length
// is checked against its container before it is used, and every error is
// an *Error naming the input, the byte offset and the tag or field at
// fault. Images are not decoded: their type and size are read from their
// own headers (JPEG SOF marker, JP2 ihdr box, J2K SIZ marker).
package facerecord

import "strconv"

// Format is the face record format a Face was read from.
type Format uint8

const (
	FormatUnknown Format = iota
	// FormatISO19794 is ISO/IEC 19794-5:2005 ("FAC\0" "010\0"),
	// DG2 biometric data block tag 5F2E.
	FormatISO19794
	// FormatISO39794 is ISO/IEC 39794-5 (DER, the ICAO eMRTD application
	// profile), DG2 biometric data block tag 7F2E.
	FormatISO39794
)

func (f Format) String() string {
	switch f {
	case FormatISO19794:
		return "ISO/IEC 19794-5:2005"
	case FormatISO39794:
		return "ISO/IEC 39794-5"
	}
	return "unknown format"
}

// ImageType is the encoding of a face image.
type ImageType uint8

const (
	// ImageUnknown: not stated, or a code this package does not know.
	ImageUnknown ImageType = iota
	ImageJPEG
	// ImageJPEG2000 is a JP2 file or a bare J2K codestream.
	ImageJPEG2000
)

func (t ImageType) String() string {
	return name(t, "unknown", "JPEG", "JPEG 2000")
}

// FaceImageType is the kind of face image the record declares.
type FaceImageType uint8

const (
	// FaceImageUnknown: absent, or a code this package does not know.
	FaceImageUnknown FaceImageType = iota
	FaceImageBasic
	FaceImageFullFrontal
	FaceImageTokenFrontal
	// FaceImageMRTD is 39794-5's "mrtd" face image kind, the kind of an
	// eMRTD portrait.
	FaceImageMRTD
)

func (t FaceImageType) String() string {
	return name(t, "unknown", "basic", "full frontal", "token frontal", "MRTD")
}

// Gender is the subject's gender as recorded.
type Gender uint8

const (
	// GenderUnspecified: absent, unspecified, or a code this package does
	// not know.
	GenderUnspecified Gender = iota
	GenderMale
	GenderFemale
	// GenderOther is 39794-5's "other".
	GenderOther
	// GenderUnknown is 19794-5's "unknown" (0xFF).
	GenderUnknown
)

func (g Gender) String() string {
	return name(g, "unspecified", "male", "female", "other", "unknown")
}

// EyeColour is the subject's eye colour as recorded.
type EyeColour uint8

const (
	// EyeUnspecified: absent, unspecified, or a code this package does not
	// know.
	EyeUnspecified EyeColour = iota
	EyeBlack
	EyeBlue
	EyeBrown
	EyeGrey
	EyeGreen
	EyeHazel // 39794-5 only
	EyeMultiColoured
	EyePink
	EyeOther   // 19794-5's 0xFF "other or unknown", 39794-5's "other"
	EyeUnknown // 39794-5's "unknown"
)

func (c EyeColour) String() string {
	return name(c, "unspecified", "black", "blue", "brown", "grey", "green", "hazel", "multi-coloured", "pink", "other", "unknown")
}

// HairColour is the subject's hair colour as recorded.
type HairColour uint8

const (
	// HairUnspecified: absent, unspecified, or a code this package does
	// not know.
	HairUnspecified HairColour = iota
	HairBald
	HairBlack
	HairBlonde
	HairBrown
	HairGrey
	HairWhite
	HairRed
	HairGreen         // 19794-5 only
	HairBlue          // 19794-5 only
	HairKnownColoured // 39794-5 only
	HairOther         // 39794-5's "other"
	HairUnknown       // 19794-5's 0xFF, 39794-5's "unknown"
)

func (c HairColour) String() string {
	return name(c, "unspecified", "bald", "black", "blonde", "brown", "grey", "white", "red", "green", "blue", "known coloured", "other", "unknown")
}

// Expression is the subject's expression as recorded. 39794-5 records a
// set of flags; the first one set, in the order of this list, is kept.
type Expression uint8

const (
	// ExpressionUnspecified: absent, unspecified, or a code this package
	// does not know.
	ExpressionUnspecified Expression = iota
	ExpressionNeutral
	// ExpressionSmile is a smile (19794-5: with closed jaw).
	ExpressionSmile
	// ExpressionSmileOpen is 19794-5's smile with open jaw.
	ExpressionSmileOpen
	ExpressionRaisedEyebrows
	ExpressionEyesAway
	ExpressionSquinting
	ExpressionFrowning
)

func (e Expression) String() string {
	return name(e, "unspecified", "neutral", "smile", "smile with open jaw", "raised eyebrows", "eyes looking away", "squinting", "frowning")
}

// SourceType is how the image was captured; values 1–6 are the codes of
// both standards.
type SourceType uint8

const (
	// SourceUnspecified: absent or unspecified.
	SourceUnspecified SourceType = iota
	SourceStaticUnknown
	SourceStaticDigitalCamera
	SourceStaticScanner
	SourceVideoUnknown
	SourceVideoAnalogue
	SourceVideoDigital
	// SourceUnknown is the "unknown" code (19794-5's 7, 39794-5's 0), and
	// any code this package does not know.
	SourceUnknown
)

func (s SourceType) String() string {
	return name(s, "unspecified", "static photograph, unknown source", "static photograph, digital still camera",
		"static photograph, scanner", "video frame, unknown source", "video frame, analogue camera", "video frame, digital camera", "unknown")
}

// ColourSpace is the image's colour space as the record declares it.
type ColourSpace uint8

const (
	// ColourUnspecified: absent or unspecified.
	ColourUnspecified ColourSpace = iota
	ColourRGB24
	ColourYUV422
	ColourGrey8
	ColourOther
	ColourRGB48  // 39794-5 only
	ColourGrey16 // 39794-5 only
	// ColourUnknown is 39794-5's "unknown" and any code this package does
	// not know.
	ColourUnknown
)

func (c ColourSpace) String() string {
	return name(c, "unspecified", "24-bit RGB", "YUV 4:2:2", "8-bit grey", "other", "48-bit RGB", "16-bit grey", "unknown")
}

// Angle is one pose angle in degrees, -180 to 180 (yaw: positive turns
// the face to its left; pitch: positive looks down; roll: positive tilts
// to the subject's left shoulder, as the standards define them), and its
// uncertainty in degrees, 0 to 180.
type Angle struct {
	// Set says whether the record gives the angle; Degrees is 0 when not.
	Set     bool
	Degrees int
	// UncertaintySet says whether the record gives the uncertainty.
	UncertaintySet bool
	Uncertainty    int
}

// Pose is the head's pose angles.
type Pose struct{ Yaw, Pitch, Roll Angle }

// Face is one face image of a DG2 or a face record, with the metadata the
// record holds. Fields the record does not have are zero; each type's
// zero value means "absent or unspecified".
type Face struct {
	// Format is the record format the face was read from.
	Format Format
	// Image is the image's bytes. It is a sub-slice of the input, not a
	// copy: copy it before changing either.
	Image []byte
	// ImageOffset is the offset of Image in the input.
	ImageOffset int
	// ImageType is the image's encoding as its own signature shows it.
	ImageType ImageType
	// DeclaredImageType is the encoding the record states. It can differ
	// from ImageType (a test record states JPEG 2000 and holds a JPEG);
	// ImageType is the one to decode with.
	DeclaredImageType ImageType
	// Width and Height are the image's size in pixels as the image itself
	// declares it (JPEG SOF, JP2 ihdr or J2K SIZ).
	Width, Height int
	// DeclaredWidth and DeclaredHeight are the size the record states, 0
	// when it states none. They can differ from the image's (a test
	// passport declares 337×449 and holds 413×531).
	DeclaredWidth, DeclaredHeight int
	// FaceImageType is the kind of face image declared.
	FaceImageType FaceImageType
	Gender        Gender
	EyeColour     EyeColour
	HairColour    HairColour
	Expression    Expression
	Pose          Pose
	// FeaturePoints is the number of feature points (19794-5) or
	// landmarks (39794-5) recorded; their positions are not kept.
	FeaturePoints int
	SourceType    SourceType
	// DeviceType is 19794-5's vendor-specific capture device type, 0 when
	// unspecified or absent.
	DeviceType uint16
	// Quality is 19794-5's 2-byte image quality, or the score (0–100) of
	// the first quality block of a 39794-5 record; 0 when absent or
	// unspecified.
	Quality     int
	ColourSpace ColourSpace
}

// name is the String of small enums: names[v], or "invalid (v)".
func name[T ~uint8](v T, names ...string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "invalid (" + strconv.Itoa(int(v)) + ")"
}
