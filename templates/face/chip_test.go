package face

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"path/filepath"
	"testing"
)

func readPNG(t testing.TB, path string) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(read(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func chipDescriber(t testing.TB, tfjsInputScale bool) *ChipDescriber {
	t.Helper()
	c, err := newChipDescriber(filepath.Join(modelsDir(), ModelFiles[0]), tfjsInputScale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConvertedModelReference runs the network that models/build.sh
// converted from face-api's TF.js weights on the 150x150 chips face-api's
// tests use, and compares with the descriptors face-api (TF.js, the same
// weights) computed for them: the conversion must reproduce them.
//
// It also measures the one known difference between the two: dlib divides
// input pixels by 256, TF.js by 255. The model keeps dlib's 256, as dlib's
// original model (which computed idols.json) does.
func TestConvertedModelReference(t *testing.T) {
	dlib := chipDescriber(t, false)
	tfjs := chipDescriber(t, true)
	for _, tc := range []struct{ chip, ref string }{
		{"face1.png", "faceDescriptor1.json"},
		{"face2.png", "faceDescriptor2.json"},
	} {
		img := readPNG(t, filepath.Join(faces, "reference", tc.chip))
		got, err := dlib.Describe(img)
		if err != nil {
			t.Fatal(err)
		}
		as255, err := tfjs.Describe(img)
		if err != nil {
			t.Fatal(err)
		}
		var want []float32
		if err := json.Unmarshal(read(t, filepath.Join(faces, "reference", tc.ref)), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != 128 || len(want) != 128 {
			t.Fatalf("%s: %d and %d values", tc.chip, len(got), len(want))
		}
		c := cosine(got, want)
		t.Logf("%s: cosine %.5f (Euclidean %.4f) with face-api's %s", tc.chip, c, euclid(got, want), tc.ref)
		t.Logf("%s: pixels/255 as TF.js: cosine %.5f (Euclidean %.4f) with face-api; /255 vs /256: cosine %.6f (Euclidean %.4f)",
			tc.chip, cosine(as255, want), euclid(as255, want), cosine(as255, got), euclid(as255, got))
		if c < 0.99 {
			t.Errorf("%s: cosine %.4f with face-api's descriptor, want >= 0.99", tc.chip, c)
		}
	}
}

func TestChipDescriberErrors(t *testing.T) {
	if _, err := NewChipDescriber(t.TempDir()); err == nil {
		t.Fatal("no error without a model file")
	}
	c := chipDescriber(t, false)
	if _, err := c.Describe(image.NewRGBA(image.Rect(0, 0, 100, 150))); err == nil {
		t.Fatal("no error for a 100x150 chip")
	}
	c.Close()
	if _, err := c.Describe(image.NewRGBA(image.Rect(0, 0, 150, 150))); err == nil {
		t.Fatal("no error after Close")
	}
}
