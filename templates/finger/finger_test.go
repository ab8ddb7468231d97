package finger

import (
	"context"
	"errors"
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// committed lists the test images (testdata/SOURCES.md) and their
// resolutions.
var committed = []struct {
	path string
	dpi  int
}{
	{"fvc2002_db1_b/101_1.tif", 500}, {"fvc2002_db1_b/101_2.tif", 500}, {"fvc2002_db1_b/101_3.tif", 500},
	{"fvc2002_db1_b/102_1.tif", 500}, {"fvc2002_db1_b/102_2.tif", 500}, {"fvc2002_db1_b/102_3.tif", 500},
	{"fvc2002_db2_b/101_1.tif", 569}, {"fvc2002_db2_b/101_2.tif", 569},
}

func TestExtractCommitted(t *testing.T) {
	e := NewExtractor(Config{})
	for _, c := range committed {
		t.Run(c.path, func(t *testing.T) {
			g := loadGray(t, filepath.Join("testdata", c.path))
			p := newPipeline(e, g, c.dpi)
			res, err := p.run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n := len(res.View.Minutiae)
			// SecuGen finds 16–69 on these fingers; a plain impression of
			// a whole fingertip has some 20–70.
			if n < 15 || n > 90 {
				t.Errorf("%d minutiae, want 15..90", n)
			}
			if res.Quality < 40 || res.Quality > 100 {
				t.Errorf("quality %d, want 40..100 on these clear prints", res.Quality)
			}
			v := res.View
			if v.Width != g.Rect.Dx() || v.Height != g.Rect.Dy() || v.DPI != c.dpi || int(v.Quality) != res.Quality {
				t.Errorf("view geometry %d×%d@%d q%d", v.Width, v.Height, v.DPI, v.Quality)
			}
			margin := float32(e.cfg.BorderMargin * p.scale)
			kinds := map[minutiae.Kind]int{}
			for _, m := range v.Minutiae {
				i := m.Y*p.w + m.X
				if m.X < 0 || m.Y < 0 || m.X >= p.w || m.Y >= p.h || !p.mask[i] || p.dist[i] < margin {
					t.Errorf("minutia %+v outside the foreground or within %.0f px of its edge", m, margin)
				}
				if m.Angle < 0 || m.Angle >= 2*math.Pi || m.Quality < 1 || m.Quality > 100 {
					t.Errorf("minutia %+v: angle or quality out of range", m)
				}
				kinds[m.Kind]++
			}
			if kinds[minutiae.KindEnding] == 0 || kinds[minutiae.KindBifurcation] == 0 {
				t.Errorf("kinds %v: want both endings and bifurcations", kinds)
			}
		})
	}
}

// TestExtractDeterministic extracts the same image sequentially and from
// several goroutines on one Extractor and wants identical results.
func TestExtractDeterministic(t *testing.T) {
	e := NewExtractor(Config{})
	g := loadGray(t, filepath.Join("testdata", committed[0].path))
	want, err := e.Extract(g, 500)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]Result, 4)
	for i := range got {
		wg.Go(func() {
			r, err := NewExtractor(Config{}).Extract(g, 500)
			if i%2 == 0 {
				r, err = e.Extract(g, 500)
			}
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		})
	}
	wg.Wait()
	for i, r := range got {
		if !reflect.DeepEqual(r, want) {
			t.Errorf("run %d differs: %d minutiae vs %d", i, len(r.View.Minutiae), len(want.View.Minutiae))
		}
	}
}

// rotate90 turns an image a quarter turn clockwise on screen.
func rotate90(g *image.Gray) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	r := image.NewGray(image.Rect(0, 0, h, w))
	for y := range h {
		for x := range w {
			r.Pix[x*r.Stride+(h-1-y)] = g.Pix[y*g.Stride+x]
		}
	}
	return r
}

// TestRotation90 checks that turning the image a quarter turn clockwise
// moves the minutiae with it: (x, y) → (h−1−y, x), and the angle
// (counter-clockwise) decreases by π/2.
func TestRotation90(t *testing.T) {
	e := NewExtractor(Config{})
	for _, c := range committed[:3] {
		g := loadGray(t, filepath.Join("testdata", c.path))
		a, err := e.Extract(g, c.dpi)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Extract(rotate90(g), c.dpi)
		if err != nil {
			t.Fatal(err)
		}
		h := g.Rect.Dy()
		moved := make([]minutiae.Minutia, len(a.View.Minutiae))
		for i, m := range a.View.Minutiae {
			moved[i] = minutiae.Minutia{X: h - 1 - m.Y, Y: m.X, Angle: minutiae.NormAngle(m.Angle - math.Pi/2), Kind: m.Kind}
		}
		found, _ := pairStats(moved, b.View.Minutiae, 8, math.Pi/9)
		share := float64(found) / float64(len(moved))
		t.Logf("%s: %d/%d minutiae found again after rotation (8 px, 20°)", c.path, found, len(moved))
		// The block grid is anchored at the top-left corner, so it falls
		// differently on the turned image; most minutiae must survive that.
		if share < 0.6 {
			t.Errorf("%s: only %.0f%% of the minutiae follow the rotation", c.path, 100*share)
		}
	}
}

