package face

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/templates"
)

// faces is the repository's face test data (see testdata/faces/README.md).
const faces = "../../testdata/faces"

// modelsDir is where the tests find the model files: $BORDERMATCH_MODELS, or
// the repository's models/ folder that `make models` fills.
func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "models")
}

var (
	extractorOnce sync.Once
	extractor     *Extractor
	extractorErr  error
)

// testExtractor is one extractor of dlib's network shared by the tests
// (loading the models takes a second per worker); the tests of the ONNX
// models are in model_test.go.
func testExtractor(t testing.TB) *Extractor {
	t.Helper()
	extractorOnce.Do(func() {
		extractor, extractorErr = NewExtractor(Config{ModelsDir: modelsDir(), Model: DlibModel})
	})
	if extractorErr != nil {
		t.Fatalf("%v\n(the face tests need the models: run `make models`, or set BORDERMATCH_MODELS)", extractorErr)
	}
	return extractor
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type extraction struct {
	face templates.Face
	err  error
}

var (
	extractedMu sync.Mutex
	extracted   = map[string]extraction{}
)

// extractFile extracts a test photo once per test binary (TakeLargest), as
// several tests look at the same photos.
func extractFile(t testing.TB, path string) (templates.Face, error) {
	t.Helper()
	ex := testExtractor(t)
	extractedMu.Lock()
	r, ok := extracted[path]
	extractedMu.Unlock()
	if !ok {
		f, err := ex.Extract(read(t, path), templates.ExtractOptions{TakeLargest: true})
		r = extraction{f, err}
		extractedMu.Lock()
		extracted[path] = r
		extractedMu.Unlock()
	}
	return r.face, r.err
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func euclid(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func TestNewFaceExtractorMissingModels(t *testing.T) {
	dir := t.TempDir()
	_, err := NewExtractor(Config{ModelsDir: dir, Model: DlibModel})
	if err == nil {
		t.Fatal("no error for an empty models directory")
	}
	for _, want := range append([]string{"make models"}, ModelFiles...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// A damaged model file is reported, not a crash.
	for _, f := range ModelFiles {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not a model"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewExtractor(Config{ModelsDir: dir, Model: DlibModel, Workers: 1}); err == nil || !strings.Contains(err.Error(), "make models") {
		t.Fatalf("damaged models: got %v", err)
	}
}

func TestExtract(t *testing.T) {
	ex := testExtractor(t)
	f, err := ex.Extract(read(t, faces+"/idols/jimin/5.jpg"), templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Faces != 1 || f.Box.Empty() || len(f.Landmarks) != 68 || len(f.Template.Vector) != 128 {
		t.Fatalf("face %+v", f)
	}
	if f.Template.Modality != templates.ModalityFace || f.Template.Algorithm != templates.FaceAlgorithm {
		t.Fatalf("template kind %v %v", f.Template.Modality, f.Template.Algorithm)
	}
	for _, v := range f.Template.Vector {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("descriptor is not finite: %v", f.Template.Vector)
		}
	}
	q := f.Quality
	if q.InterEyePixels < 20 || q.InterEyePixels > float64(f.Box.Dx()) || q.Sharpness <= 0 || q.FaceFraction <= 0 || q.FaceFraction > 1 {
		t.Fatalf("quality %+v for box %v", q, f.Box)
	}
	for _, p := range f.Landmarks {
		if !p.In(f.Box.Inset(-f.Box.Dx() / 2)) {
			t.Fatalf("landmark %v far outside the face box %v", p, f.Box)
		}
	}
	t.Logf("box %v inter-eye %.1f px sharpness %.1f face fraction %.3f", f.Box, q.InterEyePixels, q.Sharpness, q.FaceFraction)
	if _, err := f.Template.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}

// TestSharpness: blurring a photo lowers the sharpness measure.
func TestSharpness(t *testing.T) {
	img, err := jpeg.Decode(bytes.NewReader(read(t, faces+"/idols/joy/1.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	box := img.Bounds().Inset(img.Bounds().Dx() / 4)
	sharp, err := faceSharpness(img, box)
	if err != nil {
		t.Fatal(err)
	}
	// 4x box downscale and back: a strong blur.
	b := img.Bounds()
	blurred := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			blurred.Set(x, y, img.At(x&^3, y&^3))
		}
	}
	small := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			var r, g, bl uint32
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					c := color.RGBAModel.Convert(blurred.At(min(max(x+dx, b.Min.X), b.Max.X-1), min(max(y+dy, b.Min.Y), b.Max.Y-1))).(color.RGBA)
					r, g, bl = r+uint32(c.R), g+uint32(c.G), bl+uint32(c.B)
				}
			}
			small.Set(x, y, color.RGBA{uint8(r / 25), uint8(g / 25), uint8(bl / 25), 255})
		}
	}
	soft, err := faceSharpness(small, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sharpness %.1f, blurred %.1f", sharp, soft)
	if !(soft < sharp/4) {
		t.Fatalf("blurring did not lower the sharpness enough: %.1f -> %.1f", sharp, soft)
	}
	if s, err := faceSharpness(img, image.Rect(-100, -100, -10, -10)); s != 0 || err != nil {
		t.Fatalf("box outside the image: %v %v", s, err)
	}
}

func TestExtractErrors(t *testing.T) {
	ex := testExtractor(t)
	good := read(t, faces+"/idols/jimin/5.jpg")
	tests := []struct {
		name string
		img  []byte
		want error
	}{
		{"empty", nil, templates.ErrImageUnreadable},
		{"text", []byte("not an image at all"), templates.ErrImageUnreadable},
		{"truncated jpeg", good[:len(good)/2], templates.ErrImageUnreadable},
		{"jpeg header only", good[:200], templates.ErrImageUnreadable},
		{"png garbage", append([]byte("\x89PNG\r\n\x1a\n"), good[100:300]...), templates.ErrImageUnreadable},
		{"gif", gifBytes(t), templates.ErrUnsupportedFormat},
		{"bmp", []byte("BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00"), templates.ErrUnsupportedFormat},
		{"bomb", pngHeader(100000, 100000), templates.ErrImageTooLarge},
		{"no face", read(t, faces+"/reference/white.png"), templates.ErrNoFace},
		{"several faces", read(t, faces+"/reference/faces.jpg"), templates.ErrMultipleFaces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ex.Extract(tt.img, templates.ExtractOptions{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if f.Template.Vector != nil || f.Faces != 0 {
				t.Fatalf("an error came with a face: %+v", f)
			}
			t.Logf("%v", err)
		})
	}
}

// TestPixelLimitBeforeDecoding: a 57-byte PNG that claims 10^10 pixels is
// refused from its header, without time or memory spent on pixels.
func TestPixelLimitBeforeDecoding(t *testing.T) {
	bomb := pngHeader(100000, 100000)
	start := time.Now()
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := decodeImage(context.Background(), bomb, DefaultMaxPixels); !errors.Is(err, templates.ErrImageTooLarge) {
			t.Fatal(err)
		}
	})
	ex := testExtractor(t)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := ex.Extract(bomb, templates.ExtractOptions{})
	runtime.ReadMemStats(&m1)
	grew := m1.TotalAlloc - m0.TotalAlloc
	if !errors.Is(err, templates.ErrImageTooLarge) {
		t.Fatal(err)
	}
	t.Logf("%d-byte bomb refused in %v, %.0f allocations, %d bytes allocated", len(bomb), time.Since(start), allocs, grew)
	if time.Since(start) > time.Second || grew > 1<<20 {
		t.Fatalf("the pixel limit cost %v and %d bytes: it must be checked before decoding", time.Since(start), grew)
	}
	// The limit is the configured one.
	if _, err := decodeImage(context.Background(), read(t, faces+"/bbt/amy/1.png"), 150*150-1); !errors.Is(err, templates.ErrImageTooLarge) {
		t.Fatalf("150x150 with a 1000-pixel limit: %v", err)
	}
}

// TestTakeLargest: a gate frame with several faces gives the largest one.
func TestTakeLargest(t *testing.T) {
	ex := testExtractor(t)
	f, err := ex.Extract(read(t, faces+"/reference/faces.jpg"), templates.ExtractOptions{TakeLargest: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.Faces != 6 {
		t.Fatalf("%d faces in faces.jpg, HOG finds 6", f.Faces)
	}
	t.Logf("faces.jpg: %d faces, largest %v", f.Faces, f.Box)
}

// TestGreyJPEG: go-face's loader reads only 3-channel JPEGs; grey
// ones are converted.
func TestGreyJPEG(t *testing.T) {
	ex := testExtractor(t)
	img, err := jpeg.Decode(bytes.NewReader(read(t, faces+"/idols/jimin/5.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	grey := image.NewGray(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			grey.Set(x, y, img.At(x, y))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, grey, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	if c, _ := jpeg.DecodeConfig(bytes.NewReader(buf.Bytes())); c.ColorModel != color.GrayModel {
		t.Fatalf("test setup: not a grey JPEG")
	}
	f, err := ex.Extract(buf.Bytes(), templates.ExtractOptions{})
	if err != nil {
		t.Fatalf("grey JPEG: %v", err)
	}
	colour, err := ex.Extract(read(t, faces+"/idols/jimin/5.jpg"), templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grey vs colour version of a photo: cosine %.4f, distance %.3f", cosine(f.Template.Vector, colour.Template.Vector), euclid(f.Template.Vector, colour.Template.Vector))
	if d := euclid(f.Template.Vector, colour.Template.Vector); d > 0.4 {
		t.Fatalf("grey and colour photo %.3f apart", d)
	}
}

// TestPNGMatchesJPEG: the descriptor must not depend on which of the two
// formats a photo arrives in.
func TestPNGMatchesJPEG(t *testing.T) {
	ex := testExtractor(t)
	orig := read(t, faces+"/idols/jimin/5.jpg")
	img, err := jpeg.Decode(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	a, err := ex.Extract(orig, templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ex.Extract(pngBuf.Bytes(), templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := cosine(a.Template.Vector, b.Template.Vector)
	t.Logf("same photo as JPEG and as PNG: cosine %.5f, Euclidean %.4f", c, euclid(a.Template.Vector, b.Template.Vector))
	if c < 0.99 || a.Box != b.Box {
		t.Fatalf("cosine %.4f, boxes %v %v between the JPEG and PNG of one photo", c, a.Box, b.Box)
	}
}

// TestGenuineVsImpostor: photos of one person are nearer each other than
// photos of different people, over the 8 x 5 face-api.js test faces (bbt/)
// and the idols with several photos.
func TestGenuineVsImpostor(t *testing.T) {
	type sample struct {
		who string
		v   []float32
	}
	var ss []sample
	for _, set := range []string{"bbt", "idols"} {
		paths, _ := filepath.Glob(filepath.Join(faces, set, "*", "*.*g"))
		for _, p := range paths {
			f, err := extractFile(t, p)
			if err != nil {
				continue // README.md lists the photos HOG misses
			}
			ss = append(ss, sample{set + "/" + filepath.Base(filepath.Dir(p)), f.Template.Vector})
		}
	}
	var gen, imp []float64
	for i := range ss {
		for j := i + 1; j < len(ss); j++ {
			d := euclid(ss[i].v, ss[j].v)
			if ss[i].who == ss[j].who {
				gen = append(gen, d)
			} else if strings.HasPrefix(ss[i].who, "bbt") == strings.HasPrefix(ss[j].who, "bbt") {
				imp = append(imp, d)
			}
		}
	}
	sort.Float64s(gen)
	sort.Float64s(imp)
	mean := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	below := 0
	for _, d := range imp {
		if d <= 0.6 {
			below++
		}
	}
	rejected := 0
	for _, d := range gen {
		if d > 0.6 {
			rejected++
		}
	}
	t.Logf("%d samples: %d genuine pairs, distance mean %.3f max %.3f; %d impostor pairs, mean %.3f min %.3f", len(ss), len(gen), mean(gen), gen[len(gen)-1], len(imp), mean(imp), imp[0])
	t.Logf("at dlib's 0.6 threshold: %d/%d genuine pairs rejected, %d/%d impostor pairs accepted", rejected, len(gen), below, len(imp))
	if len(gen) < 50 || !(mean(gen) < mean(imp)-0.15) {
		t.Fatalf("genuine pairs are not clearly nearer than impostor pairs")
	}
	// One fixed pair, the way an operator would check it.
	s1, err1 := extractFile(t, faces+"/bbt/sheldon/2.png")
	s2, err2 := extractFile(t, faces+"/bbt/sheldon/3.png")
	l1, err3 := extractFile(t, faces+"/bbt/leonard/2.png")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	g, i := euclid(s1.Template.Vector, s2.Template.Vector), euclid(s1.Template.Vector, l1.Template.Vector)
	t.Logf("sheldon/2-sheldon/3 %.3f, sheldon/2-leonard/2 %.3f", g, i)
	if !(g < 0.6 && i > 0.6) {
		t.Fatalf("genuine pair %.3f, impostor pair %.3f", g, i)
	}
}

func TestCloseThenExtract(t *testing.T) {
	ex, err := NewExtractor(Config{ModelsDir: modelsDir(), Model: DlibModel, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ex.Close()
	ex.Close()
	if _, err := ex.Extract(read(t, faces+"/idols/jimin/5.jpg"), templates.ExtractOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// BenchmarkExtract measures one extraction (decode, HOG detection,
// landmarks, alignment, descriptor, quality) per photo.
func BenchmarkExtract(b *testing.B) {
	ex := testExtractor(b)
	for _, p := range []string{"idols/jimin/5.jpg", "idols/chaeyeon/2.jpg", "bbt/amy/1.png"} {
		img := read(b, filepath.Join(faces, p))
		c, _, err := image.DecodeConfig(bytes.NewReader(img))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.ReplaceAll(p, "/", "_"), func(b *testing.B) {
			for b.Loop() {
				if _, err := ex.Extract(img, templates.ExtractOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Width*c.Height)/1e6, "MP")
		})
	}
}

// TestFacesREADME checks the HOG column of testdata/faces/README.md, which
// the demo watchlist is chosen from, against the extractor.
func TestFacesREADME(t *testing.T) {
	rows := 0
	for _, line := range strings.Split(string(read(t, filepath.Join(faces, "README.md"))), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 8 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		rows++
		photo := strings.Trim(strings.TrimSpace(cells[1]), "`")
		want := strings.TrimSpace(cells[4])
		f, err := extractFile(t, filepath.Join(faces, photo))
		got := "0"
		switch {
		case err == nil:
			got = strconv.Itoa(f.Faces)
		case !errors.Is(err, templates.ErrNoFace):
			t.Errorf("%s: %v", photo, err)
			continue
		}
		if got != want {
			t.Errorf("%s: HOG finds %s faces, README.md says %s", photo, got, want)
		}
	}
	photos := 0
	for _, g := range []string{"*/*.png", "*/*.jpg", "*/*/*.png", "*/*/*.jpg"} {
		m, _ := filepath.Glob(filepath.Join(faces, g))
		photos += len(m)
	}
	if rows != photos {
		t.Errorf("README.md lists %d photos, testdata/faces holds %d", rows, photos)
	}
}
