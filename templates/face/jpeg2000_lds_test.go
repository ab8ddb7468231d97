package face

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bordermatch/bordermatch/templates/lds"
)

// TestJPEG2000LDSImages: the libbiomeval JPEG 2000 test image (908×1007
// grey) and the two JPEG 2000 iris images of the BSI 2008 test passport's
// DG4 (163×149 and 160×152, as templates/lds reads them from their JP2
// headers) decode through OpenCV at those sizes. templates/lds leaves
// JPEG 2000 undecoded (lds.ErrNeedsJPEG2000); this is where it decodes.
func TestJPEG2000LDSImages(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", "lds", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type image struct {
		name string
		b    []byte
		w, h int
	}
	images := []image{{"img.jp2", read("img.jp2"), 908, 1007}}
	irises, err := lds.ParseDG4(read("bsi2008/Datagroup4.bin"))
	if err != nil || len(irises) != 2 {
		t.Fatalf("DG4: %d irises, %v", len(irises), err)
	}
	for i, want := range [][2]int{{163, 149}, {160, 152}} {
		ir := irises[i]
		if ir.Compression != lds.CompressionJPEG2000 || ir.ImageWidth != want[0] || ir.ImageHeight != want[1] {
			t.Fatalf("DG4 iris %d: %v %d×%d", i+1, ir.Compression, ir.ImageWidth, ir.ImageHeight)
		}
		images = append(images, image{"DG4 iris " + ir.Eye.String(), ir.Image, want[0], want[1]})
	}
	for _, im := range images {
		d, err := decodeImage(context.Background(), im.b, DefaultMaxPixels)
		if err != nil {
			t.Fatalf("%s: %v", im.name, err)
		}
		if b := d.img.Bounds(); b.Dx() != im.w || b.Dy() != im.h {
			t.Errorf("%s decodes to %v, want %d×%d", im.name, b, im.w, im.h)
		}
	}
}
