package finger

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// fingerprintEnv names the folder of the full fingerprint data, laid out
// like ../shared/testdata/fingerprints (its SOURCES.md): the FVC B sets
// and templates/iso19794-2-2005_secugen_openafis. `make test` sets it
// when that folder exists beside the clone; by hand:
//
//	BORDERMATCH_FINGERPRINT_DATA=../shared/testdata/fingerprints go test ./templates/finger -run Eval -v
const fingerprintEnv = "BORDERMATCH_FINGERPRINT_DATA"

// needData returns the full data folder. Unset, the evaluations on it are
// skipped (the tests on the committed testdata/ run regardless); set to a
// folder without all of the FVC B images, they fail.
func needData(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(fingerprintEnv)
	if dir == "" {
		t.Skipf("%s is not set: skipping the evaluation on the full FVC B sets (set it to a folder laid out like ../shared/testdata/fingerprints; make test does when that folder exists)", fingerprintEnv)
	}
	for _, set := range fvcSets {
		if files, _ := filepath.Glob(filepath.Join(dir, set.name, "*.tif")); len(files) != 80 {
			t.Fatalf("%s=%s: %d of the 80 images of %s; point it at a folder laid out like ../shared/testdata/fingerprints (see its SOURCES.md)",
				fingerprintEnv, dir, len(files), filepath.Join(dir, set.name))
		}
	}
	return dir
}

// fvcSets lists the FVC B sets and their nominal resolutions (SOURCES.md).
var fvcSets = []struct {
	name string
	dpi  int
}{
	{"fvc2002_db1_b", 500}, {"fvc2002_db2_b", 569}, {"fvc2002_db3_b", 500}, {"fvc2002_db4_b", 500},
	{"fvc2000_db1_b", 500}, {"fvc2000_db2_b", 500}, {"fvc2000_db3_b", 500}, {"fvc2000_db4_b", 500},
}

