package finger

import (
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// TestDump draws, for each image in FINGER_DUMP (comma-separated paths),
// a PNG beside it in FINGER_DUMP_DIR (default: the temp dir): the image
// with the background tinted blue on the left, the binary ridges (grey)
// and skeleton (black) on the right, and the kept minutiae on both
// (endings red, bifurcations green). FINGER_DPI sets the resolution
// (default 500). For looking at the pairs FINGER_WORST=1 lists.
func TestDump(t *testing.T) {
	list := os.Getenv("FINGER_DUMP")
	if list == "" {
		t.Skip("FINGER_DUMP not set")
	}
	dir := os.Getenv("FINGER_DUMP_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "fingerdump")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dpi := 500
	if v, err := strconv.Atoi(os.Getenv("FINGER_DPI")); err == nil {
		dpi = v
	}
	e := NewExtractor(Config{})
	for _, f := range strings.Split(list, ",") {
		g := loadGray(t, f)
		p := newPipeline(e, g, dpi)
		res, err := p.run(context.Background())
		t.Logf("%s: err %v, quality %d, %d minutiae", f, err, res.Quality, len(res.View.Minutiae))
		w, h := p.w, p.h
		out := image.NewRGBA(image.Rect(0, 0, 2*w, h))
		for y := range h {
			for x := range w {
				i := y*w + x
				v := g.GrayAt(g.Bounds().Min.X+x, g.Bounds().Min.Y+y).Y
				left, right := color.RGBA{v, v, v, 255}, color.RGBA{255, 255, 255, 255}
				switch {
				case p.mask != nil && !p.mask[i]:
					left, right = color.RGBA{v / 2, v / 2, v, 255}, color.RGBA{200, 200, 255, 255}
				case p.skel != nil && p.skel[i] != 0:
					right = color.RGBA{0, 0, 0, 255}
				case p.ridge != nil && p.ridge[i]:
					right = color.RGBA{160, 160, 160, 255}
				}
				out.Set(x, y, left)
				out.Set(w+x, y, right)
			}
		}
		for _, m := range res.View.Minutiae {
			c := color.RGBA{255, 0, 0, 255}
			if m.Kind == minutiae.KindBifurcation {
				c = color.RGBA{0, 160, 0, 255}
			}
			for _, off := range []int{0, w} {
				for d := -2; d <= 2; d++ {
					out.Set(off+m.X+d, m.Y-2, c)
					out.Set(off+m.X+d, m.Y+2, c)
					out.Set(off+m.X-2, m.Y+d, c)
					out.Set(off+m.X+2, m.Y+d, c)
				}
			}
		}
		name := filepath.Base(filepath.Dir(f)) + "_" + strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)) + ".png"
		fo, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(fo, out); err != nil {
			t.Fatal(err)
		}
		if err := fo.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
