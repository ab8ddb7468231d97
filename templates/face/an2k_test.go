package face

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bordermatch/bordermatch/templates/an2k"
)

// TestAN2KJPEG2000 decodes, through OpenCV, every JPEG 2000 image
// (CGA JP2 or JP2L) of the ANSI/NIST-ITL test files, which templates/an2k
// leaves to callers that link a JPEG 2000 decoder: each decodes at the
// size its record declares.
func TestAN2KJPEG2000(t *testing.T) {
	var files []string
	for _, p := range []string{"*.an2", "*.an2k"} {
		m, _ := filepath.Glob(filepath.Join("..", "an2k", "testdata", p))
		files = append(files, m...)
	}
	n := 0
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := an2k.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for i := range tr.Records {
			im, err := tr.Image(i)
			if err != nil || im.Compression != "jpeg2000" {
				continue
			}
			d, err := decodeImage(context.Background(), im.Data, DefaultMaxPixels)
			if err != nil {
				t.Errorf("%s record %d: %v", filepath.Base(path), i, err)
				continue
			}
			if b := d.img.Bounds(); b.Dx() != im.Width || b.Dy() != im.Height {
				t.Errorf("%s record %d: decoded %d×%d, the record declares %d×%d", filepath.Base(path), i, b.Dx(), b.Dy(), im.Width, im.Height)
			}
			t.Logf("%s record %d (Type-%d): JPEG 2000 %d×%d decoded", filepath.Base(path), i, tr.Records[i].Type, im.Width, im.Height)
			n++
		}
	}
	// type9-15.an2k's Type-15 palm (JP2L) is the only one in the files.
	if n != 1 {
		t.Errorf("%d JPEG 2000 images decoded, want 1", n)
	}
}
