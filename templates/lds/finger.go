package lds

import (
	"fmt"
	"image"
)

const (
	tagDG3 = 0x63
	// ISO/IEC 19794-4:2005 finger image record.
	magic19794_4   = "FIR\x00"
	version19794_4 = "010\x00"
	fingerHeader   = 32 // general record header
	fingerImageHdr = 14 // finger image header
	bioTypeFinger  = 0x08
)

// FingerImage is one finger image of an ISO/IEC 19794-4:2005 record.
type FingerImage struct {
	// Record is the 1-based biometric information template the image is
	// in; View its view number in the record.
	Record, View int
	// Position is the finger position code (0 unknown, 1 right thumb … 5
	// right little, 6 left thumb … 10 left little; 11–15 plain multiple
	// fingers, 20–38 palms).
	Position int
	// Impression is the impression type code (0 live-scan plain, 1
	// live-scan rolled, 2 non-live plain, 3 non-live rolled, 8 swipe…).
	Impression int
	// Quality is the finger image quality, 0–100 (255 not computed).
	Quality int
	// Width and Height are the record's line length and line count.
	Width, Height int
	// ImageWidth and ImageHeight are the size the image's own header
	// gives (0 for raw pixels, which have none).
	ImageWidth, ImageHeight int
	// ScaleUnits is 1 for pixels per inch, 2 per centimetre; the scan and
	// image resolutions are in those units.
	ScaleUnits                         int
	ScanResolutionX, ScanResolutionY   int
	ImageResolutionX, ImageResolutionY int
	// Depth is the pixel depth in bits.
	Depth int
	// AcquisitionLevel is the record's image acquisition level (31 for
	// 500 ppi, 8 bits).
	AcquisitionLevel int
	// Compression is the record's image compression algorithm.
	Compression Compression
	// Image is the image's bytes; it aliases the parser's input, at
	// ImageOffset.
	Image       []byte
	ImageOffset int
}

// PositionName names a finger position code: "right index finger".
func PositionName(code int) string {
	fingers := []string{"unknown finger", "right thumb", "right index finger", "right middle finger", "right ring finger", "right little finger",
		"left thumb", "left index finger", "left middle finger", "left ring finger", "left little finger"}
	switch {
	case code >= 0 && code < len(fingers):
		return fingers[code]
	case code >= 11 && code <= 15:
		return fmt.Sprintf("plain multiple fingers (%d)", code)
	case code >= 20 && code <= 38:
		return fmt.Sprintf("palm (%d)", code)
	}
	return fmt.Sprintf("position %d", code)
}

// Decode decodes the image: WSQ (capture/wsq), JPEG and PNG (the standard
// library) and uncompressed 8-bit pixels. JPEG 2000 gives
// ErrNeedsJPEG2000; bit-packed pixels give ErrUnsupported. Images over
// MaxPixels are refused from their headers.
func (f *FingerImage) Decode() (image.Image, error) {
	return decode(f.Compression, f.Image, f.Width, f.Height, f.Depth)
}

// compression19794_4 maps 19794-4:2005's image compression algorithm code.
func compression19794_4(c byte) Compression {
	switch c {
	case 0:
		return CompressionRaw
	case 1:
		return CompressionRawPacked
	case 2:
		return CompressionWSQ
	case 3:
		return CompressionJPEG
	case 4:
		return CompressionJPEG2000
	case 5:
		return CompressionPNG
	}
	return CompressionUnknown
}

