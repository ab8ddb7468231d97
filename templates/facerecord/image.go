package facerecord

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

var (
	sigJPEG = []byte{0xFF, 0xD8, 0xFF}
	sigJP2  = []byte{0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A}
	sigJ2K  = []byte{0xFF, 0x4F, 0xFF, 0x51}
)

// ImageInfo reads an image's encoding and size from its own headers: the
// JPEG SOF marker, the JP2 ihdr box (or the SIZ marker of its codestream),
// or a bare J2K codestream's SIZ marker. Errors are *Error with Input
// "image" and the offset in img.
func ImageInfo(img []byte) (t ImageType, width, height int, err error) {
	t, width, height, off, detail := imageInfo(img)
	if detail != "" {
		return ImageUnknown, 0, 0, &Error{Input: "image", Offset: off, Err: ErrImage, Detail: detail}
	}
	return t, width, height, nil
}

// image checks the image in p.b[off:end] and fills f's image fields.
func (p *parser) image(f *Face, off, end int, field string) error {
	img := p.b[off:end]
	t, w, h, rel, detail := imageInfo(img)
	if detail != "" {
		return p.fail(ErrImage, off+rel, "", field, "%s", detail)
	}
	f.Image, f.ImageOffset, f.ImageType, f.Width, f.Height = img, off, t, w, h
	return nil
}

// imageInfo is ImageInfo with the error as an offset and a description
// ("" when the image is good).
func imageInfo(img []byte) (ImageType, int, int, int, string) {
	var w, h, off int
	var detail string
	switch {
	case bytes.HasPrefix(img, sigJPEG):
		w, h, off, detail = jpegSize(img)
		return ImageJPEG, w, h, off, detail
	case bytes.HasPrefix(img, sigJP2):
		w, h, off, detail = jp2Size(img)
		return ImageJPEG2000, w, h, off, detail
	case bytes.HasPrefix(img, sigJ2K):
		w, h, off, detail = sizMarker(img, 0)
		return ImageJPEG2000, w, h, off, detail
	case len(img) == 0:
		return ImageUnknown, 0, 0, 0, "empty image"
	}
	return ImageUnknown, 0, 0, 0, fmt.Sprintf("unknown image signature % X: not JPEG (FF D8 FF), JP2 (00 00 00 0C 6A 50 20 20 0D 0A 87 0A) or J2K (FF 4F FF 51)", img[:min(len(img), 12)])
}

