package an2k

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the parser's output")

// testFiles are the NBIS and libbiomeval transactions in testdata (see
// testdata/SOURCES.md).
func testFiles(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, p := range []string{"testdata/*.an2", "testdata/*.an2k"} {
		m, _ := filepath.Glob(p)
		out = append(out, m...)
	}
	if len(out) != 23 {
		t.Fatalf("%d test files in testdata, want 23", len(out))
	}
	return out
}

func parseFile(t testing.TB, path string) ([]byte, *Transaction) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, tr
}

// goldenRecord is a record as the golden files show it: its type, IDC,
// field numbers and image, never its text (Type-2 of some files holds
// what may be personal data).
type goldenRecord struct {
	Type   int
	IDC    string
	Fields string `json:",omitempty"` // the field numbers in order
	Raw    string `json:",omitempty"`
	Image  string `json:",omitempty"`
}

type golden struct {
	Version, TOT string
	Domain       string `json:",omitempty"`
	Records      []goldenRecord
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes, sha256 %s", len(b), hex.EncodeToString(s[:8]))
}

func toGolden(t *testing.T, tr *Transaction) golden {
	g := golden{Version: tr.Version(), TOT: tr.TOT()}
	if n, v := tr.Domain(); n != "" {
		g.Domain = n + " " + v
	}
	for i := range tr.Records {
		r := &tr.Records[i]
		gr := goldenRecord{Type: r.Type}
		if idc, ok := r.IDC(); ok {
			gr.IDC = fmt.Sprint(idc)
		}
		var nums []int
		for _, f := range r.Fields {
			nums = append(nums, f.Num)
		}
		if nums != nil {
			gr.Fields = fmt.Sprint(nums)
		}
		if r.Raw != nil {
			gr.Raw = digest(r.Raw)
		}
		im, err := tr.Image(i)
		switch {
		case err == nil:
			gr.Image = fmt.Sprintf("%s %d×%d %d ppi %d bpp positions %v %s sap %d; %s",
				im.Compression, im.Width, im.Height, im.PPI, im.Depth, im.Positions, im.ImageType, im.SAP, digest(im.Data))
		case !errors.Is(err, ErrUnsupported):
			t.Errorf("record %d: %v", i, err)
		}
		g.Records = append(g.Records, gr)
	}
	return g
}

// TestGolden: every test file parses to its end, and its records (types in
// order, IDCs, field numbers, images) are those of
// testdata/golden/<file>.json; run with -update and review the diff after
// a deliberate change.
func TestGolden(t *testing.T) {
	for _, path := range testFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, tr := parseFile(t, path)
			got, err := json.MarshalIndent(toGolden(t, tr), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			gp := filepath.Join("testdata", "golden", filepath.Base(path)+".json")
			if *update {
				if err := os.WriteFile(gp, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed records differ from %s (run with -update and review the diff)", gp)
			}
		})
	}
}

// TestRecordTypes pins the record types of a few files against
// SOURCES.md, independently of the golden files.
func TestRecordTypes(t *testing.T) {
	for file, want := range map[string][]int{
		"valid1.16.an2":  {1, 2, 4, 10, 13, 14, 15, 16, 17, 99},
		"valid1.14.an2":  {1, 2, 4, 9},
		"type9-15.an2k":  {1, 2, 15, 15, 9},
		"type9-efs.an2k": {1, 9, 9, 9, 9, 9, 9, 9, 9},
		"sign_raw.an2":   {1, 8},
		"type3.an2k":     {1, 2, 3},
	} {
		_, tr := parseFile(t, filepath.Join("testdata", file))
		var got []int
		for _, r := range tr.Records {
			got = append(got, r.Type)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: types %v, want %v", file, got, want)
		}
	}
}

