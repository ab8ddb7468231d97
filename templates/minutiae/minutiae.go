// Package minutiae is the fingerprint feature model shared by the extractor
// (templates/finger), the record codecs and the matcher: a finger view is
// its image geometry plus a set of minutiae, the points where a ridge ends
// or splits.
//
// # Records
//
// Parse reads the finger minutiae records scanners and other systems
// exchange, and Record.Marshal writes them:
//
//   - ISO/IEC 19794-2:2005 ("FMR\0", version " 20\0"): angles in 360/256°.
//   - ANSI INCITS 378-2004 ("FMR\0", version " 20\0"): 2- or 6-byte record
//     length, CBEFF product id, angles in 2°.
//   - ANSI INCITS 378-2009 ("FMR\0", version "030\0"): image geometry and a
//     quality algorithm id per view, angles in 2°.
//
// ISO/IEC 19794-2:2011, which also says "030", is refused with
// ErrUnsupportedVersion. A record holds one or more views (fingers or
// impressions of a finger); each becomes a View with its position, view
// number, impression type, quality, geometry and minutiae. Resolutions are
// stored in pixels per centimetre and given in View.DPI (197 px/cm is
// 500 dpi; the conversion round-trips every value). Extended data blocks
// (ridge counts, cores and deltas, vendor data) are kept undecoded in
// View.Extended and written back unchanged, except that core and delta
// blocks are dropped when converting between ISO and ANSI, whose angle
// units differ.
//
// The parsers honour the declared record length and ignore bytes after it
// (padding). Anything else that does not add up is refused with an *Error
// naming the field and its byte offset, such as
//
//	minutiae: ISO/IEC 19794-2:2005 record: view 2 minutia 14: truncated at offset 301 (…)
//
// which wraps ErrTruncated, ErrFormat or ErrUnsupportedVersion for
// errors.Is. Counts are checked against the bytes present before anything
// is allocated, so a hostile header cannot make the parser allocate more
// than a small multiple of the input. Parse → Marshal → Parse gives the
// same Record, and a well-formed record comes back byte for byte (Marshal
// writes reserved bits as zero and recomputes extended data lengths).
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

	// The fields below carry what the record formats say about a view
	// beyond its minutiae; the extractor and the matcher may leave them zero.

	// ViewNumber tells impressions of the same finger in one record apart
	// (0..15 in ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004).
	ViewNumber uint8
	// Impression is how the image was captured.
	Impression Impression
	// YDPI is the vertical resolution when the record gives one different
	// from DPI (records store both); 0 means the same as DPI.
	YDPI int
	// QualityAlgorithm identifies the algorithm that gave Quality: the
	// vendor in the high 16 bits and its algorithm id in the low ones
	// (ANSI INCITS 378-2009 only; 0 otherwise).
	QualityAlgorithm uint32
	// Extended holds the view's extended data blocks (ridge counts, cores
	// and deltas, vendor data) undecoded, so a record re-marshals unchanged.
	Extended []ExtendedData
}

// Impression is the impression type code of ISO/IEC 19794-2 and
// ANSI INCITS 378 (the ANSI/NIST-ITL codes).
type Impression uint8

const (
	LiveScanPlain     Impression = 0
	LiveScanRolled    Impression = 1
	NonLiveScanPlain  Impression = 2
	NonLiveScanRolled Impression = 3
	LiveScanSwipe     Impression = 8
	Contactless       Impression = 9
)

// ExtendedData is one extended data block of a finger view.
type ExtendedData struct {
	// Type is 1 for ridge counts, 2 for cores and deltas, and a vendor
	// code from 0x0100 up.
	Type uint16
	// Data is the block's content after its 4-byte type and length header.
	// Core and delta angles in it are in the units of the record format
	// it came from.
	Data []byte
}

// NormAngle maps an angle in radians into [0, 2π).
func NormAngle(a float64) float64 {
	a = math.Mod(a, 2*math.Pi)
	if a < 0 {
		a += 2 * math.Pi
	}
	return a
}
