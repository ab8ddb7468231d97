// Package fpimage reads fingerprint images: PNG, TIFF, BMP, JPEG and WSQ
// into 8-bit grey, with the resolution the file declares when it is a
// plausible scanner's. Scanners (capture/fprint), the extractor
// (templates/finger) and the services share it, and with it one idea of
// which resolutions are plausible (PlausibleDPI).
package fpimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // registers JPEG
	_ "image/png"  // registers PNG

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

// Decode decodes a fingerprint image to 8-bit grey.
func Decode(b []byte) (*image.Gray, Info, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, Info{}, fmt.Errorf("%w: %v", ErrUnsupportedImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > MaxPixels {
		return nil, Info{}, fmt.Errorf("%w: %d×%d pixels (limit %d)", ErrUnsupportedImage, cfg.Width, cfg.Height, MaxPixels)
	}
	info := Info{Format: format, Width: cfg.Width, Height: cfg.Height}
	var img image.Image
	if format == "wsq" {
		// WSQ carries its resolution in a comment only its decoder reads.
		var wi wsq.Info
		img, wi, err = wsq.DecodeWithInfo(bytes.NewReader(b))
		info.DPI = wi.PPI
	} else {
		img, _, err = image.Decode(bytes.NewReader(b))
		info.DPI = declaredDPI(format, b)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("%w: %s: %v", ErrUnsupportedImage, format, err)
	}
	if !PlausibleDPI(info.DPI) {
		info.DPI = 0
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Rect.Min != (image.Point{}) {
		g = image.NewGray(image.Rect(0, 0, cfg.Width, cfg.Height))
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
