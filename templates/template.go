// Package templates is the pure-Go template layer: what a biometric template is
// (modality, algorithm, vector or minutiae), the versioned binary encoding under
// which templates are stored and
// exchanged.
//
// A template carries the modality and the algorithm (id and version) that
// produced it. Comparing templates from different algorithms gives scores that
// mean nothing, so every consumer checks Compatible before it compares, and a
// stored template from an older model is reported as such instead of silently
// scoring badly.
package templates

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Modality is the kind of biometric a template describes.
type Modality uint8

const (
	ModalityUnknown Modality = 0
	ModalityFace    Modality = 1
	ModalityFinger  Modality = 2
)

func (m Modality) String() string {
	switch m {
	case ModalityFace:
		return "face"
	case ModalityFinger:
		return "finger"
	}
	return fmt.Sprintf("modality(%d)", uint8(m))
}

// Algorithm names the feature extractor that produced a template. Templates
// are comparable only when both ID and Version are equal.
type Algorithm struct {
	ID      string
	Version uint16
}

func (a Algorithm) String() string { return fmt.Sprintf("%s/v%d", a.ID, a.Version) }

// FaceAlgorithm is the algorithm of the dlib face extractor (templates/face,
// Model "dlib"): dlib's ResNet-29 metric network, 128-d (FaceDim)
// descriptors from 150x150 aligned chips. Other face algorithms exist
// beside it (a gallery may hold several, see engine); nothing outside the
// dlib extractor and its tests should assume this one.
var FaceAlgorithm = Algorithm{ID: "dlib-resnet29", Version: 1}

// FingerAlgorithm is the algorithm of finger templates: the minutiae of one
// finger view as ISO/IEC 19794-2:2005 defines them (position, angle, type,
// quality, with the image's size and resolution), from this package's
// extractor (templates/finger) or from any ISO/ANSI record.
//
// A finger template stores minutiae, not the matcher's cylinders: the
// matcher (package matcher, MCC) prepares its cylinders when the server
// loads the gallery, so a better matcher, or a retuned one, works on every
// stored finger without re-enrolment, and a stored finger can always be
// exported as a standard record. The price is preparing the cylinders at
// start. The version changes only if the stored representation does.
var FingerAlgorithm = Algorithm{ID: "iso19794-2-minutiae", Version: 1}

// Template is one comparable biometric sample: a feature vector (faces) or
// a finger's minutiae.
type Template struct {
	Modality  Modality
	Algorithm Algorithm
	// Vector is the feature vector of a face template; nil for a finger.
	Vector []float32
	// Finger is the view of a finger template (its Position says which
	// finger); nil for a face. Treat it as immutable: templates are copied
	// by value and share it.
	Finger *minutiae.View
}

// NewFingerTemplate returns the finger template of a view. The view is
// kept as it will be stored: extended data blocks (ridge counts, cores and
// deltas, vendor data) are dropped, since the matcher does not use them and
// the units of their angles depend on the record format they came from.
func NewFingerTemplate(v minutiae.View) Template {
	v.Extended = nil
	v.Minutiae = append([]minutiae.Minutia(nil), v.Minutiae...)
	return Template{Modality: ModalityFinger, Algorithm: FingerAlgorithm, Finger: &v}
}

// Position is the finger position of a finger template (PositionUnknown
// for a face template or a finger of unknown position).
func (t Template) Position() minutiae.Position {
	if t.Finger == nil {
		return minutiae.PositionUnknown
	}
	return t.Finger.Position
}

// Comparable reports whether t is a template the matcher can compare at
// all: a face of any named algorithm with a vector of 1..MaxDim finite
// values whose norm is within MinNorm..MaxNorm, or a finger of
// FingerAlgorithm whose minutiae are plausible (see checkFinger). Which
// face algorithms a server searches, and that a probe and a reference share
// algorithm and dimension (Compatible), is the caller's to check. The
// returned error wraps ErrIncompatible (an algorithm or modality this code
// does not compare) or ErrInvalidTemplate (values no extractor makes), and
// names the problem.
func (t Template) Comparable() error {
	switch t.Modality {
	case ModalityFace:
		if t.Algorithm.ID == "" {
			return fmt.Errorf("%w: face template without an algorithm id", ErrIncompatible)
		}
		if len(t.Vector) == 0 || len(t.Vector) > MaxDim {
			return fmt.Errorf("%w: %d-d vector, want 1..%d", ErrIncompatible, len(t.Vector), MaxDim)
		}
		if _, err := t.norm(); err != nil {
			return err
		}
	case ModalityFinger:
		if t.Algorithm != FingerAlgorithm {
			return fmt.Errorf("%w: finger template of %s, this server uses %s", ErrIncompatible, t.Algorithm, FingerAlgorithm)
		}
		if t.Finger == nil {
			return fmt.Errorf("%w: finger template without minutiae", ErrIncompatible)
		}
		return checkFinger(t.Finger)
	default:
		return fmt.Errorf("%w: modality %s is not supported", ErrIncompatible, t.Modality)
	}
	return nil
}

