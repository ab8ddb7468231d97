package facerecord

import (
	"errors"
	"strconv"
)

// Sentinel errors; every error ParseDG2 and ParseRecord return is an
// *Error wrapping one of them, so callers test with errors.Is.
var (
	// ErrTruncated: an element or field runs past the end of its
	// container or of the input.
	ErrTruncated = errors.New("facerecord: truncated")
	// ErrFormat: a tag, length or value the formats do not allow, a
	// required element missing, or counts that disagree with the content.
	ErrFormat = errors.New("facerecord: invalid")
	// ErrUnsupported: well-formed but not read here (indefinite lengths,
	// another record version, an enciphered biometric data block…).
	ErrUnsupported = errors.New("facerecord: unsupported")
	// ErrImage: the embedded image is not a JPEG or JPEG 2000 image this
	// package recognises, or its size cannot be read from it.
	ErrImage = errors.New("facerecord: bad image")
)

// Error is a parse error: what was being read, at which byte, and why.
//
// Its message reads, for example,
//
//	facerecord: DG2 at byte 14: tag 7F60: length 15065 runs past the end (15083 bytes)
type Error struct {
	// Input is what the caller passed: "DG2", or "record" for ParseRecord.
	Input string
	// Offset is the byte offset in the caller's input of the element or
	// field at fault (for a TLV element, of its first tag byte).
	Offset int
	// Tag is the BER-TLV tag at fault in hex ("7F60"), or "" when the
	// error is in a field of a 19794-5 record or of an image.
	Tag string
	// Field names the field, "face 1 image", "number of instances"; may
	// be "" when the tag says it all.
	Field string
	// Err is ErrTruncated, ErrFormat, ErrUnsupported or ErrImage.
	Err error
	// Detail says what was found.
	Detail string
}

func (e *Error) Error() string {
	s := "facerecord: " + e.Input + " at byte " + strconv.Itoa(e.Offset) + ": "
	if e.Tag != "" {
		s += "tag " + e.Tag + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }
