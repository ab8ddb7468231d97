package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// The tests of the built models: they read the files make models writes into
// $BORDERMATCH_MODELS (make test sets it, after make models) and skip when
// that is not set or a file is missing. They never download anything.

// descriptor is a model descriptor (models/*.json).
type descriptor struct {
	Name         string    `json:"name"`
	Version      int       `json:"version"`
	File         string    `json:"file"`
	SHA256       string    `json:"sha256"`
	InputSize    int       `json:"inputSize"`
	Alignment    string    `json:"alignment"`
	Colour       string    `json:"colour"`
	Mean         []float64 `json:"mean"`
	Scale        float64   `json:"scale"`
	Input        string    `json:"input"`
	Output       string    `json:"output"`
	Dim          int       `json:"dim"`
	Source       string    `json:"source"`
	Licence      string    `json:"licence"`
	TrainingData string    `json:"trainingData"`
}

func readDescriptor(t *testing.T, name string) descriptor {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var d descriptor
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	return d
}

// modelFile is the path of a built model file, or skips the test.
func modelFile(t *testing.T, file string) string {
	t.Helper()
	dir := os.Getenv("BORDERMATCH_MODELS")
	if dir == "" {
		t.Skipf("BORDERMATCH_MODELS is not set: run make models and set it to the models folder (make test does both) to test %s", file)
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is missing (%v): make models builds it", p, err)
	}
	return p
}

// blob reads a 112×112 PNG chip as a [1,3,112,112] float blob, channels in
// the descriptor's order, (x − mean)·scale.
func blob(t *testing.T, path string, d descriptor) gocv.Mat {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	n := d.InputSize
	if im.Bounds().Dx() != n || im.Bounds().Dy() != n {
		t.Fatalf("%s is %v, the model takes %dx%d", path, im.Bounds().Size(), n, n)
	}
	data := make([]byte, 4*3*n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			r, g, b, _ := im.At(im.Bounds().Min.X+x, im.Bounds().Min.Y+y).RGBA()
			px := [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
			if d.Colour == "bgr" {
				px[0], px[2] = px[2], px[0]
			}
			for ch := 0; ch < 3; ch++ {
				v := float32((px[ch] - d.Mean[ch]) * d.Scale)
				binary.LittleEndian.PutUint32(data[4*((ch*n+y)*n+x):], math.Float32bits(v))
			}
		}
	}
	m, err := gocv.NewMatWithSizesFromBytes([]int{1, 3, n, n}, gocv.MatTypeCV32F, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func forward(t *testing.T, net *gocv.Net, in gocv.Mat, d descriptor) []float32 {
	t.Helper()
	net.SetInput(in, d.Input)
	out := net.Forward(d.Output)
	defer out.Close()
	if got := out.Size(); len(got) != 2 || got[0] != 1 || got[1] != d.Dim {
		t.Fatalf("output %q has shape %v, expected [1 %d]", d.Output, got, d.Dim)
	}
	v, err := out.DataPtrFloat32()
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), v...)
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func checkSHA(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("%s has SHA-256 %s, its descriptor says %s", path, got, want)
	}
}

func TestDescriptors(t *testing.T) {
	for _, c := range []struct {
		name, colour string
		mean         float64
		dim          int
	}{{"mobilefacenet-192", "rgb", 127.5, 192}, {"faceplugin-512", "bgr", 127, 512}} {
		d := readDescriptor(t, c.name)
		if d.Name != c.name || d.Version != 1 || d.File != c.name+".onnx" || d.InputSize != 112 ||
			d.Alignment != "arcface-112" || d.Colour != c.colour || d.Dim != c.dim || d.Scale != 1.0/128 ||
			len(d.Mean) != 3 || d.Mean[0] != c.mean || d.Mean[1] != c.mean || d.Mean[2] != c.mean ||
			d.Input == "" || d.Output == "" || len(d.SHA256) != 64 || d.Source == "" || d.Licence == "" || d.TrainingData == "" {
			t.Errorf("%s.json: unexpected %+v", c.name, d)
		}
	}
}

// TestMobileFaceNetGolden runs the converted MobileFaceNet in OpenCV's DNN
// module on the chips in testdata and compares each embedding with the one
// the original .tflite gave in TFLite's own interpreter (testdata/golden.json,
// written by testdata/golden.js).
func TestMobileFaceNetGolden(t *testing.T) {
	d := readDescriptor(t, "mobilefacenet-192")
	path := modelFile(t, d.File)
	checkSHA(t, path, d.SHA256)
	var golden struct {
		Embeddings map[string][]float32 `json:"embeddings"`
	}
	data, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Embeddings) < 8 {
		t.Fatalf("golden.json has %d embeddings", len(golden.Embeddings))
	}
	net := gocv.ReadNetFromONNX(path)
	if net.Empty() {
		t.Fatalf("OpenCV cannot read %s", path)
	}
	defer net.Close()
	names := make([]string, 0, len(golden.Embeddings))
	for name := range golden.Embeddings {
		names = append(names, name)
	}
	sort.Strings(names)
	minCos := 1.0
	var total time.Duration
	for _, name := range names {
		want := golden.Embeddings[name]
		if len(want) != d.Dim {
			t.Fatalf("%s: golden embedding of %d values", name, len(want))
		}
		in := blob(t, filepath.Join("testdata", name), d)
		start := time.Now()
		got := forward(t, &net, in, d)
		total += time.Since(start)
		in.Close()
		cos := cosine(got, want)
		var maxDiff float64
		for i := range got {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("%-20s cosine %.9f (1 − cos = %.1e), max |diff| %.1e", name, cos, 1-cos, maxDiff)
		minCos = math.Min(minCos, cos)
		if !(cos >= 0.9999) {
			t.Errorf("%s: cosine %.6f to the TFLite embedding, want ≥ 0.9999", name, cos)
		}
	}
	t.Logf("min cosine %.9f over %d chips; %v per forward pass", minCos, len(names), total/time.Duration(len(names)))
}

// TestFacepluginRuns checks that Faceplugin's fr_feature.onnx loads in
// OpenCV's DNN module and gives [1,512] embeddings that tell faces apart.
func TestFacepluginRuns(t *testing.T) {
	d := readDescriptor(t, "faceplugin-512")
	path := modelFile(t, d.File)
	checkSHA(t, path, d.SHA256)
	net := gocv.ReadNetFromONNX(path)
	if net.Empty() {
		t.Fatalf("OpenCV cannot read %s", path)
	}
	defer net.Close()
	emb := map[string][]float32{}
	for _, name := range []string{"group-sheldon.png", "rectangular.png", "bbt-sheldon.png", "bbt-penny.png", "angry.png"} {
		in := blob(t, filepath.Join("testdata", name), d)
		emb[name] = forward(t, &net, in, d)
		in.Close()
		for _, v := range emb[name] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: embedding has %v", name, v)
			}
		}
	}
	same := cosine(emb["group-sheldon.png"], emb["rectangular.png"])
	other := cosine(emb["group-sheldon.png"], emb["angry.png"])
	t.Logf("cosine Sheldon–Sheldon %.3f, Sheldon–angry man %.3f, Sheldon–Penny (grey) %.3f", same, other,
		cosine(emb["bbt-sheldon.png"], emb["bbt-penny.png"]))
	if same <= other {
		t.Errorf("the same person scores %.3f, a different one %.3f", same, other)
	}
}