// MinNorm and MaxNorm bound the Euclidean norm of a face vector. Real
// extractors give norms from about 0.1 (dlib) to a few tens (unnormalised
// ArcFace heads); a vector far outside is not a face's, and near FLT_MAX
// its float32 products overflow to Inf and NaN, which once scored a crafted
// template 1.0 against every photo.
const (
	MinNorm = 1e-6
	MaxNorm = 1e6
)

// norm checks a face vector's values and returns its norm, computed in
// float64 so that neither tiny nor huge components overflow.
func (t Template) norm() (float64, error) {
	var ss float64
	for i, v := range t.Vector {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, fmt.Errorf("%w: face vector of %s: element %d is not finite", ErrInvalidTemplate, t.Algorithm, i)
		}
		ss += float64(v) * float64(v)
	}
	if ss == 0 {
		return 0, fmt.Errorf("%w: face vector of %s is all zeros", ErrInvalidTemplate, t.Algorithm)
	}
	n := math.Sqrt(ss)
	if n < MinNorm || n > MaxNorm {
		return 0, fmt.Errorf("%w: face vector of %s has norm %.3g, outside %g..%g", ErrInvalidTemplate, t.Algorithm, n, MinNorm, MaxNorm)
	}
	return n, nil
}

// Normalised returns a comparable face template scaled to unit norm (a new
// vector; t is left alone), the one form in which face templates are
// stored and compared, so that a score is a cosine whatever the extractor's
// scale. A finger template is returned as it is. It returns Comparable's
// error for a template that is not comparable.
func (t Template) Normalised() (Template, error) {
	if err := t.Comparable(); err != nil {
		return Template{}, err
	}
	if t.Modality != ModalityFace {
		return t, nil
	}
	n, _ := t.norm()
	v := make([]float32, len(t.Vector))
	for i, x := range t.Vector {
		v[i] = float32(float64(x) / n)
	}
	t.Vector = v
	return t, nil
}

// The plausible resolution of a finger template's view; 0 (not stated) is
// taken too, callers filling in their scanners' resolution.
const (
	FingerMinDPI = 250
	FingerMaxDPI = 2000
	// MaxMinutiae is the most a view can hold (ISO/IEC 19794-2 counts them
	// in a byte).
	MaxMinutiae = 255
)

// checkFinger refuses a finger view no scanner or extractor makes: more
// than MaxMinutiae minutiae, a resolution outside FingerMinDPI..FingerMaxDPI,
// minutiae outside the image it states, or angles that are not finite. The
// matcher scales coordinates by the resolution, so an absurd one puts every
// minutia on one point or spreads them over kilometres.
func checkFinger(v *minutiae.View) error {
	if len(v.Minutiae) > MaxMinutiae {
		return fmt.Errorf("%w: finger view has %d minutiae, at most %d", ErrInvalidTemplate, len(v.Minutiae), MaxMinutiae)
	}
	if v.DPI != 0 && (v.DPI < FingerMinDPI || v.DPI > FingerMaxDPI) {
		return fmt.Errorf("%w: finger view of %d dpi, outside %d..%d", ErrInvalidTemplate, v.DPI, FingerMinDPI, FingerMaxDPI)
	}
	if v.Width < 0 || v.Height < 0 {
		return fmt.Errorf("%w: finger view of %dx%d pixels", ErrInvalidTemplate, v.Width, v.Height)
	}
	for i, m := range v.Minutiae {
		if math.IsNaN(m.Angle) || math.IsInf(m.Angle, 0) {
			return fmt.Errorf("%w: minutia %d: angle is not finite", ErrInvalidTemplate, i)
		}
		if m.X < 0 || m.Y < 0 || v.Width > 0 && m.X >= v.Width || v.Height > 0 && m.Y >= v.Height {
			return fmt.Errorf("%w: minutia %d at (%d, %d), outside the %dx%d image", ErrInvalidTemplate, i, m.X, m.Y, v.Width, v.Height)
		}
	}
	return nil
}

