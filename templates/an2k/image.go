package an2k

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/bordermatch/bordermatch/capture/wsq"
)

// MaxPixels bounds width×height of the images Decode decodes, as
// capture/wsq does: more than a 1000 ppi slap or a 500 ppi palm.
const MaxPixels = 40_000_000

// Image is a record's image with what the record says about it.
type Image struct {
	// Compression is normalised across record types: "none", "wsq",
	// "jpeg", "jpeg-lossless", "jpeg2000" (lossy or lossless), "png", or
	// the record's own code in lower case for anything else.
	Compression string
	// Data is the image as stored in the record (aliasing the record).
	Data []byte
	// Width, Height are the declared size in pixels (HLL, VLL).
	Width, Height int
	// PPI is the horizontal resolution in pixels per inch, converted from
	// SLC and THPS (pixels per centimetre × 2.54), or for Type-4 from the
	// transaction's nominal transmitting resolution (1.012, pixels per
	// millimetre; 500 when absent). 0 when the record gives no scale.
	PPI int
	// Depth is bits per pixel: BPX, 8 for Type-4, and for Type-10 8 for a
	// grey colour space and 24 otherwise.
	Depth int
	// Positions are the finger positions (FGP: Type-4 without its 255
	// padding, 13, 14), palm positions (Type-15 PLP) or eye label
	// (Type-17); nil for Type-10 and 16.
	Positions []int
	// ImageType (Type-10 IMT: "FACE", "SMT"...) and SAP, the subject
	// acquisition profile (Type-10 only).
	ImageType string
	SAP       int
}

var compressionCodes = map[string]string{
	"NONE": "none", "WSQ": "wsq", "WSQ20": "wsq", "JPEGB": "jpeg", "JPEGL": "jpeg-lossless",
	"JP2": "jpeg2000", "JP2L": "jpeg2000", "PNG": "png",
}

// type4Compressions are Type-4 GCA's codes (ANSI/NIST-ITL 1-2011 table 15).
var type4Compressions = []string{"none", "wsq", "jpeg", "jpeg-lossless", "jpeg2000", "jpeg2000", "png"}

