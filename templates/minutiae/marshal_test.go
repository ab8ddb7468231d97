package minutiae

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestResolutionRoundTrip(t *testing.T) {
	for p := 0; p <= 0xffff; p++ {
		if got := ppcmOf(dpiOf(uint16(p))); got != p {
			t.Fatalf("%d px/cm → %d dpi → %d px/cm", p, dpiOf(uint16(p)), got)
		}
	}
	for _, tc := range []struct{ ppcm, dpi int }{{197, 500}, {224, 569}, {394, 1001}, {0, 0}} {
		if got := dpiOf(uint16(tc.ppcm)); got != tc.dpi {
			t.Errorf("%d px/cm = %d dpi, want %d", tc.ppcm, got, tc.dpi)
		}
	}
}

// twoFingers is a record as the extractor would build it: no format yet.
func twoFingers() Record {
	m := func(x, y int, deg float64, k Kind, q uint8) Minutia {
		return Minutia{X: x, Y: y, Angle: deg * math.Pi / 180, Kind: k, Quality: q}
	}
	return Record{
		EquipmentCompliance: 8, EquipmentID: 0x123,
		Views: []View{
			{Position: RightIndex, Width: 388, Height: 374, DPI: 500, Quality: 80, Impression: LiveScanPlain,
				Minutiae: []Minutia{m(0, 0, 0, KindEnding, 50), m(387, 373, 358, KindBifurcation, 100), m(10, 20, 90, KindOther, 0)}},
			{Position: LeftThumb, ViewNumber: 1, Width: 388, Height: 374, DPI: 500, Impression: LiveScanRolled,
				Minutiae: []Minutia{}, Extended: []ExtendedData{{Type: 0x0101, Data: []byte{1, 2, 3}}}},
		},
	}
}

// angleClose reports whether two angles are within tol radians on the circle.
func angleClose(a, b, tol float64) bool { return math.Abs(math.Remainder(a-b, 2*math.Pi)) <= tol }

func TestMarshalEachFormat(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		unit float64 // the angle unit in radians
	}{{FormatISO2005, 2 * math.Pi / 256}, {FormatANSI2004, math.Pi / 90}, {FormatANSI2009, math.Pi / 90}} {
		t.Run(tc.f.String(), func(t *testing.T) {
			in := twoFingers()
			b, err := in.MarshalFormat(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != tc.f || len(r.Views) != 2 {
				t.Fatalf("read back %v with %d views", r.Format, len(r.Views))
			}
			for i, v := range r.Views {
				w := in.Views[i]
				if v.Position != w.Position || v.ViewNumber != w.ViewNumber || v.Impression != w.Impression || v.Quality != w.Quality ||
					v.Width != w.Width || v.Height != w.Height || v.DPI != w.DPI || len(v.Minutiae) != len(w.Minutiae) ||
					!reflect.DeepEqual(v.Extended, w.Extended) {
					t.Errorf("view %d: %+v, want %+v", i+1, v, w)
				}
				for j, m := range v.Minutiae {
					wm := w.Minutiae[j]
					if m.X != wm.X || m.Y != wm.Y || m.Kind != wm.Kind || m.Quality != wm.Quality || !angleClose(m.Angle, wm.Angle, tc.unit/2+1e-12) {
						t.Errorf("view %d minutia %d: %+v, want %+v", i+1, j+1, m, wm)
					}
				}
			}
			// Once quantised, the record is a fixed point.
			b2, err := r.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("second marshal differs (%v)", err)
			}
		})
	}
}

func TestAngleUnits(t *testing.T) {
	for a := range 256 {
		r := Record{Views: []View{{Minutiae: []Minutia{{Angle: float64(a) * 2 * math.Pi / 256}}}}}
		b, _ := r.MarshalISO()
		if got := b[24+4+4]; int(got) != a {
			t.Fatalf("ISO angle %d written as %d", a, got)
		}
		if a < 180 {
			r.Views[0].Minutiae[0].Angle = float64(a) * math.Pi / 90
			b, _ = r.MarshalANSI()
			if got := b[26+4+4]; int(got) != a {
				t.Fatalf("ANSI angle %d written as %d", a, got)
			}
		}
	}
	// Angles just below 2π round up to a full turn, which is 0.
	r := Record{Views: []View{{Minutiae: []Minutia{{Angle: 2*math.Pi - 1e-9}, {Angle: -math.Pi / 2}}}}}
	b, _ := r.MarshalISO()
	if b[32] != 0 || b[38] != 192 {
		t.Errorf("ISO angles %d, %d, want 0, 192", b[32], b[38])
	}
	b, _ = r.MarshalANSI()
	if b[34] != 0 || b[40] != 135 {
		t.Errorf("ANSI angles %d, %d, want 0, 135", b[34], b[40])
	}
}

