package facerecord

import (
	"encoding/binary"
	"fmt"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
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

func tagName(tag uint32) string { return ber.TagName(tag) }

func fromBER(t ber.TLV) tlv {
	return tlv{tag: t.Tag, constructed: t.Constructed, off: t.Off, voff: t.VOff, val: t.Val}
}

func (t tlv) ber() ber.TLV {
	return ber.TLV{Tag: t.tag, Constructed: t.constructed, Off: t.off, VOff: t.voff, Val: t.val}
}

// berError turns the shared reader's error into an *Error.
func (p *parser) berError(e *ber.Error) error {
	kind := ErrFormat
	switch e.Kind {
	case ber.Truncated:
		kind = ErrTruncated
	case ber.Unsupported:
		kind = ErrUnsupported
	}
	detail := e.Detail
	if e.Indefinite {
		detail += ": DG2 and 39794-5 use definite lengths"
	}
	return p.fail(kind, e.Offset, e.Tag, e.Field, "%s", detail)
}

// next reads the element at off, which must lie inside [off, end);
// where names the container for errors ("the input", "tag 7F61").
func (p *parser) next(off, end int, where string) (tlv, error) {
	t, err := ber.Next(p.b, off, end, where)
	if err != nil {
		return fromBER(t), p.berError(err)
	}
	return fromBER(t), nil
}

// children reads the elements of a constructed element's value.
func (p *parser) children(t tlv) ([]tlv, error) {
	kids, err := ber.Children(p.b, t.ber())
	if err != nil {
		return nil, p.berError(err)
	}
	out := make([]tlv, len(kids))
	for i, k := range kids {
		out[i] = fromBER(k)
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
