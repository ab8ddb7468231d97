package ber

import (
	"bytes"
	"testing"
)

func TestNext(t *testing.T) {
	for _, c := range []struct {
		name       string
		in         []byte
		tag        uint32
		voff, vlen int
		kind       Kind
	}{
		{"short", []byte{0x61, 0x02, 0xAA, 0xBB}, 0x61, 2, 2, 0},
		{"two-byte tag, one-byte long length", []byte{0x5F, 0x1F, 0x81, 0x01, 0xAA}, 0x5F1F, 4, 1, 0},
		{"three-byte tag", []byte{0x7F, 0x81, 0x01, 0x00}, 0x7F8101, 4, 0, 0},
		{"four-byte tag", []byte{0x7F, 0x81, 0x81, 0x01, 0x00}, 0, 0, 0, Unsupported},
		{"indefinite", []byte{0x30, 0x80, 0, 0}, 0, 0, 0, Unsupported},
		{"five length bytes", []byte{0x30, 0x85, 0, 0, 0, 0, 1}, 0, 0, 0, Format},
		{"length past the end", []byte{0x30, 0x03, 0, 0}, 0, 0, 0, Truncated},
		{"huge length", []byte{0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF}, 0, 0, 0, Truncated},
		{"no length", []byte{0x5F, 0x1F}, 0, 0, 0, Truncated},
		{"empty", nil, 0, 0, 0, Truncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Next(c.in, 0, len(c.in), "the input")
			if c.kind != 0 {
				if err == nil || err.Kind != c.kind || err.Offset != 0 {
					t.Fatalf("got %+v, want kind %d", err, c.kind)
				}
				return
			}
			if err != nil || e.Tag != c.tag || e.VOff != c.voff || len(e.Val) != c.vlen || e.End() != c.voff+c.vlen {
				t.Fatalf("got %+v, %v", e, err)
			}
		})
	}
}

func TestChildren(t *testing.T) {
	in := []byte{0x7F, 0x61, 0x08, 0x02, 0x01, 0x01, 0xA1, 0x03, 0x81, 0x01, 0x02, 0xFF}
	top, err := Next(in, 0, len(in), "the input")
	if err != nil || !top.Constructed {
		t.Fatal(err)
	}
	kids, err := Children(in, top)
	if err != nil || len(kids) != 2 || kids[1].Tag != 0xA1 || !bytes.Equal(kids[1].Val, []byte{0x81, 0x01, 0x02}) {
		t.Fatalf("%+v %v", kids, err)
	}
	if k, ok := Find(kids, 0x02); !ok || k.Off != 3 {
		t.Fatalf("Find: %+v", k)
	}
	if _, err := Children(in, kids[0]); err == nil || err.Kind != Format {
		t.Fatalf("children of a primitive: %v", err)
	}
	// A child running past its parent, though not past the input.
	in[2] = 0x07
	top, _ = Next(in, 0, len(in), "the input")
	if _, err := Children(in, top); err == nil || err.Kind != Truncated || err.Offset != 6 {
		t.Fatalf("%+v", err)
	}
}