// Image returns record i's image: Types 3–6 (from the fixed binary header;
// 5 and 6 are 1-bit, "none" or "fax"), 10, 13, 14, 15, 16 and 17. Other
// records give an error wrapping ErrUnsupported; a missing or non-numeric
// size wraps ErrValue.
func (t *Transaction) Image(i int) (*Image, error) {
	if i < 0 || i >= len(t.Records) {
		return nil, &Error{Offset: -1, Record: i, Err: ErrValue, Detail: fmt.Sprintf("no record %d", i)}
	}
	r := &t.Records[i]
	fail := func(kind error, field int, format string, args ...any) error {
		return &Error{Offset: -1, Record: i, Type: r.Type, Field: field, Err: kind, Detail: fmt.Sprintf(format, args...)}
	}
	num := func(field int) (int, error) {
		n, ok := r.Int(field)
		if !ok || n < 0 {
			return 0, fail(ErrValue, field, "%q is not a number", r.Value(field))
		}
		return n, nil
	}
	if r.Raw != nil && (r.Type == 3 || r.Type == 5 || r.Type == 6) && len(r.Raw) >= 18 {
		return t.fixedImage(r), nil
	}
	if !hasImage(r) {
		return nil, fail(ErrUnsupported, 0, "a Type-%d record holds no image", r.Type)
	}
	im := &Image{}
	var err error
	if im.Width, err = num(6); err != nil {
		return nil, err
	}
	if im.Height, err = num(7); err != nil {
		return nil, err
	}
	switch r.Type {
	case 4:
		gca, err := num(8)
		if err != nil {
			return nil, err
		}
		im.Compression = "gca-" + strconv.Itoa(gca)
		if gca < len(type4Compressions) {
			im.Compression = type4Compressions[gca]
		}
		im.Depth, im.PPI = 8, t.fixedPPI(4)
		f, _ := r.Field(9)
		im.Data = f.Value
		for _, s := range f2(r, 4) {
			if n, err := strconv.Atoi(s); err == nil && n != 255 {
				im.Positions = append(im.Positions, n)
			}
		}
		return im, nil
	case 10, 13, 14, 15, 16, 17:
	default:
		return nil, fail(ErrUnsupported, 0, "a Type-%d record holds no image", r.Type)
	}
	cga := strings.ToUpper(strings.TrimSpace(r.Value(11)))
	im.Compression = compressionCodes[cga]
	if im.Compression == "" {
		im.Compression = strings.ToLower(cga)
	}
	if scale, ok := r.Int(9); ok {
		switch slc, _ := r.Int(8); slc {
		case 1:
			im.PPI = scale
		case 2:
			im.PPI = int(math.Round(float64(scale) * 2.54))
		}
	}
	if r.Type == 10 {
		im.ImageType = r.Value(3)
		im.SAP, _ = r.Int(13)
		im.Depth = 24
		if csp := strings.ToUpper(r.Value(12)); csp == "GRAY" || csp == "GREY" {
			im.Depth = 8
		}
	} else {
		im.Depth, _ = r.Int(12)
	}
	switch r.Type {
	case 13, 14, 15, 17:
		pos := 13
		if r.Type == 17 {
			pos = 3
		}
		for _, s := range f2(r, pos) {
			if n, err := strconv.Atoi(s); err == nil {
				im.Positions = append(im.Positions, n)
			}
		}
	}
	// The image is the record's last field 999 (some files carry short
	// text fields tagged 999 before it).
	for _, f := range r.Fields {
		if f.Num == 999 {
			im.Data = f.Value
		}
	}
	if im.Data == nil {
		return nil, fail(ErrValue, 999, "no image field")
	}
	return im, nil
}

// fixedPPI is the resolution of the fixed-resolution images (Types 3–6):
// the nominal transmitting resolution, 1.012 in pixels per millimetre
// (500 ppi when absent or zero). The low-resolution Types 3 and 5 are sent
// at half of it, as NBIS reads them, unless 1.012 already gives a low
// resolution (libbiomeval's type3.an2k says 9.84, 250 ppi, for its
// Type-3).
func (t *Transaction) fixedPPI(typ int) int {
	ppi := 500.0
	if ntr, err := strconv.ParseFloat(strings.TrimSpace(t.header().Value(fNTR)), 64); err == nil && ntr > 0 && ntr < 1000 {
		ppi = ntr * 25.4
	}
	if (typ == 3 || typ == 5) && ppi >= 375 {
		ppi /= 2
	}
	return int(math.Round(ppi))
}

// fixedImage reads the image of a raw Type-3 (grey), 5 or 6 (1-bit)
// record from its 18-byte header: LEN 4, IDC 1, IMP 1, FGP 6, ISR 1,
// HLL 2, VLL 2, compression 1 (GCA 0 none, 1 WSQ; BCA 0 none, 1 ANSI/EIA-538
// facsimile).
func (t *Transaction) fixedImage(r *Record) *Image {
	b := r.Raw
	im := &Image{
		Width:  int(b[13])<<8 | int(b[14]),
		Height: int(b[15])<<8 | int(b[16]),
		PPI:    t.fixedPPI(r.Type),
		Data:   b[18:],
		Depth:  8,
	}
	for _, p := range b[6:12] {
		if p != 255 {
			im.Positions = append(im.Positions, int(p))
		}
	}
	c := int(b[17])
	if r.Type == 3 {
		im.Compression = "gca-" + strconv.Itoa(c)
		if c < len(type4Compressions) {
			im.Compression = type4Compressions[c]
		}
		return im
	}
	im.Depth = 1
	switch c {
	case 0:
		im.Compression = "none"
	case 1:
		im.Compression = "fax"
	default:
		im.Compression = "bca-" + strconv.Itoa(c)
	}
	return im
}

