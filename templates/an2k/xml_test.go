package an2k

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
)

// TestParseXML: NIST's XML round-trip package (ANSI/NIST-ITL 2-2008)
// reads to its end: the records its content summary lists, in order, with
// the Type-1 fields and the images' data, size, compression and
// positions. Its images are one 114-byte placeholder (the file is for
// comparing round trips, not images), so none decodes.
func TestParseXML(t *testing.T) {
	b, err := os.ReadFile("testdata/All-Supported-Records-test-comp.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !IsXML(b) || IsXML([]byte("1.001:123")) {
		t.Fatal("IsXML")
	}
	tx, err := ParseXML(b)
	if err != nil {
		t.Fatal(err)
	}
	var types []int
	for _, r := range tx.Records {
		types = append(types, r.Type)
	}
	want := []int{1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 13, 13, 13, 14, 14, 14, 15, 16, 17, 99}
	if !slices.Equal(types, want) {
		t.Fatalf("record types %v, want %v", types, want)
	}
	if tx.Version() != "0400" || tx.TOT() != "CAR" || tx.TCN() != "56839" || tx.Originator() != "WI013415Y" || tx.Date() != "20070706" {
		t.Errorf("Type-1: VER %q TOT %q TCN %q ORI %q DAT %q", tx.Version(), tx.TOT(), tx.TCN(), tx.Originator(), tx.Date())
	}
	if name, version := tx.Domain(); name != "NORAM" || version != "7.02" {
		t.Errorf("DOM %q %q", name, version)
	}
	images := 0
	for i, r := range tx.Records {
		if !hasImage(&r) {
			continue
		}
		im, err := tx.Image(i)
		if err != nil {
			t.Errorf("record %d (Type-%d): %v", i, r.Type, err)
			continue
		}
		images++
		if len(im.Data) != 114 || im.Width != 80 || im.Height != 65 {
			t.Errorf("record %d (Type-%d): %d bytes, %d×%d", i, r.Type, len(im.Data), im.Width, im.Height)
		}
		if r.Type == 10 && im.Compression != "jpeg" {
			t.Errorf("record %d: the face's compression %q", i, im.Compression)
		}
		if r.Type == 4 && (im.Compression != "wsq" || !slices.Equal(im.Positions, []int{2, 3})) {
			t.Errorf("record %d: Type-4 %q at %v", i, im.Compression, im.Positions)
		}
		if _, err := im.Decode(); err == nil {
			t.Errorf("record %d (Type-%d): the placeholder decoded as a %s image", i, r.Type, im.Compression)
		}
	}
	if images < 8 {
		t.Errorf("%d images read", images)
	}

	// Errors name the record.
	for _, tc := range []struct {
		name string
		in   []byte
		kind error
	}{
		{"not XML", []byte("1.001:12\x1d"), ErrFormat},
		{"other root", []byte("<a></a>"), ErrFormat},
		{"a record the summary lists is missing", cut(b, "<itl:PackageDescriptiveTextRecord>", "</itl:PackageDescriptiveTextRecord>", ""), ErrCount},
		{"bad base64", bytes.Replace(b, []byte("<nc:BinaryBase64Object>mrHb"), []byte("<nc:BinaryBase64Object>*rHb"), 1), ErrValue},
		{"bad type", cut(b, "<itl:PackageDescriptiveTextRecord>", "</ansi-nist:RecordCategoryCode>",
			"<itl:PackageDescriptiveTextRecord><ansi-nist:RecordCategoryCode>x</ansi-nist:RecordCategoryCode>"), ErrFormat},
	} {
		_, err := ParseXML(tc.in)
		var ae *Error
		if !errors.As(err, &ae) || !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
		}
	}
}

// cut replaces b's text from the first from to the first to after it,
// both included, with repl.
func cut(b []byte, from, to, repl string) []byte {
	i := bytes.Index(b, []byte(from))
	j := i + bytes.Index(b[i:], []byte(to)) + len(to)
	return append(append(append([]byte(nil), b[:i]...), repl...), b[j:]...)
}

func FuzzParseXML(f *testing.F) {
	b, err := os.ReadFile("testdata/All-Supported-Records-test-comp.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		tx, err := ParseXML(in)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("not an *Error: %v", err)
			}
			return
		}
		for i := range tx.Records {
			if im, err := tx.Image(i); err == nil {
				im.Decode()
			}
		}
	})
}
