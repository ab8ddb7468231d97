package face

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

func gifBytes(t testing.TB) []byte {
	var b bytes.Buffer
	if err := gif.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is the start of a PNG whose IHDR claims w x h RGB pixels, with
// no pixel data.
func pngHeader(w, h uint32) []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// jpegHeader is the start of a baseline JFIF JPEG claiming w x h pixels,
// with no pixel data.
func jpegHeader(w, h uint16) []byte {
	b := []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	b = append(b, 0xff, 0xc0, 0x00, 0x11, 8)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	return append(b, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1)
}

func encoded(t testing.TB, img image.Image, asPNG bool) []byte {
	var b bytes.Buffer
	var err error
	if asPNG {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeImage(t *testing.T) {
	rgb := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 7)
		if i%4 == 3 {
			rgb.Pix[i] = 255
		}
	}
	grey := image.NewGray(image.Rect(0, 0, 40, 30))
	for _, tc := range []struct {
		name string
		b    []byte
		grey bool
	}{
		{"colour jpeg", encoded(t, rgb, false), false},
		{"grey jpeg", encoded(t, grey, false), true},
		{"png", encoded(t, rgb, true), false},
		{"grey png", encoded(t, grey, true), true},
	} {
		d, err := decodeImage(context.Background(), tc.b, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.img.Bounds() != rgb.Bounds() {
			t.Fatalf("%s: bounds %v", tc.name, d.img.Bounds())
		}
		// What the detectors and networks get is always 3-channel RGB, the
		// PNG's pixels exactly.
		px := toRGB(d.img)
		if px.w != 40 || px.h != 30 || len(px.pix) != 40*30*3 {
			t.Fatalf("%s: %dx%d, %d bytes", tc.name, px.w, px.h, len(px.pix))
		}
		if tc.name == "png" {
			for i := 0; i < 40*30; i++ {
				if px.pix[3*i] != rgb.Pix[4*i] || px.pix[3*i+1] != rgb.Pix[4*i+1] || px.pix[3*i+2] != rgb.Pix[4*i+2] {
					t.Fatalf("png: pixel %d is %v, want %v", i, px.pix[3*i:3*i+3], rgb.Pix[4*i:4*i+3])
				}
			}
		}
		if tc.grey {
			for i := 0; i < 40*30; i++ {
				if px.pix[3*i] != px.pix[3*i+1] || px.pix[3*i] != px.pix[3*i+2] {
					t.Fatalf("%s: pixel %d is %v, not grey", tc.name, i, px.pix[3*i:3*i+3])
				}
			}
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"jpeg bomb", jpegHeader(65000, 65000), templates.ErrImageTooLarge},
		{"png bomb", pngHeader(1<<31-1, 1<<31-1), templates.ErrImageTooLarge},
		{"png zero width", pngHeader(0, 10), templates.ErrImageUnreadable},
		{"jpeg header, no data", jpegHeader(100, 100), templates.ErrImageUnreadable},
		{"gif", gifBytes(t), templates.ErrUnsupportedFormat},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), templates.ErrUnsupportedFormat},
		{"tiff", []byte("II*\x00\x08\x00\x00\x00"), templates.ErrUnsupportedFormat},
		{"html", []byte("<html>"), templates.ErrImageUnreadable},
	} {
		if _, err := decodeImage(context.Background(), tc.b, DefaultMaxPixels); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Transparent pixels go onto black.
	clear := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	clear.Set(1, 1, color.NRGBA{255, 255, 255, 0})
	d, err := decodeImage(context.Background(), encoded(t, clear, true), 0)
	if err != nil {
		t.Fatal(err)
	}
	px := toRGB(d.img)
	if p := px.pix[3*(8+1) : 3*(8+1)+3]; int(p[0])+int(p[1])+int(p[2]) > 3*8 {
		t.Fatalf("a transparent white pixel became %v", p)
	}
}

// FuzzDecodeImage: the decoding front sees untrusted bytes from the network
// and must answer every input with an image or one of its errors, never a
// panic.
func FuzzDecodeImage(f *testing.F) {
	rgb := image.NewRGBA(image.Rect(0, 0, 16, 12))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 13)
	}
	j := encoded(f, rgb, false)
	p := encoded(f, rgb, true)
	for _, seed := range [][]byte{j, p, j[:len(j)/2], p[:len(p)/2], encoded(f, image.NewGray(rgb.Rect), false),
		pngHeader(100000, 100000), pngHeader(16, 12), jpegHeader(65000, 65000), jpegHeader(16, 12), gifBytes(f), nil, []byte("\xff\xd8\xff")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 20 // keeps the fuzzer's memory use small
		d, err := decodeImage(context.Background(), b, limit)
		if err != nil {
			for _, want := range []error{templates.ErrImageUnreadable, templates.ErrUnsupportedFormat, templates.ErrImageTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("unexpected error kind: %v", err)
		}
		if d.img == nil {
			t.Fatalf("no image and no error")
		}
		if n := d.img.Bounds().Dx() * d.img.Bounds().Dy(); n > limit || n <= 0 {
			t.Fatalf("decoded %v past the %d pixel limit", d.img.Bounds(), limit)
		}
	})
}
