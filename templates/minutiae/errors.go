package minutiae

import (
	"errors"
	"strconv"
)

// Sentinel errors of the record codecs; every error Parse and Marshal
// return wraps one of them, so callers test with errors.Is.
var (
	// ErrTruncated: a field lies (partly) past the record's declared
	// length or past the end of the input.
	ErrTruncated = errors.New("minutiae: truncated record")
	// ErrFormat: a field holds a value the standard does not allow, or the
	// declared lengths disagree with the content.
	ErrFormat = errors.New("minutiae: invalid record")
	// ErrUnsupportedVersion: a finger minutiae record of a version or
	// standard these codecs do not read.
	ErrUnsupportedVersion = errors.New("minutiae: unsupported record version")
	// ErrUnrepresentable: Marshal was given a value the target format
	// cannot hold (a 15-bit coordinate, 256 minutiae, views of different
	// image sizes in a format with one header geometry…).
	ErrUnrepresentable = errors.New("minutiae: value not representable in the record format")
)

// Error is a record codec error: which field, where, and why.
type Error struct {
	// Format is the record format being read or written (FormatUnknown
	// before the version is known).
	Format Format
	// Field names the field: "record length", "view 2 minutia 14 angle".
	Field string
	// Offset is the field's byte offset in the record, or -1 when
	// marshalling.
	Offset int
	// Err is one of the sentinels ErrTruncated, ErrFormat,
	// ErrUnsupportedVersion, ErrUnrepresentable.
	Err error
	// Detail says what was found, e.g. "needs 6 bytes, 3 remain".
	Detail string
}

func (e *Error) Error() string {
	s := "minutiae: "
	if e.Format != FormatUnknown {
		s += e.Format.String() + " record: "
	} else {
		s += "record: "
	}
	s += e.Field
	switch e.Err {
	case ErrTruncated:
		s += ": truncated"
	case ErrFormat:
		s += ": invalid"
	case ErrUnsupportedVersion:
		s += ": unsupported version"
	case ErrUnrepresentable:
		s += ": not representable"
	default:
		if e.Err != nil {
			s += ": " + e.Err.Error()
		}
	}
	if e.Offset >= 0 {
		s += " at offset " + strconv.Itoa(e.Offset)
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
