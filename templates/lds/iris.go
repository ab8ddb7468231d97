package lds

import (
	"fmt"
	"image"
)

const (
	tagDG4      = 0x76
	bioTypeIris = 0x10
	magicIris   = "IIR\x00"
	version2005 = "010\x00"
	version2011 = "020\x00"
	// ISO/IEC 19794-6:2005: general header, biometric subtype header,
	// image header.
	irisHeader2005   = 45
	irisSubtype2005  = 3
	irisImageHdr2005 = 11
	// ISO/IEC 19794-6:2011: general header; representation fields before
	// the quality blocks, one quality block, fields after them.
	irisHeader2011   = 16
	irisRepHead2011  = 19
	irisQuality2011  = 5
	irisRepFixed2011 = 33
)

// IrisFormat is the iris record format an Iris was read from.
type IrisFormat uint8

const (
	IrisFormatUnknown IrisFormat = iota
	// IrisFormat2005 is ISO/IEC 19794-6:2005 ("IIR\0" "010\0"), the
	// format of DG4.
	IrisFormat2005
	// IrisFormat2011 is ISO/IEC 19794-6:2011 ("IIR\0" "020\0").
	IrisFormat2011
)

func (f IrisFormat) String() string {
	return name(f, "unknown", "ISO/IEC 19794-6:2005", "ISO/IEC 19794-6:2011")
}

// Eye is the eye an iris image shows.
type Eye uint8

const (
	EyeUndefined Eye = iota
	EyeRight
	EyeLeft
)

func (e Eye) String() string { return name(e, "undefined", "right", "left") }

// IrisQuality is one quality block of a 2011 representation.
type IrisQuality struct {
	Score               int
	VendorID, Algorithm int
}

// Iris is one iris image of an ISO/IEC 19794-6 record.
type Iris struct {
	Format IrisFormat
	// Record is the 1-based biometric information template of DG4 the
	// image is in, 0 for a bare record.
	Record int
	Eye    Eye
	// Index is the 2005 image sequence number or the 2011 representation
	// number.
	Index int
	// Quality is the 2005 image quality (0–100, 254 not computed, 255
	// undefined), -1 in 2011 records, whose scores are in Qualities.
	Quality   int
	Qualities []IrisQuality
	// Width and Height are the record's (2005: the general header's, for
	// every image of the record); ImageWidth and ImageHeight the image's
	// own header's (0 for raw pixels).
	Width, Height           int
	ImageWidth, ImageHeight int
	// Depth is bits per pixel (2005: intensity depth, 24 for RGB).
	Depth int
	// ImageFormat is the record's image format code; Compression what it
	// means.
	ImageFormat int
	Compression Compression
	// RotationAngle and RotationUncertainty are raw codes (0xFFFF
	// undefined).
	RotationAngle, RotationUncertainty int
	// CaptureDate is the 2011 capture date and time, "2005-12-15
	// 17:35:20" (UTC as recorded), "" in 2005 records.
	CaptureDate string
	// RepresentationLength is the 2011 representation length as written.
	// The fields delimit a representation, not this length: libbiomeval's
	// iris01.iso2011 writes 5 bytes (one quality block) less than it holds.
	RepresentationLength int
	// Image is the image's bytes; it aliases the parser's input, at
	// ImageOffset.
	Image       []byte
	ImageOffset int
}

// Decode decodes the image: JPEG and PNG (the standard library) and
// uncompressed 8- or 24-bit pixels. JPEG 2000 gives ErrNeedsJPEG2000;
// JPEG-LS gives ErrUnsupported.
func (ir *Iris) Decode() (image.Image, error) {
	return decode(ir.Compression, ir.Image, ir.Width, ir.Height, ir.Depth)
}

func compression2005(code int) Compression {
	switch code {
	case 0x02, 0x04:
		return CompressionRaw
	case 0x06, 0x08:
		return CompressionJPEG
	case 0x0A, 0x0C:
		return CompressionJPEGLS
	case 0x0E, 0x10:
		return CompressionJPEG2000
	}
	return CompressionUnknown
}

func compression2011(code int) Compression {
	switch code {
	case 0x02:
		return CompressionRaw
	case 0x0A:
		return CompressionJPEG2000
	case 0x0E:
		return CompressionPNG
	}
	return CompressionUnknown
}

// ParseDG4 reads EF.DG4 (tag 76 / 7F61 / 7F60 / A1 / 5F2E), each
// biometric data block an ISO/IEC 19794-6:2005 iris image record (or a
// 2011 one), and returns every iris image in order. The header's
// biometric type, when present, must be iris (10). Bytes after the DG4
// element are ignored. Iris.Image aliases b.
func ParseDG4(b []byte) ([]Iris, error) {
	p := &parser{in: "DG4", b: b}
	bdbs, err := p.group(tagDG4, "EF.DG4", bioTypeIris, "iris")
	if err != nil {
		return nil, err
	}
	var out []Iris
	for i, bdb := range bdbs {
		irises, err := p.irisRecord(bdb.VOff, bdb.End(), i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, irises...)
	}
	return out, nil
}

