package facerecord

import (
	"encoding/binary"
	"fmt"
)

// parser holds the caller's input; every offset it reports is an offset in
// that input.
type parser struct {
	in string // "DG2" or "record", for error messages
	b  []byte
}

func (p *parser) fail(kind error, off int, tag, field, detail string, args ...any) error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{Input: p.in, Offset: off, Tag: tag, Field: field, Err: kind, Detail: detail}
}

// tlv is one BER-TLV element of the input.
type tlv struct {
	tag         uint32 // the tag's bytes, big-endian: 0x75, 0x7F60, 0x5F2E
	constructed bool
	off         int // offset of the first tag byte
	voff        int // offset of the value
	val         []byte
}

func (t tlv) name() string { return tagName(t.tag) }

func tagName(tag uint32) string { return fmt.Sprintf("%02X", tag) }

// next reads the element at off, which must lie inside [off, end);
// where names the container for errors ("the input", "tag 7F61").
func (p *parser) next(off, end int, where string) (tlv, error) {
	b := p.b[:end]
	t := tlv{off: off}
	if off >= end {
		return t, p.fail(ErrTruncated, off, "", "tag", "no bytes left in %s", where)
	}
	first := b[off]
	t.constructed = first&0x20 != 0
	t.tag = uint32(first)
	i := off + 1
	if first&0x1F == 0x1F { // multi-byte tag: 7-bit groups, high bit = more follow
		for {
			if i >= end {
				return t, p.fail(ErrTruncated, off, tagName(t.tag), "tag", "runs past the end of %s", where)
			}
			if i-off >= 3 {
				return t, p.fail(ErrUnsupported, off, tagName(t.tag), "tag", "longer than 3 bytes")
			}
			c := b[i]
			t.tag = t.tag<<8 | uint32(c)
			i++
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= end {
		return t, p.fail(ErrTruncated, off, t.name(), "length", "missing: the tag ends %s", where)
	}
	l := int(b[i])
	i++
	switch {
	case l == 0x80:
		return t, p.fail(ErrUnsupported, off, t.name(), "", "indefinite length (BER 0x80) is not allowed here: DG2 and 39794-5 use definite lengths")
	case l > 0x84:
		return t, p.fail(ErrFormat, off, t.name(), "", "length field %#02x: more than 4 length bytes", l)
	case l > 0x80:
		n := l - 0x80
		if end-i < n {
			return t, p.fail(ErrTruncated, off, t.name(), "", "%d-byte length runs past the end of %s", n, where)
		}
		v := uint64(0)
		for _, c := range b[i : i+n] {
			v = v<<8 | uint64(c)
		}
		i += n
		if v > uint64(end-i) {
			return t, p.fail(ErrTruncated, off, t.name(), "", "length %d runs past the end (%d bytes left in %s)", v, end-i, where)
		}
		l = int(v)
	default:
		if l > end-i {
			return t, p.fail(ErrTruncated, off, t.name(), "", "length %d runs past the end (%d bytes left in %s)", l, end-i, where)
		}
	}
	t.voff = i
	t.val = b[i : i+l]
	return t, nil
}

// children reads the elements of a constructed element's value.
func (p *parser) children(t tlv) ([]tlv, error) {
	if !t.constructed {
		return nil, p.fail(ErrFormat, t.off, t.name(), "", "primitive where a constructed element is required")
	}
	var out []tlv
	end := t.voff + len(t.val)
	where := "tag " + t.name()
	for off := t.voff; off < end; {
		c, err := p.next(off, end, where)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		off = c.voff + len(c.val)
	}
	return out, nil
}

// find returns the first child with the tag.
func find(kids []tlv, tag uint32) (tlv, bool) {
	for _, k := range kids {
		if k.tag == tag {
			return k, true
		}
	}
	return tlv{}, false
}

// need is find for a required child of parent.
func (p *parser) need(parent tlv, kids []tlv, tag uint32, what string) (tlv, error) {
	if k, ok := find(kids, tag); ok {
		return k, nil
	}
	return tlv{}, p.fail(ErrFormat, parent.off, parent.name(), "", "no %s (tag %s)", what, tagName(tag))
}

// integer reads a primitive DER INTEGER (two's complement, 1–8 bytes) in
// [lo, hi].
func (p *parser) integer(t tlv, lo, hi int64, what string) (int64, error) {
	if t.constructed || len(t.val) == 0 || len(t.val) > 8 {
		return 0, p.fail(ErrFormat, t.off, t.name(), what, "not an integer of 1 to 8 bytes (%d bytes)", len(t.val))
	}
	v := int64(int8(t.val[0]))
	for _, c := range t.val[1:] {
		v = v<<8 | int64(c)
	}
	if v < lo || v > hi {
		return 0, p.fail(ErrFormat, t.off, t.name(), what, "%d is outside %d–%d", v, lo, hi)
	}
	return v, nil
}

// boolean reads a primitive BOOLEAN.
func (p *parser) boolean(t tlv, what string) (bool, error) {
	if t.constructed || len(t.val) != 1 {
		return false, p.fail(ErrFormat, t.off, t.name(), what, "not a 1-byte boolean (%d bytes)", len(t.val))
	}
	return t.val[0] != 0, nil
}

// path descends from t through constructed children with the given tags;
// ok is false when one is absent.
func (p *parser) path(t tlv, tags ...uint32) (tlv, bool, error) {
	for _, tag := range tags {
		kids, err := p.children(t)
		if err != nil {
			return tlv{}, false, err
		}
		var ok bool
		if t, ok = find(kids, tag); !ok {
			return tlv{}, false, nil
		}
	}
	return t, true, nil
}

// pathInt is path to a primitive INTEGER; ok is false when absent.
func (p *parser) pathInt(t tlv, lo, hi int64, what string, tags ...uint32) (int64, bool, error) {
	e, ok, err := p.path(t, tags...)
	if err != nil || !ok {
		return 0, false, err
	}
	v, err := p.integer(e, lo, hi, what)
	return v, err == nil, err
}

func u16(b []byte, off int) int { return int(binary.BigEndian.Uint16(b[off:])) }
func u32(b []byte, off int) int { return int(binary.BigEndian.Uint32(b[off:])) }