// jpegSize walks the JPEG marker segments up to the first SOF marker.
func jpegSize(img []byte) (w, h, off int, detail string) {
	i := 2
	for {
		if i >= len(img) {
			return 0, 0, i, "JPEG ends before its SOF marker"
		}
		if img[i] != 0xFF {
			return 0, 0, i, fmt.Sprintf("JPEG: byte %02X where a marker should start", img[i])
		}
		start := i
		for i < len(img) && img[i] == 0xFF {
			i++
		}
		if i >= len(img) {
			return 0, 0, start, "JPEG ends inside a marker"
		}
		m := img[i]
		i++
		switch {
		case m == 0x01 || m >= 0xD0 && m <= 0xD8: // standalone markers
			continue
		case m == 0xD9 || m == 0xDA:
			return 0, 0, start, fmt.Sprintf("JPEG: marker FF%02X before any SOF marker", m)
		}
		if len(img)-i < 2 {
			return 0, 0, start, fmt.Sprintf("JPEG: marker FF%02X's length runs past the end", m)
		}
		l := int(binary.BigEndian.Uint16(img[i:]))
		if l < 2 || l > len(img)-i {
			return 0, 0, start, fmt.Sprintf("JPEG: marker FF%02X segment length %d does not fit (%d bytes remain)", m, l, len(img)-i)
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC { // SOFn
			if l < 8 {
				return 0, 0, start, fmt.Sprintf("JPEG: SOF segment of %d bytes", l)
			}
			h = int(binary.BigEndian.Uint16(img[i+3:]))
			w = int(binary.BigEndian.Uint16(img[i+5:]))
			if w == 0 || h == 0 {
				return 0, 0, start, fmt.Sprintf("JPEG: SOF declares %d×%d", w, h)
			}
			return w, h, 0, ""
		}
		i += l
	}
}

// jp2Size walks the JP2 boxes for the ihdr box in jp2h, or else the SIZ
// marker at the start of the jp2c codestream.
func jp2Size(img []byte) (w, h, off int, detail string) {
	found := false
	off, detail = walkBoxes(img, 0, len(img), func(typ string, start, content, end int) (int, string) {
		switch typ {
		case "jp2h":
			return walkBoxes(img, content, end, func(typ string, start, content, end int) (int, string) {
				if typ != "ihdr" || found {
					return 0, ""
				}
				if end-content < 14 {
					return start, "JP2: ihdr box shorter than 14 bytes"
				}
				h = int(binary.BigEndian.Uint32(img[content:]))
				w = int(binary.BigEndian.Uint32(img[content+4:]))
				found, off = true, start
				return 0, ""
			})
		case "jp2c":
			if !found {
				var o int
				var d string
				w, h, o, d = sizMarker(img[:end], content)
				if d != "" {
					return o, d
				}
				found, off = true, content
			}
		}
		return 0, ""
	})
	if detail != "" {
		return 0, 0, off, detail
	}
	if !found {
		return 0, 0, 0, "JP2 without an ihdr box or codestream"
	}
	if w <= 0 || h <= 0 || w > 1<<24 || h > 1<<24 {
		return 0, 0, off, fmt.Sprintf("JP2 declares %d×%d", w, h)
	}
	return w, h, 0, ""
}

// walkBoxes calls fn for each box in img[start:end], with the offsets of
// the box, its content and its end; it stops at the first problem, which
// fn or the walk reports as an offset and a description.
func walkBoxes(img []byte, start, end int, fn func(typ string, start, content, end int) (int, string)) (int, string) {
	for i := start; i < end; {
		if end-i < 8 {
			return i, fmt.Sprintf("JP2: box header runs past the end (%d bytes remain)", end-i)
		}
		size := uint64(binary.BigEndian.Uint32(img[i:]))
		typ := string(img[i+4 : i+8])
		hdr := 8
		switch size {
		case 0:
			size = uint64(end - i)
		case 1:
			if end-i < 16 {
				return i, "JP2: extended box length runs past the end"
			}
			size, hdr = binary.BigEndian.Uint64(img[i+8:]), 16
		}
		if size < uint64(hdr) || size > uint64(end-i) {
			return i, fmt.Sprintf("JP2: box %q of %d bytes does not fit (%d bytes remain)", typ, size, end-i)
		}
		if o, d := fn(typ, i, i+hdr, i+int(size)); d != "" {
			return o, d
		}
		i += int(size)
	}
	return 0, ""
}

// sizMarker reads a J2K codestream's SIZ marker at img[at:]: FF4F (SOC),
// FF51 (SIZ), Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz.
func sizMarker(img []byte, at int) (w, h, off int, detail string) {
	if len(img)-at < 24 {
		return 0, 0, at, "J2K codestream ends before its SIZ marker's size fields"
	}
	if !bytes.HasPrefix(img[at:], sigJ2K) {
		return 0, 0, at, fmt.Sprintf("J2K codestream starts % X, not SOC and SIZ (FF 4F FF 51)", img[at:at+4])
	}
	x := binary.BigEndian.Uint32(img[at+8:])
	y := binary.BigEndian.Uint32(img[at+12:])
	xo := binary.BigEndian.Uint32(img[at+16:])
	yo := binary.BigEndian.Uint32(img[at+20:])
	if xo >= x || yo >= y || x-xo > 1<<24 || y-yo > 1<<24 {
		return 0, 0, at, fmt.Sprintf("J2K SIZ declares an image of %d×%d from offset %d,%d", x, y, xo, yo)
	}
	return int(x - xo), int(y - yo), 0, ""
}
