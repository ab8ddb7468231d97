package wsq

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// Markers (spec Table 1). RSTm carry a restart count m = 0…7.
const (
	markerSOI  = 0xffa0 // start of image
	markerEOI  = 0xffa1 // end of image
	markerSOF  = 0xffa2 // start of frame
	markerSOB  = 0xffa3 // start of block
	markerDTT  = 0xffa4 // define transform table
	markerDQT  = 0xffa5 // define quantisation table
	markerDHT  = 0xffa6 // define Huffman table(s)
	markerDRT  = 0xffa7 // define restart interval
	markerCOM  = 0xffa8 // comment
	markerRST0 = 0xffb0 // restart, m = 0
	markerRST7 = 0xffb7 // restart, m = 7
)

func markerName(m int) string {
	switch m {
	case markerSOI:
		return "SOI"
	case markerEOI:
		return "EOI"
	case markerSOF:
		return "SOF"
	case markerSOB:
		return "SOB"
	case markerDTT:
		return "DTT"
	case markerDQT:
		return "DQT"
	case markerDHT:
		return "DHT"
	case markerDRT:
		return "DRT"
	case markerCOM:
		return "COM"
	}
	if m >= markerRST0 && m <= markerRST7 {
		return fmt.Sprintf("RST%d", m-markerRST0)
	}
	return fmt.Sprintf("marker %04X", m)
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

// input reads the stream and keeps the offset for error messages.
type input struct {
	r   byteReader
	off int64
}

func (in *input) errAt(where string, off int64, format string, args ...any) error {
	return &FormatError{Where: where, Msg: fmt.Sprintf(format, args...), Offset: off}
}

func (in *input) readErr(where string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Where: where, Msg: "truncated", Offset: in.off, Err: io.ErrUnexpectedEOF}
	}
	return &FormatError{Where: where, Msg: "read error: " + err.Error(), Offset: in.off, Err: err}
}

func (in *input) readByte(where string) (byte, error) {
	b, err := in.r.ReadByte()
	if err != nil {
		return 0, in.readErr(where, err)
	}
	in.off++
	return b, nil
}

// readMarker reads a two-byte marker; where names what the decoder expects.
func (in *input) readMarker(where string) (int, error) {
	start := in.off
	hi, err := in.readByte(where)
	if err != nil {
		return 0, err
	}
	lo, err := in.readByte(where)
	if err != nil {
		return 0, err
	}
	if hi != 0xff {
		return 0, in.errAt(where, start, "found bytes %02X%02X, not a marker", hi, lo)
	}
	return int(hi)<<8 | int(lo), nil
}

// segment is the payload of a marker segment, read whole (its length field
// says how long it is), with the offsets to name in errors.
type segment struct {
	name      string
	b         []byte
	pos       int
	start     int64 // input offset of b[0]
	truncated bool  // the input ended before the declared length
}

// readSegment reads the length field L (which counts itself) and the rest of
// the segment. A short input is not an error yet: the parser reports
// truncation at the field that is missing.
func (in *input) readSegment(name string, buf []byte) (segment, error) {
	hi, err := in.readByte(name + " length")
	if err != nil {
		return segment{}, err
	}
	lo, err := in.readByte(name + " length")
	if err != nil {
		return segment{}, err
	}
	n := int(hi)<<8 | int(lo)
	if n < 2 {
		return segment{}, in.errAt(name+" length", in.off-2, "length %d is less than 2", n)
	}
	n -= 2
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	s := segment{name: name, start: in.off}
	got, err := io.ReadFull(in.r, buf)
	in.off += int64(got)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return segment{}, in.readErr(name, err)
	}
	s.b = buf[:got]
	s.truncated = got < n
	return s, nil
}

func (s *segment) need(field string, n int) error {
	if s.pos+n <= len(s.b) {
		return nil
	}
	where := s.name
	if field != "" {
		where += " " + field
	}
	if s.truncated {
		return &FormatError{Where: where, Msg: "truncated", Offset: s.start + int64(len(s.b)), Err: io.ErrUnexpectedEOF}
	}
	return &FormatError{Where: where, Msg: fmt.Sprintf("runs past the end of the segment (%d bytes)", len(s.b)+2), Offset: s.start + int64(s.pos)}
}

func (s *segment) u8(field string) (int, error) {
	if err := s.need(field, 1); err != nil {
		return 0, err
	}
	v := s.b[s.pos]
	s.pos++
	return int(v), nil
}

func (s *segment) u16(field string) (int, error) {
	if err := s.need(field, 2); err != nil {
		return 0, err
	}
	v := int(s.b[s.pos])<<8 | int(s.b[s.pos+1])
	s.pos += 2
	return v, nil
}

func (s *segment) u32(field string) (uint32, error) {
	if err := s.need(field, 4); err != nil {
		return 0, err
	}
	b := s.b[s.pos:]
	s.pos += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

func (s *segment) bytes(field string, n int) ([]byte, error) {
	if err := s.need(field, n); err != nil {
		return nil, err
	}
	v := s.b[s.pos : s.pos+n]
	s.pos += n
	return v, nil
}

// scaled reads the spec's (exponent, value) pairs: an 8-bit decimal exponent
// E then a 16-bit value V, meaning V / 10^E.
func (s *segment) scaled(field string) (float64, error) {
	e, err := s.u8(field)
	if err != nil {
		return 0, err
	}
	v, err := s.u16(field)
	if err != nil {
		return 0, err
	}
	return float64(v) / math.Pow10(e), nil
}

// end checks that the segment's contents used exactly its declared length.
func (s *segment) end() error {
	if s.truncated {
		return &FormatError{Where: s.name, Msg: "truncated", Offset: s.start + int64(len(s.b)), Err: io.ErrUnexpectedEOF}
	}
	if s.pos != len(s.b) {
		return &FormatError{Where: s.name, Msg: fmt.Sprintf("%d bytes left over after the contents (length field %d)", len(s.b)-s.pos, len(s.b)+2), Offset: s.start + int64(s.pos)}
	}
	return nil
}

// errAt reports a bad field that starts at s.b[pos].
func (s *segment) errAt(field string, pos int, format string, args ...any) error {
	where := s.name
	if field != "" {
		where += " " + field
	}
	return &FormatError{Where: where, Msg: fmt.Sprintf(format, args...), Offset: s.start + int64(pos)}
}
