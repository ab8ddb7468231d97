// Package ber is the BER-TLV element reader shared by the chip-data
// parsers (templates/facerecord, templates/lds): definite lengths only,
// tags of up to 3 bytes, every length checked against its container
// before it is used, so a length never makes the reader allocate or read
// past the input.
//
// It reports problems as *Error, a kind and a description; each caller
// turns them into its own error type.
package ber

import "fmt"

// Kind classifies an Error.
type Kind uint8

const (
	// Truncated: the element runs past the end of its container.
	Truncated Kind = iota + 1
	// Format: a length encoding BER does not allow, or an element of the
	// wrong form.
	Format
	// Unsupported: an indefinite length, or a tag longer than 3 bytes.
	Unsupported
)

// Error is a problem at an element: Offset is the element's first tag
// byte, Tag its tag as far as it was read ("" before the first byte),
// Field "tag", "length" or "".
type Error struct {
	Kind   Kind
	Offset int
	Tag    string
	Field  string
	Detail string
	// Indefinite is set for an indefinite length (BER 0x80); callers may
	// say why their format forbids it.
	Indefinite bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("byte %d: tag %s: %s: %s", e.Offset, e.Tag, e.Field, e.Detail)
}

func fail(k Kind, off int, tag, field, detail string, args ...any) *Error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{Kind: k, Offset: off, Tag: tag, Field: field, Detail: detail}
}

// TLV is one element of the input.
type TLV struct {
	Tag         uint32 // the tag's bytes, big-endian: 0x75, 0x7F60, 0x5F2E
	Constructed bool
	Off         int // offset of the first tag byte
	VOff        int // offset of the value
	Val         []byte
}

// End is the offset just after the element.
func (t TLV) End() int { return t.VOff + len(t.Val) }

// Name is the tag in hex, "7F61".
func (t TLV) Name() string { return TagName(t.Tag) }

// TagName writes a tag in hex.
func TagName(tag uint32) string { return fmt.Sprintf("%02X", tag) }

// Next reads the element at off, which must lie inside b[off:end]; where
// names the container for errors ("the input", "tag 7F61").
func Next(b []byte, off, end int, where string) (TLV, *Error) {
	b = b[:end]
	t := TLV{Off: off}
	if off >= end {
		return t, fail(Truncated, off, "", "tag", "no bytes left in %s", where)
	}
	first := b[off]
	t.Constructed = first&0x20 != 0
	t.Tag = uint32(first)
	i := off + 1
	if first&0x1F == 0x1F { // multi-byte tag: 7-bit groups, high bit = more follow
		for {
			if i >= end {
				return t, fail(Truncated, off, TagName(t.Tag), "tag", "runs past the end of %s", where)
			}
			if i-off >= 3 {
				return t, fail(Unsupported, off, TagName(t.Tag), "tag", "longer than 3 bytes")
			}
			c := b[i]
			t.Tag = t.Tag<<8 | uint32(c)
			i++
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= end {
		return t, fail(Truncated, off, t.Name(), "length", "missing: the tag ends %s", where)
	}
	l := int(b[i])
	i++
	switch {
	case l == 0x80:
		e := fail(Unsupported, off, t.Name(), "", "indefinite length (BER 0x80) is not allowed here")
		e.Indefinite = true
		return t, e
	case l > 0x84:
		return t, fail(Format, off, t.Name(), "", "length field %#02x: more than 4 length bytes", l)
	case l > 0x80:
		n := l - 0x80
		if end-i < n {
			return t, fail(Truncated, off, t.Name(), "", "%d-byte length runs past the end of %s", n, where)
		}
		v := uint64(0)
		for _, c := range b[i : i+n] {
			v = v<<8 | uint64(c)
		}
		i += n
		if v > uint64(end-i) {
			return t, fail(Truncated, off, t.Name(), "", "length %d runs past the end (%d bytes left in %s)", v, end-i, where)
		}
		l = int(v)
	default:
		if l > end-i {
			return t, fail(Truncated, off, t.Name(), "", "length %d runs past the end (%d bytes left in %s)", l, end-i, where)
		}
	}
	t.VOff = i
	t.Val = b[i : i+l]
	return t, nil
}

// Children reads the elements of a constructed element's value, which
// must lie in b.
func Children(b []byte, t TLV) ([]TLV, *Error) {
	if !t.Constructed {
		return nil, fail(Format, t.Off, t.Name(), "", "primitive where a constructed element is required")
	}
	var out []TLV
	end := t.End()
	where := "tag " + t.Name()
	for off := t.VOff; off < end; {
		c, err := Next(b, off, end, where)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		off = c.End()
	}
	return out, nil
}

// Find returns the first element with the tag.
func Find(kids []TLV, tag uint32) (TLV, bool) {
	for _, k := range kids {
		if k.Tag == tag {
			return k, true
		}
	}
	return TLV{}, false
}
