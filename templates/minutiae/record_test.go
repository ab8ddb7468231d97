package minutiae

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fingerprintData is the shared fingerprints folder (…/testdata/fingerprints)
// for the tests over all 320 FVC2002 ISO templates: the one variable every
// package's accuracy tests read, which make test sets when the folder is
// beside the clone.
func fingerprintData() string { return os.Getenv("BORDERMATCH_FINGERPRINT_DATA") }

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func glob(t testing.TB, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files match %s (%v)", pattern, err)
	}
	sort.Strings(files)
	return files
}

// checkISO verifies the invariants of a parsed FVC2002 ISO template made
// by the SecuGen SDK (see testdata/SOURCES.md): one view, 300×400 at
// 197 px/cm, every minutia inside the image, declared length = file size.
func checkFVCTemplate(t *testing.T, name string, b []byte) {
	t.Helper()
	r, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if r.Format != FormatISO2005 {
		t.Fatalf("%s: format %v, want ISO", name, r.Format)
	}
	if len(r.Views) != 1 {
		t.Fatalf("%s: %d views", name, len(r.Views))
	}
	v := r.Views[0]
	if v.Width != 300 || v.Height != 400 || v.DPI != 500 || v.YDPI != 0 {
		t.Errorf("%s: geometry %dx%d at %d/%d dpi", name, v.Width, v.Height, v.DPI, v.YDPI)
	}
	if n := len(v.Minutiae); n < 6 || n > 81 {
		t.Errorf("%s: %d minutiae, the set has 6..81", name, n)
	}
	if want := 24 + 4 + 6*len(v.Minutiae) + 2; len(b) != want {
		t.Errorf("%s: %d bytes, want %d", name, len(b), want)
	}
	for i, m := range v.Minutiae {
		if m.X < 0 || m.X >= v.Width || m.Y < 0 || m.Y >= v.Height || m.Angle < 0 || m.Angle >= 2*math.Pi ||
			(m.Kind != KindEnding && m.Kind != KindBifurcation) {
			t.Errorf("%s: minutia %d out of range: %+v", name, i+1, m)
		}
	}
	// Without extended data the record must come back byte for byte.
	out, err := r.Marshal()
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	if !bytes.Equal(out, b) {
		t.Errorf("%s: marshal differs from the file", name)
	}
}

func TestParseFVC2002ISOSubset(t *testing.T) {
	files := glob(t, "testdata/fvc2002/*/*.iso")
	for _, f := range files {
		checkFVCTemplate(t, f, readFile(t, f))
	}
}

// TestParseFVC2002ISOAll walks the 320 templates of the shared test data
// (BORDERMATCH_FINGERPRINT_DATA pointing at testdata/fingerprints).
func TestParseFVC2002ISOAll(t *testing.T) {
	dataDir := fingerprintData()
	if dataDir == "" {
		t.Skip("set BORDERMATCH_FINGERPRINT_DATA to the shared fingerprints folder to check all 320 FVC2002 ISO templates")
	}
	files := glob(t, filepath.Join(dataDir, "templates/iso19794-2-2005_secugen_openafis/fvc2002_db*_b/*.iso"))
	if len(files) != 320 {
		t.Errorf("%d templates, want 320", len(files))
	}
	total := 0
	for _, f := range files {
		b := readFile(t, f)
		checkFVCTemplate(t, f, b)
		r, _ := ParseISO(b)
		total += len(r.Views[0].Minutiae)
	}
	t.Logf("%d templates, %d minutiae, mean %.1f", len(files), total, float64(total)/float64(len(files)))
	for _, f := range glob(t, filepath.Join(dataDir, "templates/iso19794-2-2005_secugen_openafis/invalid/*.iso")) {
		if _, err := Parse(readFile(t, f)); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v, want ErrTruncated", f, err)
		}
	}
}

func TestParseFirstMinutia(t *testing.T) {
	// testdata/fvc2002/db1_b/101_1.iso starts its minutiae with 80a5 0030 6b00:
	// a bifurcation at (165, 48), angle 0x6b = 107 × 360/256°, quality 0.
	r, err := ParseISO(readFile(t, "testdata/fvc2002/db1_b/101_1.iso"))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Views[0].Minutiae[0]
	want := Minutia{X: 165, Y: 48, Angle: 107 * 2 * math.Pi / 256, Kind: KindBifurcation}
	if m != want {
		t.Errorf("first minutia %+v, want %+v", m, want)
	}
	if n := len(r.Views[0].Minutiae); n != 25 {
		t.Errorf("%d minutiae, want 25", n)
	}
}

