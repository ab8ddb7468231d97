package wsq

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFile(t testing.TB, name string) (*image.Gray, Info) {
	t.Helper()
	img, info, err := DecodeWithInfo(bytes.NewReader(readFile(t, name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return img, info
}

// TestGolden compares the decode of SourceAFIS's sample with its reference
// decode (made with JNBIS, a Java port of NIST's NBIS decoder).
func TestGolden(t *testing.T) {
	img, info := decodeFile(t, "wsq-original.wsq")
	refImg, err := png.Decode(bytes.NewReader(readFile(t, "wsq-converted.png")))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != refImg.Bounds() {
		t.Fatalf("size %v, reference %v", img.Bounds(), refImg.Bounds())
	}
	if got := img.Bounds().Size(); got != image.Pt(832, 768) {
		t.Errorf("size %v, want 832×768", got)
	}
	if info.PPI != 500 {
		t.Errorf("PPI %d, want 500", info.PPI)
	}
	var equal, within1, maxDiff int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := refImg.At(x, y).RGBA()
			if r != g || g != bl {
				t.Fatalf("reference pixel (%d,%d) is not grey", x, y)
			}
			d := int(img.GrayAt(x, y).Y) - int(r>>8)
			if d < 0 {
				d = -d
			}
			if d == 0 {
				equal++
			}
			if d <= 1 {
				within1++
			}
			maxDiff = max(maxDiff, d)
		}
	}
	n := float64(b.Dx() * b.Dy())
	t.Logf("equal %d (%.4f%%), within ±1 %d (%.4f%%), max difference %d, of %d pixels", equal, 100*float64(equal)/n, within1, 100*float64(within1)/n, maxDiff, int(n))
	if float64(within1) < 0.99*n {
		t.Errorf("only %.2f%% of pixels within ±1 of the reference, want ≥ 99%%", 100*float64(within1)/n)
	}
}

// TestNISTSample decodes libbiomeval's sample, which has no reference decode.
// It is a synthetic pattern, not a fingerprint: six black discs on white.
// Its histogram is two narrow peaks; the disc centres are black and the
// corners white.
func TestNISTSample(t *testing.T) {
	img, info := decodeFile(t, "nist-img.wsq")
	if got := img.Bounds().Size(); got != image.Pt(256, 256) {
		t.Fatalf("size %v, want 256×256", got)
	}
	if info.PPI != 500 {
		t.Errorf("PPI %d, want 500", info.PPI)
	}
	if len(info.Comments) != 1 || !strings.HasPrefix(info.Comments[0], "NIST_COM") {
		t.Errorf("comments %q, want one NISTCOM", info.Comments)
	}
	dark, light := 0, 0
	for _, p := range img.Pix {
		switch {
		case p <= 30:
			dark++
		case p >= 225:
			light++
		}
	}
	n := float64(len(img.Pix))
	t.Logf("≤30: %.1f%%, ≥225: %.1f%%, between: %.2f%%", 100*float64(dark)/n, 100*float64(light)/n, 100*float64(len(img.Pix)-dark-light)/n)
	if float64(dark+light) < 0.98*n || float64(dark) < 0.15*n || float64(light) < 0.6*n {
		t.Errorf("histogram is not two peaks: %d dark, %d light of %d", dark, light, len(img.Pix))
	}
	for _, p := range []struct {
		x, y  int
		black bool
	}{{165, 100, true}, {100, 190, true}, {5, 5, false}, {250, 250, false}, {250, 5, false}, {5, 250, false}} {
		v := img.GrayAt(p.x, p.y).Y
		if p.black && v > 30 || !p.black && v < 225 {
			t.Errorf("pixel (%d,%d) = %d, want %s", p.x, p.y, v, map[bool]string{true: "black", false: "white"}[p.black])
		}
	}
	if os.Getenv("WSQ_WRITE_PNG") != "" {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(os.Getenv("WSQ_WRITE_PNG"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImageDecode(t *testing.T) {
	b := readFile(t, "nist-img.wsq")
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil || format != "wsq" {
		t.Fatalf("image.Decode: format %q, %v", format, err)
	}
	if img.Bounds().Dx() != 256 {
		t.Errorf("width %d", img.Bounds().Dx())
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil || format != "wsq" || cfg.Width != 256 || cfg.Height != 256 {
		t.Fatalf("image.DecodeConfig: %+v %q %v", cfg, format, err)
	}
	img, _, err = image.Decode(bytes.NewReader(b[:100]))
	if err == nil || img != nil {
		t.Errorf("image.Decode of a truncated file: %v, %v (want a nil image and an error)", img, err)
	}
}

func TestParseNISTCOM(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"NIST_COM 3\nPIX_WIDTH 10\nPPI 500\n", 500},
		{"NIST_COM 2\nPPI 1000", 1000},
		{"NIST_COM 2\nPPI -1\n", 0},
		{"NIST_COM 1\nPIX_WIDTH 10\n", 0},
		{"PPI 500", 0},
		{"NIST_COM 2\nPPI x\n", 0},
	} {
		if got := parseNISTCOM(c.in); got != c.want {
			t.Errorf("parseNISTCOM(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestTreesTile checks that for many sizes, odd and even, the 60 coded
// subbands and the uncoded HH quadrant of node 0 tile the image exactly.
func TestTreesTile(t *testing.T) {
	for _, sz := range [][2]int{{832, 768}, {256, 256}, {1, 1}, {7, 3}, {33, 65}, {500, 501}, {127, 255}, {64, 1}} {
		w, h := sz[0], sz[1]
		tr := buildTrees(w, h)
		cover := make([]int, w*h)
		mark := func(r rect) {
			for y := r.y; y < r.y+r.h; y++ {
				for x := r.x; x < r.x+r.w; x++ {
					cover[y*w+x]++
				}
			}
		}
		for _, s := range tr.sub {
			mark(s)
		}
		mark(tr.nodes[0].quadrant(quadHH).rect)
		for i, c := range cover {
			if c != 1 {
				t.Fatalf("%d×%d: pixel (%d,%d) covered %d times", w, h, i%w, i/w, c)
			}
		}
	}
}

// analyse is the forward transform of one line as the spec's encoder does it,
// to check that synthesis inverts it at every length and both layouts.
func analyse(x []float64, h0, h1 []float64, inv bool) []float32 {
	n := len(x)
	at := func(i int) float64 {
		p := mirror(i, n)
		if p < 0 {
			return 0
		}
		return x[p]
	}
	filt := func(h []float64, c int) float64 {
		s := h[0] * at(c)
		for k := 1; k < len(h); k++ {
			s += h[k] * (at(c-k) + at(c+k))
		}
		return s
	}
	var low, high []float32
	for i := 0; i < n; i += 2 {
		low = append(low, float32(filt(h0, i)))
	}
	for i := 1; i < n; i += 2 {
		high = append(high, float32(filt(h1, i)))
	}
	if inv {
		return append(high, low...)
	}
	return append(low, high...)
}

func TestSynthesisInvertsAnalysis(t *testing.T) {
	banks := []struct {
		name   string
		h0, h1 []float64
	}{
		// The spec's 9/7 pair (the unrolled 9-tap paths).
		{"9/7", []float64{0.852698573, 0.3774028186, -0.1106243994, -0.02384946381, 0.03782845235},
			[]float64{0.788485632, -0.4180923187, -0.04068942234, 0.0645388851}},
		// LeGall 5/3 (the generic paths).
		{"5/3", []float64{6.0 / 8, 2.0 / 8, -1.0 / 8}, []float64{1, -0.5}},
	}
	for _, bank := range banks {
		fb := newFilterBank(bank.h0, bank.h1)
		for n := 1; n <= 24; n++ {
			for _, inv := range []bool{false, true} {
				x := make([]float64, n)
				for i := range x {
					x[i] = math.Sin(float64(i)*1.3) * 50
				}
				bands := analyse(x, bank.h0, bank.h1, inv)
				// A node one sample high: rows() alone does the line.
				nd := node{rect: rect{0, 0, n, 1}, invRows: inv}
				out := make([]float32, n)
				fb.rows(out, n, bands, nd, make([]float32, n+2*fb.pad))
				for i := range x {
					if d := math.Abs(float64(out[i]) - x[i]); d > 1e-3 {
						t.Fatalf("%s n=%d inv=%v: x[%d] = %g, reconstructed %g", bank.name, n, inv, i, x[i], out[i])
					}
				}
				// The same line as a column.
				nd = node{rect: rect{0, 0, 1, n}, invCols: inv}
				out2 := make([]float32, n)
				fb.columns(out2, bands, 1, nd)
				for i := range x {
					if d := math.Abs(float64(out2[i]) - x[i]); d > 1e-3 {
						t.Fatalf("%s column n=%d inv=%v: x[%d] = %g, reconstructed %g", bank.name, n, inv, i, x[i], out2[i])
					}
				}
			}
		}
	}
}

func TestDefaultFiltersWithoutDTT(t *testing.T) {
	b := readFile(t, "nist-img.wsq")
	want, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte{0xff, 0xa4})
	n := int(b[i+2])<<8 | int(b[i+3])
	noDTT := append(append([]byte(nil), b[:i]...), b[i+2+n:]...)
	got, err := Decode(bytes.NewReader(noDTT))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Pix, want.Pix) {
		t.Error("decode without DTT differs from the decode with the file's 9/7 taps")
	}
}

// TestErrors: each damaged file gets an error naming the segment or field.
func TestErrors(t *testing.T) {
	good := readFile(t, "wsq-original.wsq")
	at := func(marker byte) int { return bytes.Index(good, []byte{0xff, marker}) }
	patch := func(off int, b ...byte) []byte {
		c := append([]byte(nil), good...)
		copy(c[off:], b)
		return c
	}
	sof, dht, sob, dqt, dtt := at(0xa2), at(0xa6), at(0xa3), at(0xa5), at(0xa4)
	for _, c := range []struct {
		name, want string
		in         []byte
		is         error
	}{
		{"empty", "SOI: truncated at offset 0", nil, io.ErrUnexpectedEOF},
		{"not wsq", "SOI: not a WSQ file: starts with 8950, not FFA0 at offset 0", []byte("\x89PNG\r\n\x1a\n"), nil},
		{"truncated in DHT", "DHT table 0: truncated at offset 700", good[:700], io.ErrUnexpectedEOF},
		{"truncated in SOF", "SOF width: truncated", good[:sof+8], io.ErrUnexpectedEOF},
		{"truncated in data", "SOB block 1: truncated", good[:sob+2000], io.ErrUnexpectedEOF},
		{"no EOI", "truncated", good[:len(good)-2], io.ErrUnexpectedEOF},
		{"huge", "image too large", patch(sof+6, 0xea, 0x60, 0xea, 0x60), ErrTooLarge},
		{"zero width", "SOF width: width is 0", patch(sof+8, 0, 0), nil},
		{"bad table number", "DHT table 9: table number 9 is over 7", patch(dht+4, 9), nil},
		{"overfull code", "DHT table 0: more codes of length 1", patch(dht+5, 3, 0, 0), nil},
		{"undefined table", "SOB block 1: Huffman table 5 is not defined", patch(sob+4, 5), nil},
		{"even filters", "DTT filter lengths: filter lengths 8/7", patch(dtt+4, 8), nil},
		{"DQT length", "DQT", patch(dqt+2, 0x01, 0x90), nil},
		{"bad marker", "marker before SOF: SOB is not allowed before the frame header", patch(dtt, 0xff, 0xa3), nil},
		{"fewer coefficients", "EOI: the blocks hold", patch(sof+6, 0x03, 0x01), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(bytes.NewReader(c.in))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
			var fe *FormatError
			if c.is != ErrTooLarge && !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FormatError", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"wsq-original.wsq", "nist-img.wsq"} {
		f.Add(readFile(f, name))
	}
	// Small files decode in microseconds, so the fuzzer mutates them fastest.
	f.Add(newWSQFile(9, 7).withCoefficients().bytes())
	rst := newWSQFile(40, 33).withCoefficients()
	rst.rstEvery, rst.comment = 5, "NIST_COM 2\nPPI 500\n"
	f.Add(rst.bytes())
	f.Add(newWSQFile(1, 1).withCoefficients().bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := DecodeConfig(bytes.NewReader(b))
		img, info, err2 := DecodeWithInfo(bytes.NewReader(b))
		if err2 != nil {
			return
		}
		if err != nil {
			t.Fatalf("Decode succeeded but DecodeConfig failed: %v", err)
		}
		if img.Bounds().Dx() != cfg.Width || img.Bounds().Dy() != cfg.Height {
			t.Fatalf("Decode %v, DecodeConfig %d×%d", img.Bounds(), cfg.Width, cfg.Height)
		}
		if info.PPI < 0 {
			t.Fatalf("PPI %d", info.PPI)
		}
	})
}

// BenchmarkDecode decodes the 832×768 500 ppi sample.
func BenchmarkDecode(b *testing.B) {
	data := readFile(b, "wsq-original.wsq")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoAllocationBeforeCheck: a header that claims a large image fails
// before the image is allocated, whether it is over MaxPixels or under it
// with too little data to fill it.
func TestNoAllocationBeforeCheck(t *testing.T) {
	good := readFile(t, "wsq-original.wsq")
	sof := bytes.Index(good, []byte{0xff, 0xa2})
	for _, side := range []int{60000, 6000} {
		b := append([]byte(nil), good...)
		b[sof+6], b[sof+7], b[sof+8], b[sof+9] = byte(side>>8), byte(side), byte(side>>8), byte(side)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Decode(bytes.NewReader(b))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%d×%d: no error", side, side)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%d×%d: %v; %d kB allocated", side, side, err, alloc/1000)
		if alloc > 8<<20 {
			t.Errorf("%d×%d: %d bytes allocated before the error, want < 8 MiB", side, side, alloc)
		}
	}
}
