package templates

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// TestFaceEncodingUnchanged: a face template encodes to the bytes the first
// version of the encoding wrote (computed by the code before finger
// templates existed), and those bytes decode, so stored galleries load.
func TestFaceEncodingUnchanged(t *testing.T) {
	const golden = "424d5401010d646c69622d7265736e65743239010003000000003f000080be0000803fc871583c"
	in := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{0.5, -0.25, 1}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != golden {
		t.Fatalf("face encoding changed:\n got %s\nwant %s", got, golden)
	}
	raw, _ := hex.DecodeString(golden)
	var out Template
	if err := out.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
}

// isoView reads the first view of a committed ISO record (SecuGen minutiae
// of FVC2002 DB1_B 101_1, see templates/minutiae/testdata/SOURCES.md).
func isoView(t testing.TB) minutiae.View {
	b, err := os.ReadFile("minutiae/testdata/fvc2002/db1_b/101_1.iso")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := minutiae.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Views[0]
}

func TestFingerTemplateRoundTrip(t *testing.T) {
	v := isoView(t)
	v.Position = minutiae.LeftIndex
	v.Extended = []minutiae.ExtendedData{{Type: 2, Data: []byte{1, 2, 3}}}
	in := NewFingerTemplate(v)
	if in.Finger.Extended != nil {
		t.Fatal("extended data kept")
	}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if b[3] != encVersionFinger {
		t.Fatalf("encoding version %d", b[3])
	}
	var out Template
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := in.Compatible(out); err != nil {
		t.Fatal(err)
	}
	if out.Position() != minutiae.LeftIndex || out.Modality != ModalityFinger || out.Algorithm != FingerAlgorithm {
		t.Fatalf("decoded %v %v %v", out.Position(), out.Modality, out.Algorithm)
	}
	// The ISO record holds angles in 360/256° units, so the decoded
	// minutiae equal the input's up to that rounding, and exactly after one
	// round trip.
	if len(out.Finger.Minutiae) != len(v.Minutiae) || out.Finger.DPI != v.DPI || out.Finger.Width != v.Width {
		t.Fatalf("view changed: %d minutiae at %d dpi, want %d at %d", len(out.Finger.Minutiae), out.Finger.DPI, len(v.Minutiae), v.DPI)
	}
	for i, m := range out.Finger.Minutiae {
		w := v.Minutiae[i]
		d := math.Abs(m.Angle - w.Angle)
		if m.X != w.X || m.Y != w.Y || m.Kind != w.Kind || math.Min(d, 2*math.Pi-d) > math.Pi/256+1e-9 {
			t.Fatalf("minutia %d: %+v, want %+v", i, m, w)
		}
	}
	again, err := out.MarshalBinary()
	if err != nil || string(again) != string(b) {
		t.Fatalf("second round trip changed the bytes (%v)", err)
	}
	// The face template of a face is never compatible with a finger.
	face := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{1}}
	if err := face.Compatible(out); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("face vs finger: %v", err)
	}
}

func TestFingerTemplateEncodeErrors(t *testing.T) {
	v := isoView(t)
	tooMany := v
	tooMany.Minutiae = make([]minutiae.Minutia, 256)
	far := v
	far.Minutiae = []minutiae.Minutia{{X: 1 << 15}}
	tests := []struct {
		name string
		in   Template
	}{
		{"vector and view", Template{Modality: ModalityFinger, Algorithm: FingerAlgorithm, Vector: []float32{1}, Finger: &v}},
		{"face with view", Template{Modality: ModalityFace, Algorithm: FingerAlgorithm, Finger: &v}},
		{"finger without view", Template{Modality: ModalityFinger, Algorithm: FingerAlgorithm}},
		{"256 minutiae", NewFingerTemplate(tooMany)},
		{"coordinate past 14 bits", NewFingerTemplate(far)},
		{"no algorithm", Template{Modality: ModalityFinger, Finger: &v}},
	}
	for _, tt := range tests {
		if b, err := tt.in.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded to %d bytes", tt.name, len(b))
		}
	}
}