// ParseIrisRecord reads a bare iris record, ISO/IEC 19794-6:2005 ("IIR\0"
// "010\0") or 2011 ("IIR\0" "020\0"). Bytes after the record length are
// ignored. Iris.Image aliases b.
func ParseIrisRecord(b []byte) ([]Iris, error) {
	p := &parser{in: "record", b: b}
	return p.irisRecord(0, len(b), 0)
}

func (p *parser) irisRecord(off, end, rec int) ([]Iris, error) {
	b := p.b
	if end-off < irisHeader2011 {
		return nil, p.fail(ErrTruncated, off, "", "19794-6 general header", "needs at least %d bytes, %d remain", irisHeader2011, end-off)
	}
	if string(b[off:off+4]) != magicIris {
		return nil, p.fail(ErrFormat, off, "", "19794-6 format identifier", "%q, want \"IIR\\x00\"", b[off:off+4])
	}
	reclen := uint64(u32(b, off+8))
	if reclen > uint64(end-off) {
		return nil, p.fail(ErrTruncated, off+8, "", "19794-6 record length", "%d runs past the end (%d bytes)", reclen, end-off)
	}
	switch v := string(b[off+4 : off+8]); v {
	case version2005:
		return p.iris2005(off, off+int(reclen), rec)
	case version2011:
		return p.iris2011(off, off+int(reclen), rec)
	default:
		return nil, p.fail(ErrUnsupported, off+4, "", "19794-6 version", "%q; \"010\\x00\" (2005) and \"020\\x00\" (2011) are read", v)
	}
}

// iris2005 reads an ISO/IEC 19794-6:2005 record in p.b[off:end].
//
// Layout: "IIR\0", "010\0", record length (4), capture device ID (2),
// number of biometric subtypes (1), header length (2, = 45), image
// properties (2), iris diameter (2), image format (2), width, height (2,
// 2), intensity depth (1), image transformation (1), device unique ID
// (16); per subtype: eye (1), number of images (2); per image: sequence
// number (2), quality (1), rotation angle, uncertainty (2, 2), image
// length (4), the image.
func (p *parser) iris2005(off, end, rec int) ([]Iris, error) {
	b := p.b
	if end-off < irisHeader2005 {
		return nil, p.fail(ErrFormat, off+8, "", "19794-6 record length", "%d, less than the %d-byte header", end-off, irisHeader2005)
	}
	if h := u16(b, off+15); h != irisHeader2005 {
		return nil, p.fail(ErrFormat, off+15, "", "19794-6 record header length", "%d, want %d", h, irisHeader2005)
	}
	tmpl := Iris{
		Format: IrisFormat2005, Record: rec,
		ImageFormat: u16(b, off+21),
		Width:       u16(b, off+23), Height: u16(b, off+25),
		Depth: int(b[off+27]),
	}
	if tmpl.Compression = compression2005(tmpl.ImageFormat); tmpl.Compression == CompressionUnknown {
		return nil, p.fail(ErrFormat, off+21, "", "19794-6 image format", "%#04x is not a 2005 image format", tmpl.ImageFormat)
	}
	nsub := int(b[off+14])
	if nsub == 0 {
		return nil, p.fail(ErrFormat, off+14, "", "19794-6 number of biometric subtypes", "0")
	}
	var out []Iris
	pos := off + irisHeader2005
	for s := 1; s <= nsub; s++ {
		field := fmt.Sprintf("19794-6 subtype %d", s)
		if end-pos < irisSubtype2005 {
			return nil, p.fail(ErrTruncated, pos, "", field+" header", "needs %d bytes, %d remain of the record", irisSubtype2005, end-pos)
		}
		eye := b[pos]
		if eye > 2 {
			return nil, p.fail(ErrFormat, pos, "", field+" eye", "%d is not 0 (undefined), 1 (right) or 2 (left)", eye)
		}
		nimg := u16(b, pos+1)
		pos += irisSubtype2005
		for i := 1; i <= nimg; i++ {
			field := fmt.Sprintf("%s image %d", field, i)
			if end-pos < irisImageHdr2005 {
				return nil, p.fail(ErrTruncated, pos, "", field+" header", "needs %d bytes, %d remain of the record", irisImageHdr2005, end-pos)
			}
			ir := tmpl
			ir.Eye = Eye(eye)
			ir.Index = u16(b, pos)
			ir.Quality = int(b[pos+2])
			ir.RotationAngle, ir.RotationUncertainty = u16(b, pos+3), u16(b, pos+5)
			ilen := uint64(u32(b, pos+7))
			pos += irisImageHdr2005
			if ilen > uint64(end-pos) {
				return nil, p.fail(ErrTruncated, pos-4, "", field+" length", "%d runs past the end of the record (%d bytes remain)", ilen, end-pos)
			}
			if err := p.irisImage(&ir, pos, pos+int(ilen), field); err != nil {
				return nil, err
			}
			out = append(out, ir)
			pos += int(ilen)
		}
	}
	if pos != end {
		return nil, p.fail(ErrFormat, pos, "", "19794-6 record", "%d bytes after the last image, inside the record length", end-pos)
	}
	if len(out) == 0 {
		return nil, p.fail(ErrFormat, off, "", "19794-6 record", "no image")
	}
	return out, nil
}

