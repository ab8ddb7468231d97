package fprint

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// scanFolder writes one FVC impression in each format the extractor reads,
// plus files a replay must skip or report.
func scanFolder(t *testing.T) (dir string, src *image.Gray) {
	t.Helper()
	dir = t.TempDir()
	tif, err := os.ReadFile("../../templates/finger/testdata/fvc2002_db1_b/101_2.tif")
	if err != nil {
		t.Fatal(err)
	}
	src, _, err = fpimage.Decode(tif)
	if err != nil {
		t.Fatal(err)
	}
	wsq, err := os.ReadFile("../wsq/testdata/nist-img.wsq")
	if err != nil {
		t.Fatal(err)
	}
	var pngb, jpgb, bmpb bytes.Buffer
	if err := png.Encode(&pngb, src); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpgb, src, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bmpb, src); err != nil {
		t.Fatal(err)
	}
	// A BMP declaring 1000 dpi (39,370 pixels a metre) in its header.
	b := bmpb.Bytes()
	binary.LittleEndian.PutUint32(b[38:], 39370)
	binary.LittleEndian.PutUint32(b[42:], 39370)
	for name, data := range map[string][]byte{
		"1-fvc.tif":     tif,
		"2-nist.wsq":    wsq,
		"3-plain.png":   pngb.Bytes(),
		"4-upper.JPG":   jpgb.Bytes(),
		"5-1000dpi.bmp": b,
		"notes.txt":     []byte("not a scan"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "0-subdir.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, src
}

func TestFolderReplay(t *testing.T) {
	dir, src := scanFolder(t)
	type want struct {
		file string
		w, h int
		dpi  int
	}
	fvc := func(file string, dpi int) want { return want{file, src.Rect.Dx(), src.Rect.Dy(), dpi} }
	for _, tc := range []struct {
		name string
		cfg  FolderConfig
		want []want
	}{
		{"default resolution", FolderConfig{}, []want{
			fvc("1-fvc.tif", 500),         // FVC's TIFFs declare 1×1 dpi: the default
			{"2-nist.wsq", 256, 256, 500}, // declared in the WSQ's NISTCOM
			fvc("3-plain.png", 500),
			fvc("4-upper.JPG", 500),
			fvc("5-1000dpi.bmp", 1000), // declared in the header
		}},
		{"configured resolution for undeclared", FolderConfig{DPI: 569}, []want{
			fvc("1-fvc.tif", 569),
			{"2-nist.wsq", 256, 256, 500},
			fvc("3-plain.png", 569),
			fvc("4-upper.JPG", 569),
			fvc("5-1000dpi.bmp", 1000),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFolder(dir, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Name() != dir || len(f.Files()) != len(tc.want) {
				t.Fatalf("folder %s lists %v", f.Name(), f.Files())
			}
			var s Scanner = f
			for _, w := range tc.want {
				sc, err := s.Capture(context.Background())
				if err != nil {
					t.Fatalf("%s: %v", w.file, err)
				}
				if filepath.Base(sc.Source) != w.file || sc.Image.Rect.Dx() != w.w || sc.Image.Rect.Dy() != w.h || sc.DPI != w.dpi || sc.Device != dir || sc.Time.IsZero() {
					t.Errorf("got %s %v at %d dpi from %q, want %+v", sc.Source, sc.Image.Rect, sc.DPI, sc.Device, w)
				}
				// The lossless formats give back the scanner's pixels.
				if ext := strings.ToLower(filepath.Ext(w.file)); ext != ".jpg" && ext != ".wsq" && !bytes.Equal(sc.Image.Pix, src.Pix) {
					t.Errorf("%s: pixels differ from the source TIFF's", w.file)
				}
			}
			if _, err := s.Capture(context.Background()); !errors.Is(err, io.EOF) {
				t.Fatalf("past the last image: %v, want io.EOF", err)
			}
		})
	}
}

func TestFolderScanExtracts(t *testing.T) {
	dir, _ := scanFolder(t)
	f, err := OpenFolder(dir, FolderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := f.Capture(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := finger.NewExtractor(finger.Config{}).Extract(sc.Image, sc.DPI)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.View.Minutiae) < 10 || res.Quality < 20 {
		t.Fatalf("%s: %d minutiae, quality %d", sc.Source, len(res.View.Minutiae), res.Quality)
	}
}

func TestFolderLoopAndRewind(t *testing.T) {
	dir, _ := scanFolder(t)
	f, err := OpenFolder(dir, FolderConfig{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.Files())
	var got []string
	for range 2*n + 1 {
		sc, err := f.Capture(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(sc.Source))
	}
	if got[0] != got[n] || got[0] != got[2*n] || got[1] != got[n+1] {
		t.Fatalf("looped replay: %v", got)
	}
	f.Rewind()
	if sc, _ := f.Capture(context.Background()); filepath.Base(sc.Source) != got[0] {
		t.Fatalf("after Rewind: %s, want %s", sc.Source, got[0])
	}
}

func TestFolderErrors(t *testing.T) {
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "readme.txt"), []byte("x"), 0o644)
	for _, tc := range []struct {
		name, dir string
		cfg       FolderConfig
		want      string
	}{
		{"missing directory", filepath.Join(empty, "nope"), FolderConfig{}, "no such file"},
		{"no images", empty, FolderConfig{}, "has no fingerprint images"},
		{"negative resolution", empty, FolderConfig{DPI: -1}, "negative resolution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFolder(tc.dir, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenFolder: %v, %v; want an error with %q", f, err, tc.want)
			}
		})
	}

	// A file that does not decode is reported by name, and the replay
	// goes on past it.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a-broken.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	tif, _ := os.ReadFile("../../templates/finger/testdata/fvc2002_db1_b/102_1.tif")
	os.WriteFile(filepath.Join(dir, "b-good.tif"), tif, 0o644)
	f, err := OpenFolder(dir, FolderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Capture(context.Background())
	if !errors.Is(err, fpimage.ErrUnsupportedImage) || !strings.Contains(err.Error(), "a-broken.png") {
		t.Fatalf("broken image: %v", err)
	}
	if sc, err := f.Capture(context.Background()); err != nil || filepath.Base(sc.Source) != "b-good.tif" {
		t.Fatalf("after a broken image: %v %v", sc.Source, err)
	}

	f.Rewind()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Capture(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	f.Close()
	if _, err := f.Capture(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
