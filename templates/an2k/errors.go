package an2k

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors; every error Parse returns is an *Error wrapping one of
// them, so callers test with errors.Is.
var (
	// ErrTruncated: a record or field runs past the end of the input.
	ErrTruncated = errors.New("an2k: truncated")
	// ErrFormat: bytes the traditional encoding does not allow: a
	// malformed tag, a LEN that disagrees with the separators, a record of
	// another type than CNT announces, a value that cannot be written.
	ErrFormat = errors.New("an2k: invalid")
	// ErrCount: CNT (1.003) disagrees with the records in the file.
	ErrCount = errors.New("an2k: record count mismatch")
	// ErrValue: a field missing, too long or not a number where a
	// domain profile, an image or a builder needs one.
	ErrValue = errors.New("an2k: bad field value")
	// ErrUnsupported: well-formed but not handled here (an image
	// compression without a pure-Go decoder, a record with no image).
	ErrUnsupported = errors.New("an2k: unsupported")
	// ErrNeedsJPEG2000: the image is JPEG 2000, which this package does not
	// decode (it would need OpenCV); decode Image.Data with a JPEG 2000
	// decoder such as templates/face's.
	ErrNeedsJPEG2000 = errors.New("an2k: JPEG 2000 image needs an external decoder")
)

// Error says where in a transaction something is wrong.
//
// Its message reads, for example,
//
//	an2k: record 2 (Type-14) field 14.011 at byte 1234: ...
type Error struct {
	// Offset is the byte offset in the input of the record or field at
	// fault (-1 when the error is not about input bytes, as when encoding).
	Offset int
	// Record is the index of the record in Transaction.Records (Type-1 is
	// record 0), or -1 when the error is about the whole transaction.
	Record int
	// Type is the record's type as far as it is known (0 if not).
	Type int
	// Field is the field number (11 for 14.011), or 0 when the error is
	// about the record rather than one of its fields.
	Field int
	// Err is one of the sentinel errors above.
	Err error
	// Detail says what was found.
	Detail string
}

func (e *Error) Error() string {
	var parts []string
	if e.Record >= 0 {
		r := "record " + strconv.Itoa(e.Record)
		if e.Type > 0 {
			r += " (Type-" + strconv.Itoa(e.Type) + ")"
		}
		parts = append(parts, r)
	}
	if e.Field > 0 {
		parts = append(parts, "field "+strconv.Itoa(e.Type)+"."+pad3(e.Field))
	}
	if e.Offset >= 0 {
		parts = append(parts, "at byte "+strconv.Itoa(e.Offset))
	}
	s := "an2k: " + strings.Join(parts, " ")
	if len(parts) > 0 {
		s += ": "
	}
	return s + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

func pad3(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
