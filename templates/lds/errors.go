package lds

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

// Sentinel errors; every error the parsers return is an *Error wrapping
// one of them, so callers test with errors.Is.
var (
	// ErrTruncated: an element or field runs past the end of its
	// container or of the input.
	ErrTruncated = errors.New("lds: truncated")
	// ErrFormat: a tag, length or value the formats do not allow, a
	// required element missing, counts that disagree with the content, or
	// a wrong MRZ check digit.
	ErrFormat = errors.New("lds: invalid")
	// ErrUnsupported: well-formed but not read here (indefinite lengths,
	// another record version, an enciphered biometric data block, a hash
	// algorithm Go does not have…).
	ErrUnsupported = errors.New("lds: unsupported")
	// ErrImage: an embedded image whose signature is not the one its
	// record declares, or that does not decode.
	ErrImage = errors.New("lds: bad image")
	// ErrHashMismatch: a data group's hash differs from the one in the SOD
	// (CheckHash), or the SOD holds no hash for it.
	ErrHashMismatch = errors.New("lds: hash mismatch")
	// ErrNeedsJPEG2000: the image is JPEG 2000, which this package does not
	// decode (it would need OpenCV); decode Image with a JPEG 2000 decoder
	// (templates/face does).
	ErrNeedsJPEG2000 = errors.New("lds: JPEG 2000 image needs an external decoder")
)

// Error is a parse error: what was being read, at which byte, and why.
//
// Its message reads, for example,
//
//	lds: DG1 at byte 58: tag 5F1F: date of birth check digit: '3', computed 2
type Error struct {
	// Input is what the caller passed: "EF.COM", "DG1", "DG3", "DG4",
	// "DG14", "DG15", "SOD", or "record" for ParseIrisRecord; for
	// CheckHash, the data group ("DG1").
	Input string
	// Offset is the byte offset in the caller's input of the element or
	// field at fault (for a TLV element, of its first tag byte).
	Offset int
	// Tag is the BER-TLV tag at fault in hex ("7F60"), or "" when the
	// error is in a field of a 19794 record or of an image.
	Tag string
	// Field names the field, "document number check digit", "finger 1
	// image"; may be "" when the tag says it all.
	Field string
	// Err is one of the sentinels above.
	Err error
	// Detail says what was found.
	Detail string
}

func (e *Error) Error() string {
	s := "lds: " + e.Input + " at byte " + strconv.Itoa(e.Offset) + ": "
	if e.Tag != "" {
		s += "tag " + e.Tag + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// parser holds the caller's input; every offset it reports is an offset in
// that input.
type parser struct {
	in string // "DG1", "record"…, for error messages
	b  []byte
}

func (p *parser) fail(kind error, off int, tag, field, detail string, args ...any) error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{Input: p.in, Offset: off, Tag: tag, Field: field, Err: kind, Detail: detail}
}

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
		detail += ": the LDS uses definite lengths"
	}
	return p.fail(kind, e.Offset, e.Tag, e.Field, "%s", detail)
}

func (p *parser) next(off, end int, where string) (ber.TLV, error) {
	t, err := ber.Next(p.b, off, end, where)
	if err != nil {
		return t, p.berError(err)
	}
	return t, nil
}

func (p *parser) children(t ber.TLV) ([]ber.TLV, error) {
	kids, err := ber.Children(p.b, t)
	if err != nil {
		return nil, p.berError(err)
	}
	return kids, nil
}

// top reads the data group's element at the start of the input and checks
// its tag; bytes after it (padding) are ignored.
func (p *parser) top(tag uint32, what string) (ber.TLV, error) {
	t, err := p.next(0, len(p.b), "the input")
	if err != nil {
		return t, err
	}
	if t.Tag != tag {
		return t, p.fail(ErrFormat, 0, t.Name(), "", "not %s (tag %s)", what, ber.TagName(tag))
	}
	return t, nil
}

// primitive checks that t is primitive.
func (p *parser) primitive(t ber.TLV, field string) error {
	if t.Constructed {
		return p.fail(ErrFormat, t.Off, t.Name(), field, "constructed where a primitive element is required")
	}
	return nil
}

func tagList(kids []ber.TLV) string {
	if len(kids) == 0 {
		return "nothing"
	}
	s := ""
	for i, k := range kids {
		if i > 0 {
			s += " "
		}
		s += k.Name()
	}
	return s
}

func u16(b []byte, off int) int { return int(b[off])<<8 | int(b[off+1]) }
func u32(b []byte, off int) int {
	return int(b[off])<<24 | int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3])
}