// Compatible reports whether t and u were made by the same modality and
// algorithm and so can be compared. The returned error names the mismatch.
func (t Template) Compatible(u Template) error {
	if t.Modality != u.Modality {
		return fmt.Errorf("%w: modality %s vs %s", ErrIncompatible, t.Modality, u.Modality)
	}
	if t.Algorithm != u.Algorithm {
		return fmt.Errorf("%w: algorithm %s vs %s", ErrIncompatible, t.Algorithm, u.Algorithm)
	}
	if len(t.Vector) != len(u.Vector) {
		return fmt.Errorf("%w: dimension %d vs %d", ErrIncompatible, len(t.Vector), len(u.Vector))
	}
	if (t.Finger == nil) != (u.Finger == nil) {
		return fmt.Errorf("%w: minutiae in one template only", ErrIncompatible)
	}
	return nil
}

var (
	// ErrIncompatible: two templates come from different modalities,
	// algorithms or algorithm versions.
	ErrIncompatible = errors.New("templates: incompatible template")
	// ErrCorrupt: an encoded template is truncated, inconsistent or fails its
	// checksum.
	ErrCorrupt = errors.New("templates: corrupt template")
	// ErrInvalidTemplate: a template decodes but holds values no extractor
	// makes (a zero or non-finite vector, an absurd norm, implausible
	// minutiae); it is refused at the boundary and quarantined in a store.
	ErrInvalidTemplate = errors.New("templates: invalid template")
)

