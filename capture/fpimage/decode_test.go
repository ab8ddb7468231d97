package fpimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// fvcTIFF is a committed FVC2002 image (templates/finger/testdata/SOURCES.md).
const fvcTIFF = "../../templates/finger/testdata/fvc2002_db1_b/101_1.tif"

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// withPHYs inserts a pHYs chunk (dots per metre) after a PNG's IHDR.
func withPHYs(b []byte, ppm uint32) []byte {
	chunk := make([]byte, 0, 21)
	chunk = binary.BigEndian.AppendUint32(chunk, 9)
	body := []byte("pHYs")
	body = binary.BigEndian.AppendUint32(body, ppm)
	body = binary.BigEndian.AppendUint32(body, ppm)
	body = append(body, 1)
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	ihdrEnd := 8 + 4 + 4 + 13 + 4
	return append(append(append([]byte{}, b[:ihdrEnd]...), chunk...), b[ihdrEnd:]...)
}

func TestDecode(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fvcTIFF))
	if err != nil {
		t.Fatal(err)
	}
	g, info, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	// FVC's TIFFs declare 1×1 dpi: no usable resolution.
	if info != (Info{Format: "tiff", Width: 388, Height: 374, DPI: 0}) {
		t.Errorf("FVC TIFF info %+v", info)
	}
	enc := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pngB := enc(func(b *bytes.Buffer) error { return png.Encode(b, g) })
	wsqB, err := os.ReadFile(filepath.Join("..", "wsq", "testdata", "nist-img.wsq"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		b        []byte
		format   string
		dpi      int
		maxDelta int // tolerated grey difference to the original (lossy)
	}{
		{"png", pngB, "png", 0, 0},
		{"png 500 dpi", withPHYs(pngB, 19685), "png", 500, 0},
		{"png 1 dpi", withPHYs(pngB, 39), "png", 0, 0},
		{"bmp", enc(func(b *bytes.Buffer) error { return bmp.Encode(b, g) }), "bmp", 0, 0},
		{"tiff", enc(func(b *bytes.Buffer) error { return tiff.Encode(b, g, nil) }), "tiff", 0, 0},
		{"jpeg", enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, g, &jpeg.Options{Quality: 95}) }), "jpeg", 0, 40},
		{"wsq", wsqB, "wsq", 500, -1},
	} {
		d, info, err := Decode(c.b)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if info.Format != c.format || info.DPI != c.dpi || info.Width != d.Rect.Dx() || info.Height != d.Rect.Dy() {
			t.Errorf("%s: info %+v", c.name, info)
		}
		if c.maxDelta < 0 {
			continue
		}
		worst := 0
		for y := range g.Rect.Dy() {
			for x := range g.Rect.Dx() {
				worst = max(worst, abs(int(g.GrayAt(x, y).Y)-int(d.GrayAt(x, y).Y)))
			}
		}
		if worst > c.maxDelta {
			t.Errorf("%s: a pixel differs by %d", c.name, worst)
		}
	}
	for _, bad := range [][]byte{nil, []byte("GIF89a"), pngB[:100], []byte("\xff\xa0\xff\xa8")} {
		if _, _, err := Decode(bad); !errors.Is(err, ErrUnsupportedImage) {
			t.Errorf("%q: got %v, want ErrUnsupportedImage", bad[:min(len(bad), 8)], err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	if b, err := os.ReadFile(fvcTIFF); err == nil {
		f.Add(b[:4096])
	}
	if b, err := os.ReadFile(filepath.Join("..", "wsq", "testdata", "nist-img.wsq")); err == nil {
		f.Add(b)
	}
	g := image.NewGray(image.Rect(0, 0, 8, 8))
	var b bytes.Buffer
	png.Encode(&b, g)
	f.Add(withPHYs(b.Bytes(), 19685))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, info, err := Decode(b)
		if err != nil {
			return
		}
		if g.Rect.Dx() != info.Width || g.Rect.Dy() != info.Height || (info.DPI != 0 && !PlausibleDPI(info.DPI)) {
			t.Fatalf("info %+v for %v", info, g.Rect)
		}
	})
}