// readSecuGen reads the SecuGen record of an FVC2002 image.
func readSecuGen(t testing.TB, dir, set, tif string) []minutiae.Minutia {
	b, err := os.ReadFile(filepath.Join(dir, "templates/iso19794-2-2005_secugen_openafis", set, strings.TrimSuffix(filepath.Base(tif), ".tif")+".iso"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := minutiae.ParseISO(b)
	if err != nil {
		t.Fatal(err)
	}
	return r.Views[0].Minutiae
}

// pairStats counts the reference minutiae with one of ours within dist
// pixels and ang radians, and ours with a reference one.
func pairStats(ours, ref []minutiae.Minutia, dist, ang float64) (foundRef, foundOurs int) {
	near := func(a, b minutiae.Minutia) bool {
		dx, dy := float64(a.X-b.X), float64(a.Y-b.Y)
		return dx*dx+dy*dy <= dist*dist && angDiff(a.Angle, b.Angle) <= ang
	}
	for _, r := range ref {
		for _, o := range ours {
			if near(r, o) {
				foundRef++
				break
			}
		}
	}
	for _, o := range ours {
		for _, r := range ref {
			if near(r, o) {
				foundOurs++
				break
			}
		}
	}
	return
}

func loadGray(t testing.TB, path string) *image.Gray {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := fpimage.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return g
}

// TestEvalSecuGen compares our minutiae with SecuGen's on FVC2002 B.
func TestEvalSecuGen(t *testing.T) {
	dir := needData(t)
	e := NewExtractor(Config{})
	for _, set := range fvcSets[:4] {
		files, _ := filepath.Glob(filepath.Join(dir, set.name, "*.tif"))
		var nOurs, nRef, fRef, fOurs, fRefLoose int
		var qs []int
		var dur time.Duration
		for _, f := range files {
			g := loadGray(t, f)
			ref := readSecuGen(t, dir, set.name, f)
			ref = secugenFrame(ref, g.Bounds().Dx(), g.Bounds().Dy())
			t0 := time.Now()
			res, err := e.Extract(g, set.dpi)
			dur += time.Since(t0)
			if err != nil {
				t.Logf("%s: %v", f, err)
				continue
			}
			ours := inSecugenCanvas(res.View.Minutiae, g.Bounds().Dx(), g.Bounds().Dy())
			a, b := pairStats(ours, ref, 12, math.Pi/6)
			c, _ := pairStats(ours, ref, 12, math.Pi)
			nOurs += len(ours)
			nRef += len(ref)
			fRef += a
			fOurs += b
			fRefLoose += c
			qs = append(qs, res.Quality)
		}
		sort.Ints(qs)
		low := sort.SearchInts(qs, DefaultQualityFloor)
		t.Logf("%s: %d images, minutiae ours %.1f / SecuGen %.1f per image; recall %.1f%% (position only %.1f%%), precision %.1f%%; quality median %d min %d, %d under the default floor; %.1f ms/image",
			set.name, len(files), float64(nOurs)/float64(len(files)), float64(nRef)/float64(len(files)),
			100*float64(fRef)/float64(nRef), 100*float64(fRefLoose)/float64(nRef), 100*float64(fOurs)/float64(nOurs),
			qs[len(qs)/2], qs[0], low, float64(dur.Milliseconds())/float64(len(files)))
	}
}

// TestDebugDraw writes minutiae drawn over images to $FINGER_DEBUG_DIR
// (ours in red/blue, SecuGen's in green when BORDERMATCH_FINGERPRINT_DATA is set).
func TestDebugDraw(t *testing.T) {
	out := os.Getenv("FINGER_DEBUG_DIR")
	if out == "" {
		t.Skip("FINGER_DEBUG_DIR not set")
	}
	files := strings.Split(os.Getenv("FINGER_DEBUG_FILES"), ",")
	e := NewExtractor(Config{})
	for _, f := range files {
		if f == "" {
			continue
		}
		dpi := 500
		if strings.Contains(f, "2002_db2") {
			dpi = 569
		}
		g := loadGray(t, f)
		p := newPipeline(e, g, dpi)
		res, err := p.run(context.Background())
		if err != nil {
			t.Log(f, err)
		}
		var ref []minutiae.Minutia
		if dir := os.Getenv(fingerprintEnv); dir != "" {
			set := filepath.Base(filepath.Dir(f))
			if strings.HasPrefix(set, "fvc2002") {
				ref = secugenFrame(readSecuGen(t, dir, set, f), g.Bounds().Dx(), g.Bounds().Dy())
			}
		}
		shown := image.NewGray(g.Rect)
		for i, v := range g.Pix {
			switch {
			case p.mask == nil || p.mask[i]:
				shown.Pix[i] = v
				if p.skel != nil && p.skel[i] != 0 {
					shown.Pix[i] = v / 3 // the skeleton, darker
				}
			default:
				shown.Pix[i] = 128 + v/4 // the background, washed out
			}
		}
		zoom := 2
		var crop image.Rectangle
		if c := os.Getenv("FINGER_DEBUG_CROP"); c != "" {
			fmt.Sscanf(c, "%d,%d,%d,%d", &crop.Min.X, &crop.Min.Y, &crop.Max.X, &crop.Max.Y)
			zoom = 5
		}
		var img image.Image = drawMinutiae(shown, res.View.Minutiae, ref, zoom)
		if !crop.Empty() {
			img = img.(*image.RGBA).SubImage(image.Rectangle{crop.Min.Mul(zoom), crop.Max.Mul(zoom)})
		}
		name := filepath.Join(out, strings.ReplaceAll(strings.TrimSuffix(f, ".tif"), "/", "_")+".png")
		w, _ := os.Create(name)
		png.Encode(w, img)
		w.Close()
		t.Logf("%s: %d minutiae, quality %d, fg %.0f mm², coherence %.2f, removed %d %v (isolated, short, broken, cluster, border)", name, len(res.View.Minutiae), res.Quality, res.ForegroundMM2, res.Coherence, res.Removed, p.removedBy[1:])
	}
}

func drawMinutiae(g *image.Gray, ours, ref []minutiae.Minutia, zoom int) *image.RGBA {
	b := g.Bounds()
	img := image.NewRGBA(image.Rect(0, 0, b.Dx()*zoom, b.Dy()*zoom))
	for y := range b.Dy() * zoom {
		for x := range b.Dx() * zoom {
			v := g.GrayAt(x/zoom, y/zoom).Y
			img.Set(x, y, color.RGBA{v, v, v, 255})
		}
	}
	plot := func(ms []minutiae.Minutia, col func(minutiae.Minutia) color.RGBA, r float64) {
		for _, m := range ms {
			c := col(m)
			cx, cy := float64(m.X*zoom), float64(m.Y*zoom)
			for a := 0.0; a < 2*math.Pi; a += 0.1 {
				img.Set(int(cx+r*math.Cos(a)), int(cy+r*math.Sin(a)), c)
			}
			// Angle counter-clockwise with y down: screen dy = -sin.
			for l := 0.0; l < 4*r; l++ {
				img.Set(int(cx+l*math.Cos(m.Angle)), int(cy-l*math.Sin(m.Angle)), c)
			}
		}
	}
	plot(ref, func(minutiae.Minutia) color.RGBA { return color.RGBA{0, 200, 0, 255} }, 8)
	plot(ours, func(m minutiae.Minutia) color.RGBA {
		if m.Kind == minutiae.KindEnding {
			return color.RGBA{255, 0, 0, 255}
		}
		return color.RGBA{0, 0, 255, 255}
	}, 5)
	return img
}

// secugenFrame moves SecuGen's minutiae into the image's frame. OpenAFIS
// fed the SDK (set up for a 300×400 HU20 sensor) the FVC images centred on
// a 300×400 canvas, cropped or padded: the records all declare 300×400, and
// on the fingers compared the offsets fit (pairStats recall jumps from 9%
// to 46% on DB1, and DB4 reaches 85%). DB2 (569 dpi) does not fit this
// frame well (23% recall): its offsets are doubtful.
func secugenFrame(ms []minutiae.Minutia, w, h int) []minutiae.Minutia {
	dx, dy := (300-w)/2, (400-h)/2
	for i := range ms {
		ms[i].X -= dx
		ms[i].Y -= dy
	}
	return inSecugenCanvas(ms, w, h)
}

// inSecugenCanvas keeps the minutiae at least 16 px inside both the image
// and the part of it SecuGen saw, so both sides are compared on the same
// area.
func inSecugenCanvas(ms []minutiae.Minutia, w, h int) []minutiae.Minutia {
	dx, dy := (300-w)/2, (400-h)/2
	x0, y0 := max(0, -dx)+16, max(0, -dy)+16
	x1, y1 := min(w, 300-dx)-16, min(h, 400-dy)-16
	var out []minutiae.Minutia
	for _, m := range ms {
		if m.X >= x0 && m.Y >= y0 && m.X < x1 && m.Y < y1 {
			out = append(out, m)
		}
	}
	return out
}