// Encoding layout (little endian), version 1, for templates with a vector
// (faces; every template stored before fingers existed):
//
//	magic    "BMT"            3 bytes
//	encver   1                1 byte
//	modality                  1 byte
//	algolen  n                1 byte
//	algo     ID               n bytes
//	algover                   2 bytes
//	dim      d                2 bytes
//	vector   d × float32      4d bytes
//	crc32c   of all the above 4 bytes
//
// Version 2, for finger templates (a decoder that knows only version 1
// refuses them by their version byte instead of misreading them):
//
//	magic    "BMT"            3 bytes
//	encver   2                1 byte
//	modality 2 (finger)       1 byte
//	algolen  n                1 byte
//	algo     ID               n bytes
//	algover                   2 bytes
//	reclen   r                4 bytes
//	record   ISO/IEC 19794-2:2005 finger minutiae record of one view,
//	         no extended data   r bytes
//	crc32c   of all the above 4 bytes
//
// The record is in the canonical form minutiae.Record.MarshalISO writes, so
// a template re-encodes to the bytes it was decoded from.
const (
	magic            = "BMT"
	encVersion       = 1
	encVersionFinger = 2
	// MaxDim bounds the vector length a decoder accepts, so a corrupt header
	// cannot make it allocate without limit.
	MaxDim = 4096
	// MaxFingerRecord bounds the record of a finger template: 255 minutiae
	// of 6 bytes and the headers need under 2 KiB.
	MaxFingerRecord = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes t in the versioned template encoding.
func (t Template) MarshalBinary() ([]byte, error) {
	if len(t.Algorithm.ID) == 0 || len(t.Algorithm.ID) > 255 {
		return nil, fmt.Errorf("templates: algorithm id must be 1..255 bytes, got %d", len(t.Algorithm.ID))
	}
	if t.Finger != nil || t.Modality == ModalityFinger && t.Vector == nil {
		return t.marshalFinger()
	}
	if len(t.Vector) == 0 || len(t.Vector) > MaxDim {
		return nil, fmt.Errorf("templates: vector length must be 1..%d, got %d", MaxDim, len(t.Vector))
	}
	n := len(magic) + 3 + len(t.Algorithm.ID) + 4 + 4*len(t.Vector) + 4
	b := make([]byte, 0, n)
	b = append(b, magic...)
	b = append(b, encVersion, byte(t.Modality), byte(len(t.Algorithm.ID)))
	b = append(b, t.Algorithm.ID...)
	b = binary.LittleEndian.AppendUint16(b, t.Algorithm.Version)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(t.Vector)))
	for _, v := range t.Vector {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

func (t Template) marshalFinger() ([]byte, error) {
	if t.Modality != ModalityFinger || t.Finger == nil || t.Vector != nil {
		return nil, fmt.Errorf("templates: a finger template has modality finger, a view and no vector (modality %s, view %t, vector %d)",
			t.Modality, t.Finger != nil, len(t.Vector))
	}
	v := *t.Finger
	v.Extended = nil
	rec, err := minutiae.Record{Format: minutiae.FormatISO2005, Views: []minutiae.View{v}}.MarshalISO()
	if err != nil {
		return nil, fmt.Errorf("templates: finger view: %w", err)
	}
	if len(rec) > MaxFingerRecord {
		return nil, fmt.Errorf("templates: finger record is %d bytes, at most %d", len(rec), MaxFingerRecord)
	}
	b := make([]byte, 0, len(magic)+3+len(t.Algorithm.ID)+6+len(rec)+4)
	b = append(b, magic...)
	b = append(b, encVersionFinger, byte(t.Modality), byte(len(t.Algorithm.ID)))
	b = append(b, t.Algorithm.ID...)
	b = binary.LittleEndian.AppendUint16(b, t.Algorithm.Version)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
	b = append(b, rec...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b, nil
}

// UnmarshalBinary decodes the versioned template encoding. It never panics on
// bad input; every failure wraps ErrCorrupt and names the field.
func (t *Template) UnmarshalBinary(b []byte) error {
	const fixed = len(magic) + 3
	if len(b) < fixed+4+4 {
		return fmt.Errorf("%w: %d bytes is shorter than any template", ErrCorrupt, len(b))
	}
	if string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if b[3] != encVersion && b[3] != encVersionFinger {
		return fmt.Errorf("%w: unsupported encoding version %d", ErrCorrupt, b[3])
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if b[3] == encVersionFinger {
		return t.unmarshalFinger(body)
	}
	mod := Modality(b[4])
	alen := int(b[5])
	p := body[fixed:]
	if alen == 0 || len(p) < alen+4 {
		return fmt.Errorf("%w: algorithm id length %d", ErrCorrupt, alen)
	}
	id := string(p[:alen])
	p = p[alen:]
	ver := binary.LittleEndian.Uint16(p)
	dim := int(binary.LittleEndian.Uint16(p[2:]))
	p = p[4:]
	if dim == 0 || dim > MaxDim {
		return fmt.Errorf("%w: dimension %d", ErrCorrupt, dim)
	}
	if len(p) != 4*dim {
		return fmt.Errorf("%w: vector is %d bytes, header says %d", ErrCorrupt, len(p), 4*dim)
	}
	vec := make([]float32, dim)
	for i := range vec {
		f := math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("%w: vector element %d is not finite", ErrCorrupt, i)
		}
		vec[i] = f
	}
	*t = Template{Modality: mod, Algorithm: Algorithm{ID: id, Version: ver}, Vector: vec}
	return nil
}

func (t *Template) unmarshalFinger(body []byte) error {
	const fixed = len(magic) + 3
	if mod := Modality(body[4]); mod != ModalityFinger {
		return fmt.Errorf("%w: modality %s in a finger template", ErrCorrupt, mod)
	}
	alen := int(body[5])
	p := body[fixed:]
	if alen == 0 || len(p) < alen+6 {
		return fmt.Errorf("%w: algorithm id length %d", ErrCorrupt, alen)
	}
	id := string(p[:alen])
	p = p[alen:]
	ver := binary.LittleEndian.Uint16(p)
	n := binary.LittleEndian.Uint32(p[2:])
	p = p[6:]
	if n == 0 || n > MaxFingerRecord || int(n) != len(p) {
		return fmt.Errorf("%w: finger record is %d bytes, header says %d", ErrCorrupt, len(p), n)
	}
	rec, err := minutiae.ParseISO(p)
	if err != nil {
		return fmt.Errorf("%w: finger record: %v", ErrCorrupt, err)
	}
	if len(rec.Views) != 1 {
		return fmt.Errorf("%w: finger record has %d views, want 1", ErrCorrupt, len(rec.Views))
	}
	v := rec.Views[0]
	if len(v.Extended) != 0 {
		return fmt.Errorf("%w: finger record has extended data", ErrCorrupt)
	}
	// Only the canonical form is accepted, so that what decodes re-encodes
	// to the same bytes (and the checksum of a stored template is stable).
	again, err := minutiae.Record{Format: minutiae.FormatISO2005, Views: rec.Views}.MarshalISO()
	if err != nil || string(again) != string(p) {
		return fmt.Errorf("%w: finger record is not in canonical form", ErrCorrupt)
	}
	*t = Template{Modality: ModalityFinger, Algorithm: Algorithm{ID: id, Version: ver}, Finger: &v}
	return nil
}
