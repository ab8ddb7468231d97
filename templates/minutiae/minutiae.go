// Package minutiae is the fingerprint feature model shared by the extractor
// (templates/finger), the record codecs (ISO/IEC 19794-2, ANSI INCITS 378)
// and the matcher: a finger view is its image geometry plus a set of
// minutiae, the points where a ridge ends or splits.
package minutiae

import "math"

// Kind is the type of a minutia, with the codes ISO/IEC 19794-2 and
// ANSI INCITS 378 use.
type Kind uint8

const (
	KindOther       Kind = 0 // "other" (ISO), or not determined
	KindEnding      Kind = 1 // ridge ending
	KindBifurcation Kind = 2 // ridge bifurcation
)

func (k Kind) String() string {
	switch k {
	case KindEnding:
		return "ending"
	case KindBifurcation:
		return "bifurcation"
	}
	return "other"
}

// Minutia is one minutia in image coordinates.
type Minutia struct {
	// X, Y are pixels from the top-left corner of the image, Y downwards.
	X, Y int
	// Angle is the ridge direction in radians in [0, 2π), measured
	// counter-clockwise from the positive x axis as the record standards
	// define it (with Y pointing down on the image, counter-clockwise on
	// screen). For an ending it points along the ridge away from its end;
	// for a bifurcation, along the valley it closes (ISO/IEC 19794-2 §6).
	Angle float64
	Kind  Kind
	// Quality is 1..100, or 0 when not reported.
	Quality uint8
}

// Position is a finger position code of ISO/IEC 19794-2 (table 2), the
// same as ANSI/NIST-ITL: 0 unknown, 1 right thumb … 5 right little,
// 6 left thumb … 10 left little.
type Position uint8

const (
	PositionUnknown     Position = 0
	RightThumb          Position = 1
	RightIndex          Position = 2
	RightMiddle         Position = 3
	RightRing           Position = 4
	RightLittle         Position = 5
	LeftThumb           Position = 6
	LeftIndex           Position = 7
	LeftMiddle          Position = 8
	LeftRing            Position = 9
	LeftLittle          Position = 10
	maxStandardPosition          = LeftLittle
)

var positionNames = [...]string{"unknown", "right-thumb", "right-index", "right-middle", "right-ring", "right-little",
	"left-thumb", "left-index", "left-middle", "left-ring", "left-little"}

func (p Position) String() string {
	if p <= maxStandardPosition {
		return positionNames[p]
	}
	return "position-" + itoa(int(p))
}

// ParsePosition accepts the names String gives ("right-index") and the codes.
func ParsePosition(s string) (Position, bool) {
	for i, n := range positionNames {
		if s == n || s == itoa(i) {
			return Position(i), true
		}
	}
	return 0, false
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

// View is the minutiae of one impression of one finger with the geometry
// of the image they were found in.
type View struct {
	Position Position
	// Width, Height are the image size in pixels.
	Width, Height int
	// DPI is the resolution in pixels per inch (the records store pixels
	// per centimetre: 197 px/cm is 500 dpi).
	DPI int
	// Quality is the impression's quality, 0..100 (0: not reported).
	Quality  uint8
	Minutiae []Minutia
}

// NormAngle maps an angle in radians into [0, 2π).
func NormAngle(a float64) float64 {
	a = math.Mod(a, 2*math.Pi)
	if a < 0 {
		a += 2 * math.Pi
	}
	return a
}
