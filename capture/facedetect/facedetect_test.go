package facedetect

import (
	"errors"
	"image"
	"image/draw"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"
)

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "models")
}

func photo(t *testing.T, path string) (grey, rgb Image) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	g := image.NewGray(b)
	draw.Draw(g, b, img, b.Min, draw.Src)
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, img, b.Min, draw.Src)
	px := make([]byte, 0, b.Dx()*b.Dy()*3)
	for i := 0; i < len(rgba.Pix); i += 4 {
		px = append(px, rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2])
	}
	return Image{Pix: g.Pix, W: b.Dx(), H: b.Dy(), Stride: g.Stride, Channels: 1},
		Image{Pix: px, W: b.Dx(), H: b.Dy(), Stride: 3 * b.Dx(), Channels: 3}
}

// TestDetect: the HOG and CNN detectors find the face of a portrait, in
// grey and in colour, upsampled or not, with the 68 landmarks inside its
// box, and nothing in a blank image.
func TestDetect(t *testing.T) {
	s, err := OpenShapes(filepath.Join(modelsDir(), ShapesFile))
	if err != nil {
		t.Fatalf("%v (run `make models`, or set BORDERMATCH_MODELS)", err)
	}
	defer s.Close()
	d, err := NewDetector(s, filepath.Join(modelsDir(), CNNFile))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	grey, rgb := photo(t, "../../testdata/faces/idols/joy/1.jpg")
	for _, tc := range []struct {
		name string
		img  Image
		opt  Options
	}{
		{"grey", grey, Options{}},
		{"rgb", rgb, Options{}},
		{"rgb upsampled", rgb, Options{Upsample: 1}},
		{"cnn", rgb, Options{CNN: true}},
	} {
		faces, err := d.Detect(tc.img, tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(faces) != 1 {
			t.Fatalf("%s: %d faces", tc.name, len(faces))
		}
		f := faces[0]
		if len(f.Landmarks) != s.Points() || s.Points() != 68 || f.Box.Dx() < 80 || f.Confidence <= 0 {
			t.Fatalf("%s: %+v", tc.name, f)
		}
		in := f.Box.Inset(-f.Box.Dx() / 4)
		for i, p := range f.Landmarks {
			if !image.Pt(int(p[0]), int(p[1])).In(in) {
				t.Fatalf("%s: landmark %d at %v, outside the box %v", tc.name, i, p, f.Box)
			}
		}
		t.Logf("%s: box %v, confidence %.2f", tc.name, f.Box, f.Confidence)
	}
	blank := Image{Pix: make([]byte, 200*200), W: 200, H: 200, Stride: 200, Channels: 1}
	if faces, err := d.Detect(blank, Options{}); err != nil || len(faces) != 0 {
		t.Fatalf("blank image: %v, %v", faces, err)
	}
	for _, bad := range []Image{
		{Pix: make([]byte, 10), W: 10, H: 10, Stride: 10, Channels: 1},
		{Pix: make([]byte, 300), W: 10, H: 10, Stride: 30, Channels: 2},
		{W: 0, H: 10, Stride: 0, Channels: 1},
	} {
		if _, err := d.Detect(bad, Options{}); err == nil {
			t.Errorf("no error for %dx%d, %d channels, stride %d, %d bytes", bad.W, bad.H, bad.Channels, bad.Stride, len(bad.Pix))
		}
	}
	d.Close()
	if _, err := d.Detect(grey, Options{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestSharedShapes: a process loads a predictor file once, and frees it
// with its last user.
func TestSharedShapes(t *testing.T) {
	path := filepath.Join(modelsDir(), ShapesFile)
	a, err := OpenShapes(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenShapes(path)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || loaded() != 1 {
		t.Fatalf("opened twice: %p %p, %d loaded", a, b, loaded())
	}
	a.Close()
	d, err := NewDetector(b, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, rgb := photo(t, "../../testdata/faces/bbt/amy/1.png")
	if _, err := d.Detect(rgb, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Detect(rgb, Options{CNN: true}); err == nil {
		t.Fatal("a CNN search without the CNN loaded")
	}
	b.Close()
	if loaded() != 0 {
		t.Fatalf("%d predictors left loaded", loaded())
	}
	if _, err := OpenShapes(filepath.Join(t.TempDir(), "none.dat")); err == nil {
		t.Fatal("no error for a missing file")
	}
}