func TestType1(t *testing.T) {
	_, tr := parseFile(t, "testdata/face_jpb_DOM_GMT_DCS.an2")
	name, _ := tr.Domain()
	if tr.Version() != "0400" || tr.TOT() != "NISTDAAT" || name == "" || tr.GMT() == "" || len(tr.Date()) != 8 {
		t.Errorf("VER %q TOT %q DOM %q GMT %q DAT %q", tr.Version(), tr.TOT(), name, tr.GMT(), tr.Date())
	}
	// Old files' 2-digit tags are the same fields.
	_, tr = parseFile(t, "testdata/valid1.1.an2")
	if tr.Version() != "0201" || tr.TOT() != "CAR" || tr.Records[0].Fields[0].Num != fVER {
		t.Errorf("valid1.1: VER %q TOT %q first field %d", tr.Version(), tr.TOT(), tr.Records[0].Fields[0].Num)
	}
	if cnt := tr.Records[0].Item(fCNT, 2, 0); cnt != "4" {
		t.Errorf("CNT's second entry has type %q, want 4", cnt)
	}
}

// TestRoundTrip: Parse → Encode → Parse gives equal records for every file,
// and files already written with 3-digit tags, their tags' record types
// right, come back byte for byte.
func TestRoundTrip(t *testing.T) {
	sameBytes := 0
	for _, path := range testFiles(t) {
		b, tr := parseFile(t, path)
		out, err := tr.Encode()
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		tr2, err := Parse(out)
		if err != nil {
			t.Errorf("%s: re-reading: %v", path, err)
			continue
		}
		checkEqual(t, path, tr, tr2)
		if bytes.Equal(b, out) {
			sameBytes++
		}
	}
	// The NBIS valid1.1–1.15 files use 2-digit Type-1 tags and
	// type9-13.an2k has a 13.005 tag in its Type-9.
	if sameBytes != 10 {
		t.Errorf("%d files came back byte for byte, want 10", sameBytes)
	}
}

func checkEqual(t *testing.T, name string, a, b *Transaction) {
	t.Helper()
	if len(a.Records) != len(b.Records) {
		t.Fatalf("%s: %d records, then %d", name, len(a.Records), len(b.Records))
	}
	for i := range a.Records {
		if !a.Records[i].Equal(&b.Records[i]) {
			t.Errorf("%s: record %d (Type-%d) differs after the round trip", name, i, a.Records[i].Type)
		}
	}
}

