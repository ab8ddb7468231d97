package finger

import (
	"context"
	"errors"
	"image"
	"math"
	"testing"
)

// TestExtractContextCancelled: an extraction whose caller has given up
// stops with the context's error rather than running its stages.
func TestExtractContextCancelled(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 400, 400))
	for y := range 400 {
		for x := range 400 {
			g.Pix[y*g.Stride+x] = uint8(128 + 100*math.Sin(2*math.Pi*math.Hypot(float64(x-200), float64(y-200))/9))
		}
	}
	e := NewExtractor(Config{})
	if _, err := e.ExtractContext(context.Background(), g, 500); err != nil {
		t.Fatalf("ridges, not cancelled: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.ExtractContext(ctx, g, 500); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}
