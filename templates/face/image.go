package face

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"

	"gocv.io/x/gocv"

	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/facerecord"
)

// DefaultMaxPixels bounds the images a FaceExtractor decodes: 40 MP is more
// than any gate camera or passport scan delivers, and a decoded 40 MP RGB
// image already takes 120 MB.
const DefaultMaxPixels = 40_000_000

// format sniffs an image format from its first bytes. It names formats we
// refuse too, so the error can say what was sent.
func format(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case bytes.HasPrefix(b, []byte("BM")):
		return "bmp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "tiff"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	case bytes.HasPrefix(b, []byte("\x00\x00\x00\x0cjP  ")), bytes.HasPrefix(b, []byte("\xff\x4f\xff\x51")):
		return "jpeg2000"
	}
	return ""
}

// decoded is a checked, fully decoded sample image.
type decoded struct {
	img image.Image
}

// decodeImage checks and decodes a JPEG, PNG or JPEG 2000 (passport chip
// photos: ICAO 9303 DG2 holds JPEG 2000 more often than JPEG). The pixel
// limit is checked from the header, before any pixel is decoded, so a small
// file that claims to be a huge image (a decompression bomb) costs nothing.
func decodeImage(ctx context.Context, b []byte, maxPixels int) (decoded, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	if len(b) == 0 {
		return decoded{}, fmt.Errorf("%w: no bytes", templates.ErrImageUnreadable)
	}
	f := format(b)
	switch f {
	case "jpeg", "png":
	case "jpeg2000":
		return decodeJPEG2000(b, maxPixels)
	case "":
		return decoded{}, fmt.Errorf("%w: not a JPEG, PNG or JPEG 2000 file", templates.ErrImageUnreadable)
	default:
		return decoded{}, fmt.Errorf("%w: got %s", templates.ErrUnsupportedFormat, f)
	}
	// A PNG starts with its IHDR chunk: refuse huge dimensions even where
	// the decoder would call them an overflow.
	if f == "png" && len(b) >= 24 && string(b[12:16]) == "IHDR" {
		w, h := binary.BigEndian.Uint32(b[16:20]), binary.BigEndian.Uint32(b[20:24])
		if uint64(w)*uint64(h) > uint64(maxPixels) {
			return decoded{}, fmt.Errorf("%w: %dx%d pixels, the limit is %d", templates.ErrImageTooLarge, w, h, maxPixels)
		}
	}
	var cfg image.Config
	var err error
	if f == "jpeg" {
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(b))
	} else {
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	}
	if err != nil {
		return decoded{}, fmt.Errorf("%w: %s header: %v", templates.ErrImageUnreadable, f, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return decoded{}, fmt.Errorf("%w: %dx%d pixels", templates.ErrImageUnreadable, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return decoded{}, fmt.Errorf("%w: %dx%d pixels, the limit is %d", templates.ErrImageTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	if f == "png" && (cfg.Width > 65535 || cfg.Height > 65535) {
		// Beyond what any camera or scanner delivers, and beyond what
		// OpenCV's Mat dimensions are checked against here.
		return decoded{}, fmt.Errorf("%w: %dx%d pixels, the limit is 65535 on a side", templates.ErrImageTooLarge, cfg.Width, cfg.Height)
	}
	var img image.Image
	r := &ctxReader{ctx: ctx, r: bytes.NewReader(b)}
	if f == "jpeg" {
		img, err = jpeg.Decode(r)
	} else {
		img, err = png.Decode(r)
	}
	if cerr := ctx.Err(); cerr != nil {
		return decoded{}, cerr
	}
	if err != nil {
		// Truncated or corrupt data: refuse it rather than let a lenient
		// decoder fill the missing part with grey.
		return decoded{}, fmt.Errorf("%w: %s: %v", templates.ErrImageUnreadable, f, err)
	}
	return decoded{img: img}, nil
}

// decodeJPEG2000 decodes a JPEG 2000 image (a JP2 file or a bare
// codestream) through OpenCV, whose Debian build reads it with OpenJPEG; Go
// has no decoder. The size comes from the JP2 header or the codestream's SIZ
// marker (facerecord.ImageInfo) before anything is decoded.
func decodeJPEG2000(b []byte, maxPixels int) (decoded, error) {
	_, w, h, err := facerecord.ImageInfo(b)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: jpeg2000 header: %v", templates.ErrImageUnreadable, err)
	}
	if w <= 0 || h <= 0 {
		return decoded{}, fmt.Errorf("%w: %dx%d pixels", templates.ErrImageUnreadable, w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) || w > 65535 || h > 65535 {
		return decoded{}, fmt.Errorf("%w: %dx%d pixels, the limit is %d", templates.ErrImageTooLarge, w, h, maxPixels)
	}
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil {
		return decoded{}, fmt.Errorf("%w: jpeg2000: %v", templates.ErrImageUnreadable, err)
	}
	defer m.Close()
	if m.Empty() || m.Cols() != w || m.Rows() != h {
		return decoded{}, fmt.Errorf("%w: jpeg2000: OpenCV decoded %dx%d of a %dx%d image", templates.ErrImageUnreadable, m.Cols(), m.Rows(), w, h)
	}
	img, err := m.ToImage()
	if err != nil {
		return decoded{}, fmt.Errorf("%w: jpeg2000: %v", templates.ErrImageUnreadable, err)
	}
	return decoded{img: img}, nil
}

// ctxReader fails its reads once ctx is done, so that the decoders stop
// early in the image of a call that was given up.
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