// ParseDG3 reads EF.DG3 (tag 63 / 7F61 / 7F60 / A1 / 5F2E), each
// biometric data block an ISO/IEC 19794-4:2005 finger image record, and
// returns every finger image in order. The header's biometric type, when
// present, must be finger (08); every compressed image must start with
// its format's signature and have a readable size. Bytes after the DG3
// element are ignored. FingerImage.Image aliases b.
//
// A chip gives DG3 only after terminal authentication (EAC); this reads
// the file once read.
func ParseDG3(b []byte) ([]FingerImage, error) {
	p := &parser{in: "DG3", b: b}
	bdbs, err := p.group(tagDG3, "EF.DG3", bioTypeFinger, "finger")
	if err != nil {
		return nil, err
	}
	var out []FingerImage
	for i, bdb := range bdbs {
		f, err := p.fingerRecord(bdb.VOff, bdb.End(), i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}

// fingerRecord reads an ISO/IEC 19794-4:2005 record in p.b[off:end].
//
// Layout: "FIR\0", "010\0", record length (6), capture device ID (2),
// image acquisition level (2), number of finger images (1), scale units
// (1), scan resolution x, y (2, 2), image resolution x, y (2, 2), pixel
// depth (1), compression (1), reserved (2); per image: data block length
// (4, header included), position, count of views, view number, quality,
// impression type (1 each), width, height (2, 2), reserved (1), the image.
func (p *parser) fingerRecord(off, end, rec int) ([]FingerImage, error) {
	b := p.b
	if end-off < fingerHeader {
		return nil, p.fail(ErrTruncated, off, "", "19794-4 general header", "needs %d bytes, %d remain", fingerHeader, end-off)
	}
	if string(b[off:off+4]) != magic19794_4 {
		return nil, p.fail(ErrFormat, off, "", "19794-4 format identifier", "%q, want \"FIR\\x00\"", b[off:off+4])
	}
	if v := string(b[off+4 : off+8]); v != version19794_4 {
		return nil, p.fail(ErrUnsupported, off+4, "", "19794-4 version", "%q; only \"010\\x00\" (ISO/IEC 19794-4:2005) is read", v)
	}
	reclen := uint64(u16(b, off+8))<<32 | uint64(u32(b, off+10))
	if reclen < fingerHeader {
		return nil, p.fail(ErrFormat, off+8, "", "19794-4 record length", "%d, less than the %d-byte header", reclen, fingerHeader)
	}
	if reclen > uint64(end-off) {
		return nil, p.fail(ErrTruncated, off+8, "", "19794-4 record length", "%d runs past the end (%d bytes)", reclen, end-off)
	}
	end = off + int(reclen)
	tmpl := FingerImage{
		Record:           rec,
		AcquisitionLevel: u16(b, off+16),
		ScaleUnits:       int(b[off+19]),
		ScanResolutionX:  u16(b, off+20), ScanResolutionY: u16(b, off+22),
		ImageResolutionX: u16(b, off+24), ImageResolutionY: u16(b, off+26),
		Depth:       int(b[off+28]),
		Compression: compression19794_4(b[off+29]),
	}
	if tmpl.Compression == CompressionUnknown {
		return nil, p.fail(ErrFormat, off+29, "", "19794-4 image compression algorithm", "code %d is not 0–5", b[off+29])
	}
	n := int(b[off+18])
	if n == 0 {
		return nil, p.fail(ErrFormat, off+18, "", "19794-4 number of finger images", "0")
	}
	out := make([]FingerImage, 0, min(n, (end-off)/fingerImageHdr))
	pos := off + fingerHeader
	for i := 1; i <= n; i++ {
		field := fmt.Sprintf("19794-4 finger %d", i)
		if end-pos < 4 {
			return nil, p.fail(ErrTruncated, pos, "", field+" data block length", "needs 4 bytes, %d remain of the record", end-pos)
		}
		blen := uint64(u32(b, pos))
		if blen < fingerImageHdr+1 {
			return nil, p.fail(ErrFormat, pos, "", field+" data block length", "%d, no room for the %d-byte header and an image", blen, fingerImageHdr)
		}
		if blen > uint64(end-pos) {
			return nil, p.fail(ErrTruncated, pos, "", field+" data block length", "%d runs past the end of the record (%d bytes remain)", blen, end-pos)
		}
		bend := pos + int(blen)
		f := tmpl
		f.Position = int(b[pos+4])
		f.View = int(b[pos+6])
		f.Quality = int(b[pos+7])
		f.Impression = int(b[pos+8])
		f.Width, f.Height = u16(b, pos+9), u16(b, pos+11)
		f.ImageOffset = pos + fingerImageHdr
		f.Image = b[f.ImageOffset:bend]
		w, h, detail := imageSize(f.Compression, f.Image)
		if detail != "" {
			return nil, p.fail(ErrImage, f.ImageOffset, "", field+" image", "%s", detail)
		}
		f.ImageWidth, f.ImageHeight = w, h
		out = append(out, f)
		pos = bend
	}
	if pos != end {
		return nil, p.fail(ErrFormat, pos, "", "19794-4 record", "%d bytes after the last finger image, inside the record length", end-pos)
	}
	return out, nil
}
