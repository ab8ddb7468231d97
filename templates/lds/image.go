package lds

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"github.com/bordermatch/bordermatch/capture/wsq"
	"github.com/bordermatch/bordermatch/templates/facerecord"
)

// MaxPixels is the largest image Decode decodes; larger ones are refused
// from their headers before any pixel is allocated.
const MaxPixels = 40_000_000

// Compression is the encoding of a finger or iris image.
type Compression uint8

const (
	CompressionUnknown Compression = iota
	// CompressionRaw is uncompressed pixels, a byte (or three) each.
	CompressionRaw
	// CompressionRawPacked is uncompressed, bit-packed pixels (19794-4).
	CompressionRawPacked
	CompressionWSQ
	CompressionJPEG
	CompressionJPEGLS
	CompressionJPEG2000
	CompressionPNG
)

func (c Compression) String() string {
	return name(c, "unknown", "raw", "raw bit-packed", "WSQ", "JPEG", "JPEG-LS", "JPEG 2000", "PNG")
}

func name[T ~uint8](v T, names ...string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%d", v)
}

var (
	sigWSQ  = []byte{0xFF, 0xA0}
	sigJPEG = []byte{0xFF, 0xD8, 0xFF}
	sigJP2  = []byte{0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' '}
	sigJ2K  = []byte{0xFF, 0x4F, 0xFF, 0x51}
	sigPNG  = []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A}
)

// imageSize checks that img starts as c says and reads its size from its
// own headers (WSQ frame header, JPEG SOF, JP2 ihdr, PNG IHDR); raw and
// JPEG-LS images have none and give 0×0. detail is "" when all is well.
func imageSize(c Compression, img []byte) (w, h int, detail string) {
	if len(img) == 0 {
		return 0, 0, "empty image"
	}
	var cfg image.Config
	var err error
	switch c {
	case CompressionWSQ:
		if !bytes.HasPrefix(img, sigWSQ) {
			return 0, 0, fmt.Sprintf("declared WSQ, starts % X (not FF A0)", img[:min(len(img), 4)])
		}
		cfg, err = wsq.DecodeConfig(bytes.NewReader(img))
	case CompressionJPEG, CompressionJPEG2000:
		if c == CompressionJPEG && !bytes.HasPrefix(img, sigJPEG) ||
			c == CompressionJPEG2000 && !bytes.HasPrefix(img, sigJP2) && !bytes.HasPrefix(img, sigJ2K) {
			return 0, 0, fmt.Sprintf("declared %v, starts % X", c, img[:min(len(img), 8)])
		}
		_, w, h, err := facerecord.ImageInfo(img)
		if err != nil {
			return 0, 0, err.Error()
		}
		return w, h, ""
	case CompressionPNG:
		if !bytes.HasPrefix(img, sigPNG) {
			return 0, 0, fmt.Sprintf("declared PNG, starts % X", img[:min(len(img), 8)])
		}
		cfg, err = png.DecodeConfig(bytes.NewReader(img))
	default:
		return 0, 0, ""
	}
	if err != nil {
		return 0, 0, err.Error()
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, fmt.Sprintf("%v header declares %d×%d", c, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, ""
}

// decode decodes img of compression c; w, h and depth (bits per pixel)
// are the record's, used for raw pixels. Errors are *Error with Input
// "image" wrapping ErrImage, ErrUnsupported or ErrNeedsJPEG2000.
func decode(c Compression, img []byte, w, h, depth int) (image.Image, error) {
	fail := func(kind error, detail string, args ...any) error {
		return &Error{Input: "image", Err: kind, Detail: fmt.Sprintf(detail, args...)}
	}
	switch c {
	case CompressionWSQ:
		return checked(img, wsq.DecodeConfig, func(r io.Reader) (image.Image, error) { return wsq.Decode(r) })
	case CompressionJPEG:
		return checked(img, jpeg.DecodeConfig, jpeg.Decode)
	case CompressionPNG:
		return checked(img, png.DecodeConfig, png.Decode)
	case CompressionJPEG2000:
		return nil, ErrNeedsJPEG2000
	case CompressionRaw:
		if w <= 0 || h <= 0 || w > MaxPixels/h {
			return nil, fail(ErrImage, "raw image of %d×%d", w, h)
		}
		n := w * h
		switch {
		case depth == 8 && len(img) == n:
			return &image.Gray{Pix: bytes.Clone(img), Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
		case depth == 24 && len(img) == 3*n:
			rgba := image.NewRGBA(image.Rect(0, 0, w, h))
			for i := range n {
				copy(rgba.Pix[4*i:], img[3*i:3*i+3])
				rgba.Pix[4*i+3] = 255
			}
			return rgba, nil
		}
		return nil, fail(ErrImage, "%d bytes of raw %d-bit %d×%d pixels", len(img), depth, w, h)
	}
	return nil, fail(ErrUnsupported, "%v images are not decoded here", c)
}

// checked reads the image's header first so a size over MaxPixels is
// refused before the decoder allocates for it.
func checked(data []byte, config func(io.Reader) (image.Config, error), dec func(io.Reader) (image.Image, error)) (image.Image, error) {
	c, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Input: "image", Err: ErrImage, Detail: "header: " + err.Error()}
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > MaxPixels/c.Height {
		return nil, &Error{Input: "image", Err: ErrImage, Detail: fmt.Sprintf("header says %d×%d (at most %d pixels are decoded)", c.Width, c.Height, MaxPixels)}
	}
	img, err := dec(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Input: "image", Err: ErrImage, Detail: err.Error()}
	}
	return img, nil
}