func TestParseSamples(t *testing.T) {
	for _, tc := range []struct {
		file    string
		format  Format
		views   int
		minutia []int // per view
		padding bool
		// differs lists the bytes Marshal rewrites: the NIST samples'
		// core/delta block lengths and the extended data lengths that
		// include them are off by 1 or 2 (see decoder.extended).
		differs []int
	}{
		{"nist/fmr.iso2005", FormatISO2005, 2, []int{27, 22}, false, []int{329, 333}},
		{"nist/fmr.ansi2004", FormatANSI2004, 3, []int{27, 22, 28}, false, []int{516, 1197}},
		{"nist/fmr.ansi2007", FormatANSI2009, 2, []int{27, 22}, false, nil},
		{"sourceafis/iso-probe.dat", FormatISO2005, 1, []int{38}, true, nil},
		{"sourceafis/iso-matching.dat", FormatISO2005, 1, []int{38}, true, nil},
		{"sourceafis/iso-nonmatching.dat", FormatISO2005, 1, []int{39}, true, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := readFile(t, filepath.Join("testdata", tc.file))
			r, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != tc.format || len(r.Views) != tc.views {
				t.Fatalf("format %v with %d views, want %v with %d", r.Format, len(r.Views), tc.format, tc.views)
			}
			for i, n := range tc.minutia {
				if got := len(r.Views[i].Minutiae); got != n {
					t.Errorf("view %d: %d minutiae, want %d", i+1, got, n)
				}
			}
			// The format-specific parser agrees with the detection.
			parse := ParseISO
			if tc.format != FormatISO2005 {
				parse = ParseANSI
			}
			if r2, err := parse(b); err != nil || !reflect.DeepEqual(r, r2) {
				t.Errorf("format parser: %v, equal %v", err, reflect.DeepEqual(r, r2))
			}
			// parse → marshal → parse is the identity; without padding the
			// bytes are the same too.
			out, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			r2, err := Parse(out)
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if !reflect.DeepEqual(r, r2) {
				t.Errorf("re-parsed record differs:\n%+v\n%+v", r, r2)
			}
			want := b
			if tc.padding {
				if len(out) >= len(b) {
					t.Fatalf("marshal gave %d bytes, the padded file has %d", len(out), len(b))
				}
				want = b[:len(out)]
			}
			if len(out) != len(want) {
				t.Fatalf("marshal gave %d bytes, want %d", len(out), len(want))
			}
			var differs []int
			for i := range out {
				if out[i] != want[i] {
					differs = append(differs, i)
				}
			}
			if !reflect.DeepEqual(differs, tc.differs) {
				t.Errorf("marshal differs from the file at %v, want %v", differs, tc.differs)
			}
		})
	}
}