func TestFingerTemplateDecodeErrors(t *testing.T) {
	good, err := NewFingerTemplate(isoView(t)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	reseal := func(b []byte) []byte {
		b = append([]byte(nil), b[:len(b)-4]...)
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	edit := func(f func(b []byte) []byte) []byte { return reseal(f(append([]byte(nil), good[:len(good)-4]...))) }
	recAt := len(magic) + 3 + len(FingerAlgorithm.ID) + 6
	tests := []struct {
		name, want string
		in         []byte
	}{
		{"flipped minutia bit", "checksum", func() []byte { b := append([]byte(nil), good...); b[recAt+40] ^= 1; return b }()},
		{"face modality", "modality", edit(func(b []byte) []byte { b[4] = byte(ModalityFace); return b })},
		{"record length", "header says", edit(func(b []byte) []byte { b[recAt-4]++; return b })},
		{"truncated record", "header says", edit(func(b []byte) []byte { return b[:len(b)-1] })},
		{"record magic", "finger record", edit(func(b []byte) []byte { b[recAt] = 'X'; return b })},
		{"record padding", "header says", edit(func(b []byte) []byte { return append(b, 0) })},
		{"no algorithm", "algorithm id length", edit(func(b []byte) []byte { b[5] = 0; return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tpl Template
			err := tpl.UnmarshalBinary(tt.in)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrCorrupt naming %q", err, tt.want)
			}
		})
	}
}

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
	if finger, err := NewFingerTemplate(isoView(f)).MarshalBinary(); err == nil {
		f.Add(finger)
	}
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

func TestComparable(t *testing.T) {
	face := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, FaceDim)}
	face.Vector[3] = 0.5
	old := face
	old.Algorithm.Version++
	short := face
	short.Vector = short.Vector[:64]
	zero := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, 8)}
	nan := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{1, float32(math.NaN())}}
	noAlgo := Template{Modality: ModalityFace, Vector: []float32{1}}
	huge := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, MaxDim+1)}
	huge.Vector[0] = 1
	fingerNoMinutiae := Template{Modality: ModalityFinger, Algorithm: FingerAlgorithm}
	flt := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, FaceDim)}
	for i := range flt.Vector {
		flt.Vector[i] = math.MaxFloat32 * float32(1-2*(i%2))
	}
	tiny := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{1e-30, -1e-30}}
	finger := func(dpi, w, h int, ms ...minutiae.Minutia) Template {
		return NewFingerTemplate(minutiae.View{DPI: dpi, Width: w, Height: h, Minutiae: ms})
	}
	mz := minutiae.Minutia{X: 10, Y: 20, Angle: 1}
	for _, tc := range []struct {
		name string
		t    Template
		ok   bool
	}{
		{"FLT_MAX vector", flt, false},
		{"vector of norm 1e-30", tiny, false},
		{"finger", finger(500, 100, 100, mz), true},
		{"finger of unstated size and dpi", finger(0, 0, 0, mz), true},
		{"finger of 1 dpi", finger(1, 100, 100, mz), false},
		{"finger of 60000 dpi", finger(60000, 100, 100, mz), false},
		{"minutia outside the image", finger(500, 10, 10, mz), false},
		{"minutia of NaN angle", finger(500, 100, 100, minutiae.Minutia{X: 1, Y: 1, Angle: math.NaN()}), false},
		{"256 minutiae", finger(500, 100, 100, make([]minutiae.Minutia, 256)...), false},
		{"face", face, true},
		// Any named face algorithm of any dimension is comparable; that a
		// probe and a reference share them is Compatible's to check.
		{"face of another version", old, true},
		{"face of another dimension", short, true},
		{"face of no algorithm", noAlgo, false},
		{"zero vector", zero, false},
		{"NaN in the vector", nan, false},
		{"vector over MaxDim", huge, false},
		{"finger without minutiae", fingerNoMinutiae, false},
		{"unknown modality", Template{}, false},
	} {
		err := tc.t.Comparable()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrIncompatible) && !errors.Is(err, ErrInvalidTemplate)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestComparableKinds: a template of values no extractor makes is
// ErrInvalidTemplate (the caller's bad input), not ErrIncompatible (an
// algorithm this code does not compare, which re-enrolment fixes).
func TestComparableKinds(t *testing.T) {
	zero := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: make([]float32, FaceDim)}
	if err := zero.Comparable(); !errors.Is(err, ErrInvalidTemplate) || errors.Is(err, ErrIncompatible) {
		t.Errorf("zero vector: %v, want ErrInvalidTemplate", err)
	}
	other := Template{Modality: ModalityFinger, Algorithm: Algorithm{ID: "x", Version: 1}, Finger: &minutiae.View{}}
	if err := other.Comparable(); !errors.Is(err, ErrIncompatible) {
		t.Errorf("finger of another algorithm: %v, want ErrIncompatible", err)
	}
}

func TestNormalised(t *testing.T) {
	for _, v := range [][]float32{{3, 4}, {1e5, -1e5, 7e4}, {1e-5, 0, 0}} {
		in := Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: v}
		before := slices.Clone(v)
		out, err := in.Normalised()
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		var ss float64
		for _, x := range out.Vector {
			ss += float64(x) * float64(x)
		}
		if math.Abs(ss-1) > 1e-6 {
			t.Errorf("%v: squared norm %v after normalising", v, ss)
		}
		if !slices.Equal(v, before) {
			t.Errorf("Normalised changed its input")
		}
	}
	if _, err := (Template{Modality: ModalityFace, Algorithm: FaceAlgorithm, Vector: []float32{0, 0}}).Normalised(); !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("zero vector normalised: %v", err)
	}
}
