package an2k

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// valid1.15.an2 is 453 bytes: Type-1 at 0 (137 bytes, 2-digit tags),
// Type-2 at 137 (177 bytes), Type-9 at 314 (139 bytes, 2-digit tags).
func small(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/valid1.15.an2")
	if err != nil || len(b) != 453 {
		t.Fatalf("valid1.15.an2: %d bytes, %v", len(b), err)
	}
	return b
}

func replace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if bytes.Count(b, []byte(old)) != 1 {
		t.Fatalf("%q is not in the file once", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// TestErrors: each broken file gives an *Error wrapping the right
// sentinel and naming the record, its type, the field and the byte.
func TestErrors(t *testing.T) {
	b := small(t)
	for _, c := range []struct {
		name            string
		in              []byte
		kind            error
		rec, typ, field int
		offset          int
		message         string
	}{
		{"truncated", b[:400], ErrTruncated, 2, 9, 1, 319, "an2k: record 2 (Type-9) field 9.001 at byte 319: LEN 139 runs past the end of the input (86 bytes left)"},
		{"truncated in the tag", b[:316], ErrTruncated, 2, 9, 1, 314, ""},
		{"LEN short", replace(t, b, "2.001:177", "2.001:176"), ErrFormat, 1, 2, 1, 143, "an2k: record 1 (Type-2) field 2.001 at byte 143: LEN 176 does not end at a record separator (FS)"},
		{"LEN long", replace(t, b, "2.001:177", "2.001:178"), ErrFormat, 1, 2, 1, 143, ""},
		{"LEN not a number", replace(t, b, "2.001:177", "2.001:1x7"), ErrFormat, 1, 2, 1, 143, ""},
		{"CNT count", replace(t, b, "1.03:1\x1f2", "1.03:1\x1f3"), ErrCount, 0, 1, 3, 19, "an2k: record 0 (Type-1) field 1.003 at byte 19: CNT says 3 records follow Type-1 and lists 2"},
		{"CNT lists a missing record", b[:314], ErrCount, 2, 9, 0, 314, ""},
		{"bytes after the records", append(bytes.Clone(b), b[137:314]...), ErrCount, -1, 0, 0, 453, "an2k: at byte 453: 177 bytes after the 3 records CNT lists"},
		{"CNT type", replace(t, replace(t, b, "\x1e9\x1f01", "\x1e10\x1f01"), "1.01:137", "1.01:138"), ErrFormat, 2, 10, 0, 315, ""},
		{"no Type-1", b[137:], ErrFormat, 0, 0, 0, 0, ""},
		{"empty", nil, ErrTruncated, 0, 0, 0, 0, ""},
		{"non-numeric tag", replace(t, b, "2.018:", "2.O18:"), ErrFormat, 1, 2, 0, 164, "an2k: record 1 (Type-2) at byte 164: malformed field tag \"2.O18:smith,\""},
		{"FS in a field", replace(t, b, "smith,tom", "smith\x1ctom"), ErrFormat, 1, 2, 18, 175, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.in)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, c.kind) {
				t.Fatalf("%v, want an *Error wrapping %v", err, c.kind)
			}
			if e.Record != c.rec || e.Type != c.typ || e.Field != c.field || e.Offset != c.offset {
				t.Errorf("record %d type %d field %d offset %d, want %d %d %d %d (%v)", e.Record, e.Type, e.Field, e.Offset, c.rec, c.typ, c.field, c.offset, err)
			}
			if c.message != "" && err.Error() != c.message {
				t.Errorf("message %q\nwant    %q", err, c.message)
			}
		})
	}
}

// TestEncodeErrors: values that would not read back the same are refused.
func TestEncodeErrors(t *testing.T) {
	b := small(t)
	for _, c := range []struct {
		name   string
		change func(tr *Transaction)
		kind   error
	}{
		{"GS in a text field", func(tr *Transaction) { tr.Records[1].Set(Field{Num: 18, Value: []byte("a\x1db")}) }, ErrFormat},
		{"FS in a text field", func(tr *Transaction) { tr.Records[1].Set(Field{Num: 18, Value: []byte("a\x1cb")}) }, ErrFormat},
		{"a tag in an image", func(tr *Transaction) { tr.Records[1].Set(Field{Num: 999, Value: []byte("ab\x1d2.005:x")}) }, ErrFormat},
		{"LEN given", func(tr *Transaction) { tr.Records[1].Fields = append(tr.Records[1].Fields, Field{Num: 1}) }, ErrFormat},
		{"no Type-1", func(tr *Transaction) { tr.Records = tr.Records[1:] }, ErrFormat},
		{"Type-4 without size", func(tr *Transaction) { tr.Add(Record{Type: 4, Fields: []Field{{Num: 9, Value: []byte{1}}}}) }, ErrValue},
	} {
		tr, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		c.change(tr)
		_, err = tr.Encode()
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, c.kind) || e.Offset != -1 {
			t.Errorf("%s: %v, want an *Error wrapping %v", c.name, err, c.kind)
		}
	}
	// An image may hold separators that are not followed by a tag.
	tr, _ := Parse(b)
	tr.Records[1].Set(Field{Num: 999, Value: []byte("a\x1d\x1c\x1e\x1d2.x:\x1d")})
	out, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "image with separators", tr, tr2)
	if !strings.Contains(string(out), "2.999:a\x1d\x1c") {
		t.Error("the image is not written raw")
	}
}