// The NIST samples hold the same minutiae in three formats: the angle
// units differ (ISO 360/256°, ANSI 2°), so angles agree within half the
// coarser unit.
func TestNISTSamplesAgree(t *testing.T) {
	iso, err := ParseISO(readFile(t, "testdata/nist/fmr.iso2005"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"testdata/nist/fmr.ansi2004", "testdata/nist/fmr.ansi2007"} {
		ansi, err := ParseANSI(readFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		for i := range min(len(iso.Views), len(ansi.Views)) {
			a, b := iso.Views[i], ansi.Views[i]
			if a.Position != b.Position || len(a.Minutiae) != len(b.Minutiae) || a.DPI != b.DPI || a.Width != b.Width {
				t.Fatalf("%s view %d: %v %d minutiae %d dpi vs ISO %v %d %d", f, i+1, b.Position, len(b.Minutiae), b.DPI, a.Position, len(a.Minutiae), a.DPI)
			}
			for j := range a.Minutiae {
				ma, mb := a.Minutiae[j], b.Minutiae[j]
				d := math.Abs(math.Remainder(ma.Angle-mb.Angle, 2*math.Pi))
				if ma.X != mb.X || ma.Y != mb.Y || ma.Kind != mb.Kind || ma.Quality != mb.Quality || d > math.Pi/180+1e-9 {
					t.Errorf("%s view %d minutia %d: %+v vs ISO %+v", f, i+1, j+1, mb, ma)
				}
			}
		}
	}
}

func TestInvalidSamples(t *testing.T) {
	for _, f := range glob(t, "testdata/invalid/*.iso") {
		b := readFile(t, f)
		for name, parse := range map[string]func([]byte) (Record, error){"Parse": Parse, "ParseISO": ParseISO} {
			_, err := parse(b)
			var e *Error
			if !errors.Is(err, ErrTruncated) || !errors.As(err, &e) || e.Field != "record length" || e.Offset != 8 {
				t.Errorf("%s %s: %v, want ErrTruncated on the record length at offset 8", name, f, err)
			}
		}
	}
}

func TestPaddingIgnored(t *testing.T) {
	b := readFile(t, "testdata/fvc2002/db1_b/101_1.iso")
	want, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	padded := append(append([]byte(nil), b...), 0xff, 0xee, 0, 0, 0, 7)
	got, err := Parse(padded)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("padded record: %v, equal %v", err, reflect.DeepEqual(got, want))
	}
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }

func TestParseErrors(t *testing.T) {
	iso := readFile(t, "testdata/fvc2002/db1_b/101_1.iso") // 1 view, 25 minutiae, 180 bytes
	ansi := readFile(t, "testdata/nist/fmr.ansi2004")      // 3 views, view 1 has 27 minutiae
	ansi9 := readFile(t, "testdata/nist/fmr.ansi2007")
	setLen32 := func(n uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], n); return b }
	}
	for _, tc := range []struct {
		name   string
		parse  func([]byte) (Record, error)
		in     []byte
		err    error
		field  string
		offset int
	}{
		{"empty", Parse, nil, ErrTruncated, "format identifier and version", 0},
		{"magic", Parse, mutate(iso, func(b []byte) []byte { b[0] = 'X'; return b }), ErrFormat, "format identifier", 0},
		{"version", Parse, mutate(iso, func(b []byte) []byte { copy(b[4:], "021\x00"); return b }), ErrUnsupportedVersion, "version", 4},
		{"ANSI parser on ISO 2005 version", ParseISO, mutate(iso, func(b []byte) []byte { copy(b[4:], "030\x00"); return b }), ErrUnsupportedVersion, "version", 4},
		{"length field cut", Parse, iso[:10], ErrTruncated, "record length", 8},
		{"length below header", ParseISO, mutate(iso, setLen32(20)), ErrFormat, "record length", 8},
		{"length beyond data", ParseISO, mutate(iso, setLen32(181)), ErrTruncated, "record length", 8},
		{"length short of content", ParseISO, mutate(iso, setLen32(179)), ErrTruncated, "view 1 extended data length", 178},
		{"length longer than content", ParseISO, mutate(iso, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], 182)
			return append(b, 0, 0)
		}), ErrFormat, "record length", 8},
		{"no views", ParseISO, mutate(iso, func(b []byte) []byte { b[22] = 0; return b }), ErrFormat, "number of finger views", 22},
		{"too many views", ParseISO, mutate(iso, func(b []byte) []byte { b[22] = 255; return b }), ErrTruncated, "number of finger views", 22},
		{"two views, one present", ParseISO, mutate(iso, func(b []byte) []byte { b[22] = 2; return b }), ErrTruncated, "view 2 header", 180},
		{"finger position", ParseISO, mutate(iso, func(b []byte) []byte { b[24] = 11; return b }), ErrFormat, "view 1 finger position", 24},
		{"finger quality", ParseISO, mutate(iso, func(b []byte) []byte { b[26] = 101; return b }), ErrFormat, "view 1 finger quality", 26},
		// 26 minutiae declared, 25 present: the 26th would start at the
		// extended data length, 28+25*6 = 178, and needs 6 bytes.
		{"minutia count", ParseISO, mutate(iso, func(b []byte) []byte { b[27] = 26; return b }), ErrTruncated, "view 1 minutia 26", 178},
		{"minutia count 255", ParseISO, mutate(iso, func(b []byte) []byte { b[27] = 255; return b }), ErrTruncated, "view 1 minutia 26", 178},
		{"minutia type 3", ParseISO, mutate(iso, func(b []byte) []byte { b[28+6] |= 0xc0; return b }), ErrFormat, "view 1 minutia 2 type", 34},
		{"minutia x", ParseISO, mutate(iso, func(b []byte) []byte { binary.BigEndian.PutUint16(b[28:], 0x8000|300); return b }), ErrFormat, "view 1 minutia 1 x", 28},
		{"minutia y", ParseISO, mutate(iso, func(b []byte) []byte { binary.BigEndian.PutUint16(b[30:], 400); return b }), ErrFormat, "view 1 minutia 1 y", 30},
		{"minutia quality", ParseISO, mutate(iso, func(b []byte) []byte { b[33] = 200; return b }), ErrFormat, "view 1 minutia 1 quality", 33},
		{"extended length", ParseISO, mutate(iso, func(b []byte) []byte { b[179] = 9; return b }), ErrTruncated, "view 1 extended data block 1 header", 180},
		{"extended length below a block", ParseISO, mutate(iso, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], 183)
			b[179] = 3
			return append(b, 0, 1, 0)
		}), ErrFormat, "view 1 extended data length", 178},
		{"extended block data", ParseISO, mutate(iso, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], 186)
			b[179] = 8
			return append(b, 0, 1, 0, 8, 0xaa, 0xbb)
		}), ErrTruncated, "view 1 extended data block 1 data", 184},
		{"core/delta counts", ParseISO, mutate(iso, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], 186)
			b[179] = 6
			return append(b, 0, 2, 0, 6, 0x01, 0x40) // one angular core, 5 bytes, only 1 present
		}), ErrTruncated, "view 1 extended data block 1 cores and deltas", 184},
		{"extended block length", ParseISO, mutate(iso, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[8:], 186)
			b[179] = 6
			return append(b, 0, 1, 0, 7, 0xaa, 0xbb)
		}), ErrFormat, "view 1 extended data block 1 length", 182},
		{"ANSI angle", ParseANSI, mutate(ansi, func(b []byte) []byte { b[26+4+4] = 180; return b }), ErrFormat, "view 1 minutia 1 angle", 34},
		{"ANSI length short of content", ParseANSI, mutate(ansi, func(b []byte) []byte { binary.BigEndian.PutUint16(b[8:], 1000); return b }), ErrTruncated, "", -1},
		{"ANSI cut after the length", ParseANSI, mutate(ansi, func(b []byte) []byte { return append([]byte(nil), b[:10]...) }), ErrTruncated, "record length", 8},
		{"ANSI 2009 view cut", ParseANSI, ansi9[:20+10], ErrTruncated, "record length", 8},
		{"ISO 2011 layout", Parse, iso2011Sample(), ErrUnsupportedVersion, "version", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.parse(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v (record %+v)", err, tc.err, r)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
			if tc.field != "" && (e.Field != tc.field || e.Offset != tc.offset) {
				t.Errorf("error at %q offset %d, want %q offset %d: %v", e.Field, e.Offset, tc.field, tc.offset, err)
			}
			if !strings.HasPrefix(err.Error(), "minutiae: ") || !strings.Contains(err.Error(), e.Field) {
				t.Errorf("message %q", err)
			}
			t.Log(err)
		})
	}
}

// iso2011Sample is the start of an ISO/IEC 19794-2:2011 record: one
// representation whose length matches the record length.
func iso2011Sample() []byte {
	b := []byte("FMR\x00030\x00")
	b = binary.BigEndian.AppendUint32(b, 15+40)
	b = append(b, 0, 1, 0)                   // one representation, not certified
	b = binary.BigEndian.AppendUint32(b, 40) // representation length
	return append(b, make([]byte, 40-4)...)
}

func BenchmarkParseISO(b *testing.B) {
	rec := readFile(b, "testdata/fvc2002/db1_b/101_1.iso")
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalISO(b *testing.B) {
	r, err := Parse(readFile(b, "testdata/fvc2002/db1_b/101_1.iso"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
