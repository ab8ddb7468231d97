package templates

import (
	"errors"
	"math"
	"testing"
)

func TestTemplateRoundTrip(t *testing.T) {
	in := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{0.5, -0.25, 1e-7, 3}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Template
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := in.Compatible(out); err != nil {
		t.Fatal(err)
	}
	for i := range in.Vector {
		if in.Vector[i] != out.Vector[i] {
			t.Fatalf("element %d: %v != %v", i, out.Vector[i], in.Vector[i])
		}
	}
}

func TestTemplateDecodeErrors(t *testing.T) {
	good, _ := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{1, 2}}.MarshalBinary()
	flip := func(i int) []byte { b := append([]byte(nil), good...); b[i] ^= 1; return b }
	nan, _ := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{float32(math.NaN())}}.MarshalBinary()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", good[:5]},
		{"truncated", good[:len(good)-1]},
		{"bad magic", flip(0)},
		{"bad version", flip(3)},
		{"flipped vector bit", flip(len(good) - 6)},
		{"flipped checksum", flip(len(good) - 1)},
		{"not finite", nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tpl Template
			if err := tpl.UnmarshalBinary(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCompatible(t *testing.T) {
	a := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, 128)}
	tests := []struct {
		name string
		b    Template
		ok   bool
	}{
		{"same", a, true},
		{"other version", Template{Modality: ModalityFace, Algorithm: Algorithm{FaceAlgorithm.ID, FaceAlgorithm.Version + 1}, Vector: a.Vector}, false},
		{"other algorithm", Template{Modality: ModalityFace, Algorithm: Algorithm{"other", 1}, Vector: a.Vector}, false},
		{"other modality", Template{Modality: ModalityFinger, Algorithm: FaceAlgorithm, Vector: a.Vector}, false},
		{"other dimension", Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, 64)}, false},
	}
	for _, tt := range tests {
		if err := a.Compatible(tt.b); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrIncompatible)) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// FuzzTemplateUnmarshal: decoding never panics, and whatever decodes
// re-encodes to the same bytes.
func FuzzTemplateUnmarshal(f *testing.F) {
	good, _ := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{1, 2, 3}}.MarshalBinary()
	f.Add(good)
	f.Add([]byte("BMT\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tpl Template
		if err := tpl.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := tpl.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded template does not encode: %v", err)
		}
		if string(again) != string(b) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}