// iris2011 reads an ISO/IEC 19794-6:2011 record in p.b[off:end].
//
// Layout (libbiomeval's Iris::INCITSView read as a reference): "IIR\0",
// "020\0", record length (4), number of representations (2),
// certification flag (1), number of eyes (1); per representation: length
// (4), capture date (9: year 2, month, day, hour, minute, second,
// millisecond 2), capture device technology (1), vendor (2), type (2),
// number of quality blocks (1) and 5 bytes each (score, vendor 2,
// algorithm 2), representation number (2), eye (1), image type (1), image
// format (1), image properties (1), width, height (2, 2), bit depth (1),
// range (2), roll angle, uncertainty (2, 2), iris centre smallest/largest
// x, y and diameters (6×2), image length (4), the image.
func (p *parser) iris2011(off, end, rec int) ([]Iris, error) {
	b := p.b
	if end-off < irisHeader2011 {
		return nil, p.fail(ErrFormat, off+8, "", "19794-6 record length", "%d, less than the %d-byte header", end-off, irisHeader2011)
	}
	n := u16(b, off+12)
	if n == 0 {
		return nil, p.fail(ErrFormat, off+12, "", "19794-6 number of representations", "0")
	}
	out := make([]Iris, 0, min(n, (end-off)/(irisRepHead2011+irisRepFixed2011)+1))
	pos := off + irisHeader2011
	for i := 1; i <= n; i++ {
		field := fmt.Sprintf("19794-6 representation %d", i)
		if end-pos < irisRepHead2011 {
			return nil, p.fail(ErrTruncated, pos, "", field, "needs %d bytes, %d remain of the record", irisRepHead2011, end-pos)
		}
		ir := Iris{Format: IrisFormat2011, Record: rec, Quality: -1}
		ir.RepresentationLength = u32(b, pos)
		d := b[pos+4:]
		ir.CaptureDate = fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", u16(d, 0), d[2], d[3], d[4], d[5], d[6])
		nq := int(b[pos+18])
		s := pos + irisRepHead2011 + irisQuality2011*nq
		if s+irisRepFixed2011 > end {
			return nil, p.fail(ErrTruncated, pos+18, "", field, "%d quality blocks and the image fields need %d bytes, %d remain of the record", nq, s+irisRepFixed2011-pos, end-pos)
		}
		for q := pos + irisRepHead2011; q < s; q += irisQuality2011 {
			ir.Qualities = append(ir.Qualities, IrisQuality{Score: int(b[q]), VendorID: u16(b, q+1), Algorithm: u16(b, q+3)})
		}
		ir.Index = u16(b, s)
		if b[s+2] > 2 {
			return nil, p.fail(ErrFormat, s+2, "", field+" eye", "%d is not 0 (undefined), 1 (right) or 2 (left)", b[s+2])
		}
		ir.Eye = Eye(b[s+2])
		ir.ImageFormat = int(b[s+4])
		if ir.Compression = compression2011(ir.ImageFormat); ir.Compression == CompressionUnknown {
			return nil, p.fail(ErrFormat, s+4, "", field+" image format", "%#02x is not a 2011 image format (02 raw, 0A JPEG 2000, 0E PNG)", ir.ImageFormat)
		}
		ir.Width, ir.Height = u16(b, s+6), u16(b, s+8)
		ir.Depth = int(b[s+10])
		ir.RotationAngle, ir.RotationUncertainty = u16(b, s+13), u16(b, s+15)
		ilen := uint64(u32(b, s+29))
		img := s + irisRepFixed2011
		if ilen > uint64(end-img) {
			return nil, p.fail(ErrTruncated, s+29, "", field+" image length", "%d runs past the end of the record (%d bytes remain)", ilen, end-img)
		}
		if err := p.irisImage(&ir, img, img+int(ilen), field+" image"); err != nil {
			return nil, err
		}
		out = append(out, ir)
		pos = img + int(ilen)
	}
	if pos != end {
		return nil, p.fail(ErrFormat, pos, "", "19794-6 record", "%d bytes after the last representation, inside the record length", end-pos)
	}
	return out, nil
}

func (p *parser) irisImage(ir *Iris, off, end int, field string) error {
	ir.Image, ir.ImageOffset = p.b[off:end], off
	w, h, detail := imageSize(ir.Compression, ir.Image)
	if detail != "" {
		return p.fail(ErrImage, off, "", field, "%s", detail)
	}
	ir.ImageWidth, ir.ImageHeight = w, h
	return nil
}