func TestRejects(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 300, 300))
	for i := range blank.Pix {
		blank.Pix[i] = 200
	}
	noise := image.NewGray(image.Rect(0, 0, 300, 300))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.IntN(256))
	}
	// A grey ramp: contrast everywhere, but no ridges.
	ramp := image.NewGray(image.Rect(0, 0, 300, 300))
	for i := range ramp.Pix {
		ramp.Pix[i] = uint8(i % 300 * 255 / 300)
	}
	tiny := image.NewGray(image.Rect(0, 0, 40, 300))
	e := NewExtractor(Config{})
	for _, c := range []struct {
		name string
		img  *image.Gray
		want error
	}{
		{"nil", nil, ErrNoFingerprint},
		{"blank", blank, ErrNoFingerprint},
		{"noise", noise, ErrNoFingerprint},
		{"ramp", ramp, ErrNoFingerprint},
		{"tiny", tiny, ErrTooSmall},
	} {
		_, err := e.Extract(c.img, 500)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestQualityFloor(t *testing.T) {
	g := loadGray(t, filepath.Join("testdata", committed[0].path))
	res, err := NewExtractor(Config{QualityFloor: 101}).Extract(g, 500)
	if !errors.Is(err, ErrLowQuality) {
		t.Fatalf("got %v, want ErrLowQuality", err)
	}
	if !strings.Contains(err.Error(), "floor 101") || len(res.View.Minutiae) == 0 {
		t.Errorf("error %q (want the score and the floor), %d minutiae (want the result filled in)", err, len(res.View.Minutiae))
	}
	if _, err := NewExtractor(Config{}).Extract(g, 500); err != nil {
		t.Errorf("floor disabled: %v", err)
	}
}

// TestVerifyCommitted matches the committed impressions with the MCC
// matcher: every genuine pair must outscore every impostor pair.
func TestVerifyCommitted(t *testing.T) {
	e := NewExtractor(Config{})
	tpl := map[string]*matcher.FingerTemplate{}
	for _, c := range committed {
		res, err := e.Extract(loadGray(t, filepath.Join("testdata", c.path)), c.dpi)
		if err != nil {
			t.Fatal(err)
		}
		ft, err := matcher.PrepareFinger(res.View)
		if err != nil {
			t.Fatal(err)
		}
		tpl[c.path] = ft
	}
	var m matcher.FingerMatcher
	minGen, maxImp := 1.0, 0.0
	for a := range tpl {
		for b := range tpl {
			if a >= b {
				continue
			}
			s := m.Score(tpl[a], tpl[b])
			if filepath.Dir(a) == filepath.Dir(b) && strings.Split(filepath.Base(a), "_")[0] == strings.Split(filepath.Base(b), "_")[0] {
				minGen = min(minGen, s)
			} else {
				maxImp = max(maxImp, s)
			}
		}
	}
	t.Logf("lowest genuine score %.3f, highest impostor %.3f", minGen, maxImp)
	if minGen <= maxImp {
		t.Errorf("genuine %.3f <= impostor %.3f", minGen, maxImp)
	}
}

// FuzzExtract runs the extractor on small arbitrary images: it must not
// panic and must either fail with a named error or return sane minutiae.
func FuzzExtract(f *testing.F) {
	f.Add(uint16(120), uint16(140), []byte{0, 255, 128})
	f.Add(uint16(200), uint16(100), []byte{10, 20, 30, 40, 250, 250, 0})
	e := NewExtractor(Config{})
	f.Fuzz(func(t *testing.T, w, h uint16, pattern []byte) {
		w, h = w%300+1, h%300+1
		if len(pattern) == 0 {
			return
		}
		g := image.NewGray(image.Rect(0, 0, int(w), int(h)))
		for i := range g.Pix {
			g.Pix[i] = pattern[(i*7+i/int(w))%len(pattern)]
		}
		res, err := e.Extract(g, 500)
		if err != nil {
			if !errors.Is(err, ErrNoFingerprint) && !errors.Is(err, ErrTooSmall) {
				t.Fatalf("unnamed error %v", err)
			}
			return
		}
		for _, m := range res.View.Minutiae {
			if m.X < 0 || m.Y < 0 || m.X >= int(w) || m.Y >= int(h) {
				t.Fatalf("minutia %+v outside %d×%d", m, w, h)
			}
		}
	})
}
