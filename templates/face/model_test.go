package face

import (
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

var (
	onnxOnce sync.Once
	onnxEx   *Extractor
	onnxErr  error
)

// onnxExtractor is one extractor of the default model shared by the tests.
func onnxExtractor(t testing.TB) *Extractor {
	t.Helper()
	onnxOnce.Do(func() { onnxEx, onnxErr = NewExtractor(Config{ModelsDir: modelsDir(), Workers: 2}) })
	if onnxErr != nil {
		t.Fatalf("%v\n(the face tests need the models: run `make models`, or set BORDERMATCH_MODELS)", onnxErr)
	}
	return onnxEx
}

func TestDefaultModel(t *testing.T) {
	ex := onnxExtractor(t)
	if got := ex.Algorithm(); got != (templates.Algorithm{ID: DefaultModel, Version: 1}) || ex.Dim() != 192 {
		t.Fatalf("default model: algorithm %v, dim %d", got, ex.Dim())
	}
	f, err := ex.Extract(read(t, faces+"/bbt/sheldon/2.png"), templates.ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Template.Algorithm != ex.Algorithm() || len(f.Template.Vector) != 192 {
		t.Fatalf("template %v, %d values", f.Template.Algorithm, len(f.Template.Vector))
	}
	var n float64
	for _, x := range f.Template.Vector {
		n += float64(x) * float64(x)
	}
	if math.Abs(n-1) > 1e-4 {
		t.Fatalf("embedding norm² %v, want 1", n)
	}
	q := f.Quality
	if q.Detector != "hog" || q.DetectorConfidence <= 0 || q.InterEyePixels < 30 || math.Abs(q.Roll) > 15 || math.Abs(q.Yaw) > 30 {
		t.Fatalf("quality %+v", q)
	}
	t.Logf("sheldon/2: %+v", q)
}

// TestModelsSeparate: on the 8 x 5 bbt photos, each model's genuine pairs
// score above every impostor pair but a few, and the ONNX model's
// alignment is right (a wrong colour order or alignment gives near-random
// embeddings and fails this).
func TestModelsSeparate(t *testing.T) {
	ex := onnxExtractor(t)
	paths, _ := filepath.Glob(filepath.Join(faces, "bbt", "*", "*.png"))
	type sample struct {
		who string
		v   []float32
	}
	var ss []sample
	for _, p := range paths {
		f, err := ex.Extract(read(t, p), templates.ExtractOptions{})
		if err != nil {
			t.Fatalf("%s: %v (the default detection enrols every bbt photo)", p, err)
		}
		ss = append(ss, sample{filepath.Base(filepath.Dir(p)), f.Template.Vector})
	}
	var minGen, maxImp float64 = 2, -2
	for i := range ss {
		for j := i + 1; j < len(ss); j++ {
			c := cosine(ss[i].v, ss[j].v)
			if ss[i].who == ss[j].who {
				minGen = math.Min(minGen, c)
			} else {
				maxImp = math.Max(maxImp, c)
			}
		}
	}
	t.Logf("bbt, %s: lowest genuine cosine %.3f, highest impostor %.3f", ex.Algorithm(), minGen, maxImp)
	if !(minGen > maxImp) {
		t.Fatalf("genuine and impostor pairs overlap: lowest genuine %.3f, highest impostor %.3f", minGen, maxImp)
	}
}

func TestLoadModel(t *testing.T) {
	dir := t.TempDir()
	good := `{"name":"m","version":1,"file":"m.onnx","inputSize":112,"alignment":"arcface-112","colour":"rgb","mean":[127.5,127.5,127.5],"scale":0.0078125,"input":"input","output":"","dim":128}`
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("m.json", good)
	m, err := LoadModel(dir, "m")
	if err != nil {
		t.Fatal(err)
	}
	if m.Algorithm() != (templates.Algorithm{ID: "m", Version: 1}) || m.Path() != filepath.Join(dir, "m.onnx") {
		t.Fatalf("%+v", m)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"no version", `"version":1`, `"version":0`, "version"},
		{"not onnx", `"m.onnx"`, `"m.pb"`, "onnx"},
		{"alignment", `"arcface-112"`, `"dlib-150"`, "alignment"},
		{"colour", `"rgb"`, `"rgba"`, "colour"},
		{"scale", `0.0078125`, `0`, "scale"},
		{"dim", `"dim":128`, `"dim":3`, "dim"},
		{"dlib's name", `"name":"m"`, `"name":"dlib"`, "dlib"},
		{"unknown field", `"dim":128`, `"dim":128,"dims":3`, "unknown field"},
		{"not json", good, `{`, "unexpected EOF"},
	} {
		write("bad.json", strings.Replace(good, tc.from, tc.to, 1))
		if _, err := LoadModel(dir, filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadModel(dir, "nosuch"); err == nil || !strings.Contains(err.Error(), "models here: bad, m") {
		t.Errorf("unknown model: %v", err)
	}
	// A network file that is not the one the descriptor names is refused
	// before any template is made with it.
	write("m.onnx", "not the network")
	m.SHA256 = strings.Repeat("0", 64)
	if err := m.checkFile(); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("wrong network file: %v", err)
	}
	if _, err := NewExtractor(Config{ModelsDir: dir, Model: "nosuch"}); err == nil {
		t.Fatal("no error for an unknown model")
	}
}

// TestSimilarity: the least-squares similarity recovers a known rotation,
// scale and shift exactly, and the template maps onto itself.
func TestSimilarity(t *testing.T) {
	const a, b, tx, ty = 1.7 * 0.8660254, 1.7 * 0.5, 31.0, -12.0 // scale 1.7, 30 degrees
	var src [5]point
	for i, p := range arcFace112 {
		src[i] = point{a*p.X - b*p.Y + tx, b*p.X + a*p.Y + ty}
	}
	m := similarity(src, arcFace112)
	for i, p := range src {
		x, y := m[0][0]*p.X+m[0][1]*p.Y+m[0][2], m[1][0]*p.X+m[1][1]*p.Y+m[1][2]
		if math.Hypot(x-arcFace112[i].X, y-arcFace112[i].Y) > 1e-9 {
			t.Fatalf("point %d maps to (%v, %v), want %v", i, x, y, arcFace112[i])
		}
	}
	if yaw, pitch, roll := pose(arcFace112); math.Abs(yaw) > 2 || math.Abs(pitch) > 2 || math.Abs(roll) > 1 {
		t.Fatalf("the template's pose is %v %v %v, want frontal", yaw, pitch, roll)
	}
	_, _, roll0 := pose(arcFace112)
	if _, _, roll := pose(src); math.Abs(roll-roll0-30) > 1e-6 {
		t.Fatalf("roll of the template turned 30 degrees %v, the template's own %v", roll, roll0)
	}
	turned := arcFace112
	turned[2].X += 12 // nose towards the image's right eye
	if yaw, _, _ := pose(turned); yaw < 20 {
		t.Fatalf("yaw %v for a nose moved right", yaw)
	}
}

// TestPick: which face of a photo with several enrolment takes.
func TestPick(t *testing.T) {
	box := func(x0, y0, x1, y1 int) detection { return detection{box: image.Rect(x0, y0, x1, y1)} }
	for _, tc := range []struct {
		name  string
		found []detection
		want  int // -1: refused
	}{
		// LFW-like 250x250 photos: the traveller in the middle, a
		// bystander smaller or cut by the edge.
		{"bystander smaller", []detection{box(160, 26, 247, 113), box(65, 77, 170, 182)}, 1},
		{"bystander at the edge", []detection{box(77, 77, 182, 182), box(-22, 93, 75, 180), box(189, 125, 262, 198)}, 0},
		{"two of a size", []detection{box(20, 80, 120, 180), box(130, 80, 230, 180)}, -1},
		{"larger but off centre", []detection{box(150, 10, 250, 110), box(100, 100, 160, 160)}, -1},
		{"a step apart, both central", []detection{box(80, 80, 180, 180), box(90, 90, 180, 180)}, -1},
	} {
		got, err := pick(tc.found, 250, 250, false)
		if tc.want < 0 {
			if !errors.Is(err, templates.ErrMultipleFaces) {
				t.Errorf("%s: took face %d (%v), want ErrMultipleFaces", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d", tc.name, got, err, tc.want)
		}
		if got, _ := pick(tc.found, 250, 250, true); got != tc.want {
			t.Errorf("%s: TakeLargest took %d", tc.name, got)
		}
	}
}

// TestGroupPhoto: six comparable faces are refused for enrolment and give
// the largest to a gate.
func TestGroupPhoto(t *testing.T) {
	ex := onnxExtractor(t)
	img := read(t, faces+"/reference/faces.jpg")
	if _, err := ex.Extract(img, templates.ExtractOptions{}); !errors.Is(err, templates.ErrMultipleFaces) {
		t.Fatalf("group photo enrolled: %v", err)
	}
	f, err := ex.Extract(img, templates.ExtractOptions{TakeLargest: true})
	if err != nil || f.Faces != 6 {
		t.Fatalf("gate frame: %d faces, %v", f.Faces, err)
	}
}

// TestSharedShapes: extractors of two models share one shape predictor,
// which outlives the first extractor closed.
func TestSharedShapes(t *testing.T) {
	a, err := NewExtractor(Config{ModelsDir: modelsDir(), Model: DlibModel, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewExtractor(Config{ModelsDir: modelsDir(), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a.shapes != b.shapes {
		t.Fatal("two extractors loaded the shape predictor twice")
	}
	a.Close()
	if _, err := b.Extract(read(t, faces+"/bbt/amy/1.png"), templates.ExtractOptions{}); err != nil {
		t.Fatalf("after the other extractor closed: %v", err)
	}
	b.Close()
}
