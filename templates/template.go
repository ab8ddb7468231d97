// Package templates turns biometric samples into comparable templates and
// defines the versioned binary encoding under which templates are stored and
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

// FaceAlgorithm is the algorithm of the face extractor in this package:
// dlib's ResNet-29 metric network, 128-d descriptors from 150x150 aligned chips.
var FaceAlgorithm = Algorithm{ID: "dlib-resnet29", Version: 1}

// Template is one comparable biometric feature vector.
type Template struct {
	Modality  Modality
	Algorithm Algorithm
	Vector    []float32
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
	return nil
}

var (
	// ErrIncompatible: two templates come from different modalities,
	// algorithms or algorithm versions.
	ErrIncompatible = errors.New("templates: incompatible template")
	// ErrCorrupt: an encoded template is truncated, inconsistent or fails its
	// checksum.
	ErrCorrupt = errors.New("templates: corrupt template")
)

// Encoding layout (little endian), version 1:
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
const (
	magic      = "BMT"
	encVersion = 1
	// MaxDim bounds the vector length a decoder accepts, so a corrupt header
	// cannot make it allocate without limit.
	MaxDim = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes t in the versioned template encoding.
func (t Template) MarshalBinary() ([]byte, error) {
	if len(t.Algorithm.ID) == 0 || len(t.Algorithm.ID) > 255 {
		return nil, fmt.Errorf("templates: algorithm id must be 1..255 bytes, got %d", len(t.Algorithm.ID))
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
	if b[3] != encVersion {
		return fmt.Errorf("%w: unsupported encoding version %d", ErrCorrupt, b[3])
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
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