func TestMarshalANSILongLength(t *testing.T) {
	r := twoFingers()
	r.Views[0].Extended = []ExtendedData{{Type: 0x0200, Data: make([]byte, 40000)}}
	r.Views[1].Extended = []ExtendedData{{Type: 0x0201, Data: bytes.Repeat([]byte{7}, 30000)}}
	b, err := r.MarshalANSI()
	if err != nil {
		t.Fatal(err)
	}
	if b[8] != 0 || b[9] != 0 || len(b) <= 0xffff {
		t.Fatalf("%d bytes, length field % x: want the 6-byte form", len(b), b[8:14])
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Format != FormatANSI2004 || !reflect.DeepEqual(got.Views[1].Extended, r.Views[1].Extended) {
		t.Errorf("read back %v, extended data equal %v", got.Format, reflect.DeepEqual(got.Views[1].Extended, r.Views[1].Extended))
	}
	// The same record in ISO is over 64 KiB, so bytes 8–9 of its length are
	// not zero: Parse tries ANSI first and must fall back to ISO.
	b, err = r.MarshalISO()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Parse(b); err != nil || got.Format != FormatISO2005 {
		t.Errorf("large ISO record read as %v, %v", got.Format, err)
	}
}

func TestMarshalConvertsCoreDelta(t *testing.T) {
	ansi, err := ParseANSI(readFile(t, "testdata/nist/fmr.ansi2004"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ansi.Views[2].Extended); n != 2 {
		t.Fatalf("view 3 has %d extended blocks, want ridge counts and core/delta", n)
	}
	b, err := ansi.MarshalISO()
	if err != nil {
		t.Fatal(err)
	}
	iso, err := ParseISO(b)
	if err != nil {
		t.Fatal(err)
	}
	ext := iso.Views[2].Extended
	if len(ext) != 1 || ext[0].Type != 1 || !bytes.Equal(ext[0].Data, ansi.Views[2].Extended[0].Data) {
		t.Errorf("ISO view 3 extended data %v: want the ridge counts only (core/delta angles are in ANSI units)", ext)
	}
	// ANSI 2004 → 2009 keeps them: same units and layout.
	b, err = ansi.MarshalFormat(FormatANSI2009)
	if err != nil {
		t.Fatal(err)
	}
	a9, err := Parse(b)
	if err != nil || !reflect.DeepEqual(a9.Views[2].Extended, ansi.Views[2].Extended) {
		t.Errorf("2009 copy: %v, extended equal %v", err, err == nil && reflect.DeepEqual(a9.Views[2].Extended, ansi.Views[2].Extended))
	}
}

func TestMarshalRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     Format
		edit  func(*Record)
		field string
	}{
		{"unknown format", FormatUnknown, func(*Record) {}, "format"},
		{"no views", FormatISO2005, func(r *Record) { r.Views = nil }, "number of finger views"},
		{"equipment id", FormatISO2005, func(r *Record) { r.EquipmentID = 0x1000 }, "capture equipment"},
		{"views differ", FormatISO2005, func(r *Record) { r.Views[1].Width = 400 }, "view 2 image geometry"},
		{"views differ ANSI", FormatANSI2004, func(r *Record) { r.Views[1].DPI = 569 }, "view 2 image geometry"},
		{"image size", FormatANSI2009, func(r *Record) { r.Views[0].Width = 70000 }, "view 1 image size"},
		{"resolution", FormatANSI2009, func(r *Record) { r.Views[0].DPI = -3 }, "view 1 resolution"},
		{"position", FormatISO2005, func(r *Record) { r.Views[0].Position = 11 }, "view 1 finger position"},
		{"view number", FormatISO2005, func(r *Record) { r.Views[1].ViewNumber = 16 }, "view 2 view number and impression type"},
		{"finger quality", FormatISO2005, func(r *Record) { r.Views[0].Quality = 101 }, "view 1 finger quality"},
		{"256 minutiae", FormatISO2005, func(r *Record) { r.Views[1].Minutiae = make([]Minutia, 256) }, "view 2 number of minutiae"},
		{"x outside image", FormatISO2005, func(r *Record) { r.Views[0].Minutiae[0].X = 388 }, "view 1 minutia 1 x"},
		{"negative y", FormatISO2005, func(r *Record) { r.Views[0].Minutiae[0].Y = -1 }, "view 1 minutia 1 y"},
		{"15-bit x", FormatISO2005, func(r *Record) {
			for i := range r.Views {
				r.Views[i].Width = 0
			}
			r.Views[0].Minutiae[0].X = 1 << 14
		}, "view 1 minutia 1 x"},
		{"kind", FormatISO2005, func(r *Record) { r.Views[0].Minutiae[2].Kind = 3 }, "view 1 minutia 3 type"},
		{"minutia quality", FormatISO2005, func(r *Record) { r.Views[0].Minutiae[2].Quality = 255 }, "view 1 minutia 3 quality"},
		{"NaN angle", FormatISO2005, func(r *Record) { r.Views[0].Minutiae[1].Angle = math.NaN() }, "view 1 minutia 2 angle"},
		{"extended block size", FormatISO2005, func(r *Record) { r.Views[1].Extended[0].Data = make([]byte, 0xfffc) }, "view 2 extended data block 1"},
		{"extended total", FormatISO2005, func(r *Record) {
			r.Views[1].Extended = append(r.Views[1].Extended, ExtendedData{Type: 0x300, Data: make([]byte, 0xfff8)})
		}, "view 2 extended data"},
		{"core/delta content", FormatISO2005, func(r *Record) {
			r.Views[1].Extended = []ExtendedData{{Type: 2, Data: []byte{1, 0, 1}}}
		}, "view 2 extended data block 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := twoFingers()
			tc.edit(&r)
			b, err := r.MarshalFormat(tc.f)
			var e *Error
			if !errors.Is(err, ErrUnrepresentable) || !errors.As(err, &e) || e.Field != tc.field {
				t.Fatalf("%d bytes, %v; want ErrUnrepresentable on %q", len(b), err, tc.field)
			}
			t.Log(err)
		})
	}
}