// TestImages decodes every image of every file: WSQ, JPEG and
// uncompressed ones (Type-3 too) at their declared size (but for
// valid1.8.an2, whose WSQ images are smaller than its records say, and
// valid1.2.an2's Type-6, whose bytes do not fit its size), JPEG 2000
// refused with ErrNeedsJPEG2000 (templates/face decodes those), Type-6
// facsimile with ErrUnsupported.
func TestImages(t *testing.T) {
	// valid1.8.an2's records declare sizes its WSQ images do not have.
	mismatch := map[string]string{
		"valid1.8.an2/2": "1600×976", "valid1.8.an2/3": "1600×976", "valid1.8.an2/4": "1600×800",
	}
	counts := map[string]int{}
	for _, path := range testFiles(t) {
		_, tr := parseFile(t, path)
		for i := range tr.Records {
			im, err := tr.Image(i)
			if errors.Is(err, ErrUnsupported) {
				continue
			}
			if err != nil {
				t.Fatalf("%s record %d: %v", path, i, err)
			}
			img, err := im.Decode()
			if im.Compression == "jpeg2000" {
				if !errors.Is(err, ErrNeedsJPEG2000) {
					t.Errorf("%s record %d: JPEG 2000: %v", path, i, err)
				}
				counts["jpeg2000"]++
				continue
			}
			if im.Compression == "fax" {
				if !errors.Is(err, ErrUnsupported) {
					t.Errorf("%s record %d: facsimile: %v", path, i, err)
				}
				counts["fax"]++
				continue
			}
			if key := fmt.Sprintf("%s/%d", filepath.Base(path), i); key == "valid1.2.an2/3" {
				// Its Type-6 declares 800×800 1-bit pixels and holds
				// 262,144 bytes (512×512 bytes).
				if !errors.Is(err, ErrValue) {
					t.Errorf("%s: %v", key, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s record %d (%s): %v", path, i, im.Compression, err)
				continue
			}
			counts[im.Compression]++
			size := fmt.Sprintf("%d×%d", img.Bounds().Dx(), img.Bounds().Dy())
			want := fmt.Sprintf("%d×%d", im.Width, im.Height)
			if m, ok := mismatch[fmt.Sprintf("%s/%d", filepath.Base(path), i)]; ok {
				want = m
			}
			if size != want {
				t.Errorf("%s record %d (%s): decoded %s, want %s", path, i, im.Compression, size, want)
			}
		}
	}
	t.Logf("images: %v", counts)
	if counts["wsq"] != 9 || counts["jpeg"] != 11 || counts["none"] != 17 || counts["jpeg2000"] != 1 || counts["fax"] != 14 {
		t.Errorf("images by compression %v", counts)
	}
}

// TestDecodeFormats covers the decoders the test files do not: PNG, 1-bit
// and 24-bit uncompressed, and the refusals.
func TestDecodeFormats(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(g.Pix, []byte{0, 50, 100, 150, 200, 250})
	var pngData bytes.Buffer
	if err := png.Encode(&pngData, g); err != nil {
		t.Fatal(err)
	}
	tr := &Transaction{Records: []Record{{Type: 1}}}
	r := Record{Type: 14}
	for _, f := range []Field{TextField(6, []string{"3"}), TextField(7, []string{"2"}), TextField(8, []string{"2"}),
		TextField(9, []string{"197"}), TextField(11, []string{"PNG"}), TextField(12, []string{"8"}), {Num: 999, Value: pngData.Bytes()}} {
		r.Set(f)
	}
	tr.Add(r)
	im, err := tr.Image(1)
	if err != nil || im.Compression != "png" || im.PPI != 500 {
		t.Fatalf("%+v %v", im, err)
	}
	img, err := im.Decode()
	if err != nil || img.Bounds() != g.Bounds() {
		t.Fatalf("PNG: %v %v", img, err)
	}
	for i, v := range g.Pix {
		if y, _, _, _ := img.At(i%3, i/3).RGBA(); byte(y>>8) != v {
			t.Errorf("PNG pixel %d: %d, want %d", i, y>>8, v)
		}
	}

	// 10×2 at 1 bit: rows of 2 bytes, 1 is black.
	bw := &Image{Compression: "none", Depth: 1, Width: 10, Height: 2, Data: []byte{0x80, 0x40, 0xFF, 0xC0}}
	img, err = bw.Decode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := img.(*image.Gray).Pix; !bytes.Equal(got, want) {
		t.Errorf("1-bit: %v, want %v", got, want)
	}
	rgb := &Image{Compression: "none", Depth: 24, Width: 2, Height: 1, Data: []byte{1, 2, 3, 4, 5, 6}}
	if img, err := rgb.Decode(); err != nil || !bytes.Equal(img.(*image.RGBA).Pix, []byte{1, 2, 3, 255, 4, 5, 6, 255}) {
		t.Errorf("24-bit: %v %v", img, err)
	}
	for _, c := range []struct {
		im   Image
		kind error
	}{
		{Image{Compression: "jpeg-lossless", Width: 1, Height: 1}, ErrUnsupported},
		{Image{Compression: "fax", Width: 1, Height: 1}, ErrUnsupported},
		{Image{Compression: "jpeg2000", Width: 1, Height: 1}, ErrNeedsJPEG2000},
		{Image{Compression: "none", Depth: 8, Width: 2, Height: 2, Data: []byte{1, 2, 3}}, ErrValue},
		{Image{Compression: "none", Depth: 8, Width: 10_000, Height: 10_000}, ErrValue},
		{Image{Compression: "wsq", Width: 1, Height: 1, Data: []byte("not WSQ")}, ErrFormat},
		{Image{Compression: "jpeg", Width: 1, Height: 1, Data: pngData.Bytes()}, ErrFormat},
	} {
		if _, err := c.im.Decode(); !errors.Is(err, c.kind) {
			t.Errorf("%s %d×%d: %v, want %v", c.im.Compression, c.im.Width, c.im.Height, err, c.kind)
		}
	}
}
