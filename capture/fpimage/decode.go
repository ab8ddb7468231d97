// Package fpimage reads fingerprint images: PNG, TIFF, BMP, JPEG and WSQ
// into 8-bit grey, with the resolution the file declares when it is a
// plausible scanner's. Scanners (capture/fprint), the extractor
// (templates/finger) and the services share it, and with it one idea of
// which resolutions are plausible (PlausibleDPI).
package fpimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg" // registers JPEG
	_ "image/png"  // registers PNG
	"io"

	_ "golang.org/x/image/bmp"  // registers BMP
	_ "golang.org/x/image/tiff" // registers TIFF

	"github.com/bordermatch/bordermatch/capture/wsq"
)

// The resolutions of fingerprint scanners: outside them a declared value is
// not a scanner's resolution but a placeholder (FVC's TIFFs say 1×1 dpi),
// and a configured or requested one is a mistake.
const (
	MinDPI = 250
	MaxDPI = 2000
	// DefaultDPI is the resolution assumed when neither the file nor the
	// caller gives one: identity-document scanners (and libfprint's
	// drivers) are 500 dpi.
	DefaultDPI = 500
)

// PlausibleDPI reports whether dpi is within MinDPI..MaxDPI.
func PlausibleDPI(dpi int) bool { return dpi >= MinDPI && dpi <= MaxDPI }

// ErrUnsupportedImage: the bytes are not an image in a supported format
// (PNG, TIFF, BMP, JPEG, WSQ).
var ErrUnsupportedImage = errors.New("fpimage: unsupported or unreadable image")

// MaxPixels bounds the images Decode accepts: a 1000 dpi rolled
// print of a whole hand fits; a decompression bomb does not.
const MaxPixels = 16_000_000

// Info describes a decoded image.
type Info struct {
	Format        string // "png", "tiff", "bmp", "jpeg", "wsq"
	Width, Height int
	// DPI is the resolution the file declares, or 0 when it declares none
	// or an implausible one (FVC's TIFFs say 1×1 dpi): outside MinDPI..MaxDPI
	// dpi it is not a fingerprint scan's resolution.
	DPI int
}

// Header is what an image's header declares, read before any pixel is
// decoded: what decoding it will cost is known from it alone.
type Header struct {
	Format        string
	Width, Height int
	// BytesPerPixel is the size of a pixel of the decoded image in Go's
	// representation of the declared colour model (a 16-bit RGBA PNG is 8).
	BytesPerPixel int
}

// Pixels is Width × Height.
func (h Header) Pixels() int64 { return int64(h.Width) * int64(h.Height) }

// DecodeHeader reads an image's header (any format registered with package
// image: PNG, TIFF, BMP, JPEG, WSQ here) without decoding its pixels.
func DecodeHeader(b []byte) (Header, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrUnsupportedImage, err)
	}
	return Header{Format: format, Width: cfg.Width, Height: cfg.Height, BytesPerPixel: bytesPerPixel(cfg.ColorModel)}, nil
}

