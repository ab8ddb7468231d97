package fpimage

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"testing"
	"time"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecodeHeader: the size and depth a decode will cost, from the
// header alone.
func TestDecodeHeader(t *testing.T) {
	for _, tc := range []struct {
		img  image.Image
		want int
	}{
		{image.NewGray(image.Rect(0, 0, 40, 30)), 1},
		{image.NewGray16(image.Rect(0, 0, 40, 30)), 2},
		{image.NewNRGBA(image.Rect(0, 0, 40, 30)), 4},
		{image.NewNRGBA64(image.Rect(0, 0, 40, 30)), 8},
	} {
		h, err := DecodeHeader(encodePNG(t, tc.img))
		if err != nil {
			t.Fatal(err)
		}
		if h.Format != "png" || h.Width != 40 || h.Height != 30 || h.BytesPerPixel != tc.want || h.Pixels() != 1200 {
			t.Errorf("%T: header %+v, want 40×30 png of %d bytes a pixel", tc.img, h, tc.want)
		}
	}
	if _, err := DecodeHeader([]byte("not an image")); !errors.Is(err, ErrUnsupportedImage) {
		t.Errorf("garbage: %v", err)
	}
}

// TestDecodeContextStops: a decompression bomb's decoding stops soon after
// its caller gives up, not when the image is whole.
func TestDecodeContextStops(t *testing.T) {
	bomb := encodePNG(t, image.NewNRGBA64(image.Rect(0, 0, 3900, 3900)))
	start := time.Now()
	if _, _, err := DecodeContext(context.Background(), bomb); err != nil {
		t.Fatal(err)
	}
	whole := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), whole/10)
	defer cancel()
	start = time.Now()
	_, _, err := DecodeContext(ctx, bomb)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("decoding past its deadline: %v", err)
	}
	t.Logf("a whole decode takes %v; one given up after %v returned after %v", whole, whole/10, took)
	if took > whole/2 {
		t.Errorf("a decode given up after %v returned after %v (a whole one takes %v)", whole/10, took, whole)
	}
}
