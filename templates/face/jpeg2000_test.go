package face

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/facerecord"
)

// chipPhoto is the JPEG 2000 photo of the BSI 2008 test passport's DG2.
func chipPhoto(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "facerecord", "testdata", "bsi2008", "Datagroup2.bin"))
	if err != nil {
		t.Fatal(err)
	}
	faces, err := facerecord.ParseDG2(b)
	if err != nil || len(faces) != 1 || faces[0].ImageType != facerecord.ImageJPEG2000 {
		t.Fatalf("DG2: %d faces, %v", len(faces), err)
	}
	return faces[0].Image
}

// TestJPEG2000ChipPhoto: the test passport's chip photo (JPEG 2000 in its
// DG2) decodes through OpenCV at the size its header declares, and it
// verifies, with the default model, against the same photo re-encoded as
// a JPEG as a gate camera's frame would be.
func TestJPEG2000ChipPhoto(t *testing.T) {
	jp2 := chipPhoto(t)
	d, err := decodeImage(context.Background(), jp2, DefaultMaxPixels)
	if err != nil {
		t.Fatal(err)
	}
	if b := d.img.Bounds(); b.Dx() != 413 || b.Dy() != 531 {
		t.Fatalf("decoded %v, want 413×531", b)
	}
	// The pixel limit applies before decoding, from the header.
	if _, err := decodeImage(context.Background(), jp2, 413*531-1); !errors.Is(err, templates.ErrImageTooLarge) {
		t.Fatalf("over the pixel limit: %v", err)
	}
	// A damaged codestream is refused, not decoded to grey.
	bad := bytes.Clone(jp2)
	for i := len(bad) / 2; i < len(bad); i++ {
		bad[i] = 0
	}
	if _, err := decodeImage(context.Background(), bad[:len(bad)*2/3], DefaultMaxPixels); !errors.Is(err, templates.ErrImageUnreadable) {
		t.Fatalf("a damaged, truncated JPEG 2000: %v", err)
	}

	var frame bytes.Buffer
	if err := jpeg.Encode(&frame, d.img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	ex := onnxExtractor(t)
	ref, err := ex.Extract(jp2, templates.ExtractOptions{})
	if err != nil {
		t.Fatalf("chip photo: %v", err)
	}
	live, err := ex.Extract(frame.Bytes(), templates.ExtractOptions{})
	if err != nil {
		t.Fatalf("its frame: %v", err)
	}
	score := cosine(ref.Template.Vector, live.Template.Vector)
	// engine.DefaultThresholds' threshold of the default model (FMR 0.1%
	// on the shared photos); this package sits below the engine.
	const thr = 0.4642
	t.Logf("chip photo (JPEG 2000, 413×531) vs the same photo as a JPEG frame: cosine %.4f, threshold %.4f", score, thr)
	if score < float64(thr) {
		t.Fatalf("cosine %.4f under the default threshold %.4f", score, thr)
	}
}
