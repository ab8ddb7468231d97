// Package wsq decodes WSQ (Wavelet Scalar Quantization) grey-scale images,
// the FBI format that fingerprint scanners and ANSI/NIST-ITL records carry
// (FBI IAFIS-IC-0110, "WSQ Gray-scale Fingerprint Image Compression
// Specification", version 3).
//
// A WSQ file is a marker stream like JPEG's: SOI, tables (DTT: the wavelet
// filter taps, DQT: the quantiser bins, DHT: Huffman tables, COM: comments),
// SOF (the frame header: size and the shift M and scale R of the pixels), then
// one or more SOB blocks of Huffman-coded quantised wavelet coefficients, and
// EOI. The image is decomposed into 64 subbands by a fixed tree of 2-D wavelet
// splits; the decoder decodes the coefficients of subbands 0–59 (60–63 are
// never sent), dequantises them with the bin widths Q, zero bins Z and bin
// centre C, runs the inverse wavelet transform node by node, and maps each
// value v to the pixel round(v·R + M) clamped to 0–255.
//
// Importing the package registers the format with the standard image
// package, so image.Decode reads WSQ like PNG:
//
//	import _ "github.com/bordermatch/bordermatch/capture/wsq"
package wsq

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"strconv"
	"strings"
)

// MaxPixels bounds width×height of the images Decode accepts (40 MP, the
// same bound as the face pipeline's face.DefaultMaxPixels (templates/face): more than a
// 1000 ppi ten-print slap or a 500 ppi palm). A WSQ header can claim up to
// 65535×65535 pixels (4.3 GP); the bound is checked from the frame header.
//
// Decoding needs about 9 bytes per pixel, but Decode allocates them only
// after the entropy-coded data has been decoded (into a compact form that
// grows with the data, not the header) and found to hold exactly the
// coefficients the frame needs: a header the data cannot fill fails having
// allocated in proportion to the file. The data can still legitimately
// describe a large blank image in a few kilobytes (a run of 65535 zero
// coefficients costs 3 bytes), so callers with a tighter budget check the
// size from DecodeConfig first.
const MaxPixels = 40_000_000

// ErrTooLarge is wrapped by the error Decode returns for an image over
// MaxPixels.
var ErrTooLarge = errors.New("wsq: image too large")

// FormatError reports a malformed or inconsistent WSQ stream: which marker
// segment or field, what is wrong, and the byte offset in the input where it
// was found.
type FormatError struct {
	Where  string // the marker segment and field, e.g. "DHT table 2" or "SOF width"
	Msg    string // what is wrong, e.g. "truncated"
	Offset int64  // byte offset in the input
	Err    error  // an underlying error (io.ErrUnexpectedEOF for truncation), or nil
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("wsq: %s: %s at offset %d", e.Where, e.Msg, e.Offset)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Info is what a WSQ file says about itself beside the pixels.
type Info struct {
	// PPI is the scan resolution in pixels per inch from the NISTCOM comment
	// ("PPI 500"), or 0 when the file does not state a positive value (no
	// NISTCOM comment, no PPI field, or NBIS's "PPI -1" for unknown). WSQ has
	// no other place for the resolution: callers fall back to 500 ppi, the
	// resolution WSQ was made for, or to what the enclosing record says.
	PPI int
	// Comments holds the text of every COM segment, in file order.
	Comments []string
	// Encoder and Software are the SOF encoder algorithm number and software
	// implementation number (both 0 in the test files, which NBIS-style
	// encoders wrote).
	Encoder, Software int
	// Black and White are the SOF scanner black and white levels (informative).
	Black, White int
}

func init() {
	image.RegisterFormat("wsq", "\xff\xa0", decodeImage, DecodeConfig)
}

// decodeImage is Decode for image.Decode: no typed nil in the interface.
func decodeImage(r io.Reader) (image.Image, error) {
	img, err := Decode(r)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Decode reads a WSQ image. The result is an 8-bit grey image with
// Stride == width. Errors are *FormatError for malformed input (with the
// segment, field and offset) and wrap ErrTooLarge for images over MaxPixels.
func Decode(r io.Reader) (*image.Gray, error) {
	img, _, err := DecodeWithInfo(r)
	return img, err
}

// DecodeWithInfo is Decode that also returns the file's resolution and
// comments (on error, what was read before it).
func DecodeWithInfo(r io.Reader) (*image.Gray, Info, error) {
	d := newDecoder(r)
	if err := d.decode(); err != nil {
		return nil, d.info, err
	}
	return d.img, d.info, nil
}

// DecodeConfig reads the header of a WSQ image up to the frame header (SOF)
// and returns its size; it does not apply MaxPixels.
func DecodeConfig(r io.Reader) (image.Config, error) {
	d := newDecoder(r)
	if err := d.readHeader(); err != nil {
		return image.Config{}, err
	}
	return image.Config{ColorModel: color.GrayModel, Width: d.frame.width, Height: d.frame.height}, nil
}

func newDecoder(r io.Reader) *decoder {
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &decoder{in: input{r: br}}
}

// parseNISTCOM returns the PPI of a NISTCOM comment ("NIST_COM n" then one
// "KEY value" per line), or 0 when c is not one or has no positive PPI.
func parseNISTCOM(c string) int {
	if !strings.HasPrefix(c, "NIST_COM") {
		return 0
	}
	for _, line := range strings.Split(c, "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || key != "PPI" {
			continue
		}
		ppi, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || ppi <= 0 {
			return 0
		}
		return ppi
	}
	return 0
}