func hasImage(r *Record) bool {
	switch r.Type {
	case 4, 10, 13, 14, 15, 16, 17:
		return r.Raw == nil
	}
	return false
}

// f2 is the first item of every subfield of a field, trimmed.
func f2(r *Record, num int) []string {
	f, ok := r.Field(num)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range f.Subfields() {
		out = append(out, strings.TrimSpace(s[0]))
	}
	return out
}

// Decode decodes the image: uncompressed 8-bit grey, 24-bit RGB or 1-bit
// black and white (to grey), WSQ
// (capture/wsq), JPEG and PNG (the standard library). JPEG 2000 gives
// ErrNeedsJPEG2000: it needs OpenCV, which this package does not link;
// lossless JPEG, facsimile and other compressions give ErrUnsupported. Images over
// MaxPixels are refused from their headers before decoding.
//
// The decoded size is the image's own, which is not always the declared
// one (the three WSQ images of NBIS's valid1.8.an2 are 1600×976 and
// 1600×800 in records declaring 1800×1000 and 1800×900): callers that
// rely on Width and Height compare.
func (im *Image) Decode() (image.Image, error) {
	if im.Width <= 0 || im.Height <= 0 || im.Width > MaxPixels/im.Height {
		return nil, fmt.Errorf("%w: declared size %d×%d", ErrValue, im.Width, im.Height)
	}
	var (
		img image.Image
		err error
	)
	switch im.Compression {
	case "none":
		img, err = im.raw()
	case "wsq":
		img, err = checked(im.Data, wsq.DecodeConfig, func(r io.Reader) (image.Image, error) { return wsq.Decode(r) })
	case "jpeg":
		img, err = checked(im.Data, jpeg.DecodeConfig, jpeg.Decode)
	case "png":
		img, err = checked(im.Data, png.DecodeConfig, png.Decode)
	case "jpeg2000":
		return nil, ErrNeedsJPEG2000
	default:
		return nil, fmt.Errorf("%w: %q image compression", ErrUnsupported, im.Compression)
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}

// checked reads the image's header first so a size over MaxPixels is
// refused before the decoder allocates for it.
func checked(data []byte, config func(io.Reader) (image.Config, error), decode func(io.Reader) (image.Image, error)) (image.Image, error) {
	c, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: image header: %w", ErrFormat, err)
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > MaxPixels/c.Height {
		return nil, fmt.Errorf("%w: image header says %d×%d", ErrValue, c.Width, c.Height)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: image: %w", ErrFormat, err)
	}
	return img, nil
}

func (im *Image) raw() (image.Image, error) {
	n := im.Width * im.Height
	switch {
	case im.Depth == 8 && len(im.Data) == n:
		return &image.Gray{Pix: bytes.Clone(im.Data), Stride: im.Width, Rect: image.Rect(0, 0, im.Width, im.Height)}, nil
	case im.Depth == 1 && len(im.Data) == (im.Width+7)/8*im.Height:
		// Binary images pack 8 pixels a byte, rows padded to a byte; 1 is
		// black (ridge).
		g := image.NewGray(image.Rect(0, 0, im.Width, im.Height))
		row := (im.Width + 7) / 8
		for y := range im.Height {
			for x := range im.Width {
				if im.Data[y*row+x/8]&(0x80>>(x%8)) == 0 {
					g.Pix[y*im.Width+x] = 255
				}
			}
		}
		return g, nil
	case im.Depth == 24 && len(im.Data) == 3*n:
		rgba := image.NewRGBA(image.Rect(0, 0, im.Width, im.Height))
		for i := range n {
			copy(rgba.Pix[4*i:], im.Data[3*i:3*i+3])
			rgba.Pix[4*i+3] = 255
		}
		return rgba, nil
	}
	return nil, fmt.Errorf("%w: %d bytes of uncompressed %d-bit %d×%d pixels", ErrValue, len(im.Data), im.Depth, im.Width, im.Height)
}