// bytesPerPixel is what a decoder allocates per pixel for a colour model;
// an unknown one is taken at the largest, 16-bit RGBA.
func bytesPerPixel(m color.Model) int {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3 // 4:4:4 at worst
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel, color.NYCbCrAModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

// Decode decodes a fingerprint image to 8-bit grey.
func Decode(b []byte) (*image.Gray, Info, error) {
	return DecodeContext(context.Background(), b)
}

// DecodeContext is Decode that gives up, with ctx's error, as soon as ctx
// is done: the decoders read through a reader that checks it, so an
// abandoned call stops decoding a large image at its next read.
func DecodeContext(ctx context.Context, b []byte) (*image.Gray, Info, error) {
	hdr, err := DecodeHeader(b)
	if err != nil {
		return nil, Info{}, err
	}
	if hdr.Width <= 0 || hdr.Height <= 0 || hdr.Pixels() > MaxPixels {
		return nil, Info{}, fmt.Errorf("%w: %d×%d pixels (limit %d)", ErrUnsupportedImage, hdr.Width, hdr.Height, MaxPixels)
	}
	format := hdr.Format
	info := Info{Format: format, Width: hdr.Width, Height: hdr.Height}
	r := &ctxReader{ctx: ctx, r: bytes.NewReader(b)}
	var img image.Image
	if format == "wsq" {
		// WSQ carries its resolution in a comment only its decoder reads.
		var wi wsq.Info
		img, wi, err = wsq.DecodeWithInfo(r)
		info.DPI = wi.PPI
	} else {
		img, _, err = image.Decode(r)
		info.DPI = declaredDPI(format, b)
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, Info{}, cerr
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("%w: %s: %v", ErrUnsupportedImage, format, err)
	}
	if !PlausibleDPI(info.DPI) {
		info.DPI = 0
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Rect.Min != (image.Point{}) {
		g = image.NewGray(image.Rect(0, 0, hdr.Width, hdr.Height))
		draw.Draw(g, g.Rect, img, img.Bounds().Min, draw.Src)
	}
	return g, info, nil
}

// declaredDPI reads the resolution field of the formats that carry one.
func declaredDPI(format string, b []byte) int {
	var dpi float64
	switch format {
	case "png":
		dpi = pngDPI(b)
	case "jpeg":
		dpi = jfifDPI(b)
	case "bmp":
		if len(b) >= 42 {
			dpi = float64(int32(binary.LittleEndian.Uint32(b[38:]))) * 0.0254
		}
	case "tiff":
		dpi = tiffDPI(b)
	}
	if dpi < MinDPI || dpi > MaxDPI {
		return 0
	}
	return int(dpi + 0.5)
}

func pngDPI(b []byte) float64 {
	for o := 8; o+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[o:]))
		typ := string(b[o+4 : o+8])
		if typ == "pHYs" && n >= 9 && o+8+9 <= len(b) {
			if b[o+16] != 1 { // unit: metre
				return 0
			}
			return float64(binary.BigEndian.Uint32(b[o+8:])) * 0.0254
		}
		if typ == "IDAT" || n < 0 || n > len(b) {
			return 0
		}
		o += 12 + n
	}
	return 0
}

func jfifDPI(b []byte) float64 {
	if len(b) < 18 || b[2] != 0xff || b[3] != 0xe0 || string(b[6:11]) != "JFIF\x00" {
		return 0
	}
	d := float64(binary.BigEndian.Uint16(b[14:]))
	switch b[13] {
	case 1:
		return d
	case 2:
		return d * 2.54
	}
	return 0
}

// tiffDPI reads XResolution and ResolutionUnit from the first IFD.
func tiffDPI(b []byte) float64 {
	if len(b) < 8 {
		return 0
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if b[0] == 'M' {
		bo = binary.BigEndian
	}
	ifd := int(bo.Uint32(b[4:]))
	if ifd < 8 || ifd+2 > len(b) {
		return 0
	}
	n := int(bo.Uint16(b[ifd:]))
	var res float64
	unit := 2 // inch, the TIFF default
	for i := range n {
		e := ifd + 2 + 12*i
		if e+12 > len(b) {
			return 0
		}
		tag, typ := bo.Uint16(b[e:]), bo.Uint16(b[e+2:])
		switch {
		case tag == 282 && typ == 5: // XResolution, RATIONAL
			off := int(bo.Uint32(b[e+8:]))
			if off < 0 || off+8 > len(b) {
				return 0
			}
			num, den := bo.Uint32(b[off:]), bo.Uint32(b[off+4:])
			if den != 0 {
				res = float64(num) / float64(den)
			}
		case tag == 296 && typ == 3: // ResolutionUnit, SHORT
			unit = int(bo.Uint16(b[e+8:]))
		}
	}
	switch unit {
	case 2:
		return res
	case 3:
		return res * 2.54
	}
	return 0
}

// ctxReader fails its reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
