package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/tiff"

	"github.com/bordermatch/bordermatch/templates/an2k"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// faceJPEG converts a test photo (PNG) to the JPEG a Type-10 holds.
func faceJPEG(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(photo(p))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fingerGray reads an FVC 2002 fingerprint (8-bit TIFF, 500 ppi) as the
// grey image of an uncompressed Type-14.
func fingerGray(t *testing.T, p string) *image.Gray {
	t.Helper()
	f, err := os.Open(fingerprint(p))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := tiff.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Bounds(), img, img.Bounds().Min, draw.Src)
	return g
}

// nistFile builds an INT-I transaction (TOT CPS) with a Type-2 holding the
// reference and name, a Type-10 face from the photo and a Type-14 per
// finger, and writes it into dir.
func nistFile(t *testing.T, dir, file, reference, name, face string, fingers map[minutiae.Position]string) string {
	t.Helper()
	p, err := an2k.LoadProfile("int-i")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := an2k.NewTransaction(p, "CPS", an2k.Header{Originator: "BM0000001", Destination: "IP0000000", TCN: "TCN-" + reference})
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{"reference": reference, "name": name, "nationality": "USA", "date_of_birth": "19800517", "sex": "M"}
	if reference == "" {
		delete(attrs, "reference")
	}
	t2, err := p.Type2(attrs)
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(t2)
	if face != "" {
		if _, err := tx.AddFace(faceJPEG(t, face), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, pos := range []minutiae.Position{minutiae.RightIndex, minutiae.LeftIndex} {
		if f, ok := fingers[pos]; ok {
			if _, err := tx.AddFingerprint(an2k.Fingerprint{Gray: fingerGray(t, f), PPI: 500, Position: int(pos), Impression: 0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNISTEndToEnd: ANSI/NIST-ITL transactions through the CLI: add --nist
// (id and name from Type-2), search --nist with another photo of the same
// person, export back to a transaction that parses with its Type-2 name,
// Type-10 face and Type-14 fingers, import of a directory of .an2 files,
// and a malformed file refused before any call.
func TestNISTEndToEnd(t *testing.T) {
	d := startMatchd(t, t.TempDir())
	dir := t.TempDir()
	mustCLI(t, d.addr, "add", "--id", "sheldon", "--name", "Sheldon", "--photo", photo("bbt/sheldon/1.png"), "--list", "interpol")

	enrol := nistFile(t, dir, "leonard.an2", "leonard", "HOFSTADTER, LEONARD", "bbt/leonard/1.png", map[minutiae.Position]string{
		minutiae.RightIndex: "fvc2002_db1_b/101_1.tif", minutiae.LeftIndex: "fvc2002_db1_b/102_1.tif"})
	out := mustCLI(t, d.addr, "add", "--nist", enrol, "--list", "interpol")
	if !strings.Contains(out, "Added leonard (HOFSTADTER, LEONARD) to interpol with 1 photo(s) and 2 finger(s) from leonard.an2 (INT-I 4.22 CPS)") {
		t.Errorf("add --nist printed %q", out)
	}
	t.Logf("watchlist add --nist:\n%s", out)
	out = mustCLI(t, d.addr, "show", "leonard", "--json")
	var shown struct {
		Name      string
		Templates int
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Name != "HOFSTADTER, LEONARD" || shown.Templates < 3 {
		t.Errorf("show leonard: %v %s", err, out)
	}

	probe := nistFile(t, dir, "probe.an2", "", "UNKNOWN", "bbt/leonard/2.png", nil)
	out = mustCLI(t, d.addr, "search", "--nist", probe, "--json")
	var res struct {
		Candidates []struct {
			SubjectID string `json:"subject_id"`
		}
		NIST struct {
			Faces  int
			Domain string
			TOT    string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "leonard" ||
		res.NIST.Faces != 1 || res.NIST.Domain != "INT-I 4.22" || res.NIST.TOT != "CPS" {
		t.Fatalf("search --nist: %v %s", err, out)
	}
	out = mustCLI(t, d.addr, "search", "--nist", probe)
	if !strings.Contains(out, "RANK") || !strings.Contains(out, "leonard") || !strings.Contains(out, "From probe.an2 (INT-I 4.22 CPS): searched with 1 face.") {
		t.Errorf("search --nist printed %q", out)
	}
	t.Logf("watchlist search --nist:\n%s", out)

	exported := filepath.Join(dir, "f.an2")
	out = mustCLI(t, d.addr, "export", "leonard", "--ori", "BM0000001", "--dai", "IP0000000", "-o", exported)
	if !strings.Contains(out, "Wrote leonard as an ANSI/NIST-ITL transaction (INT-I): Type-1, Type-2, 1× Type-10, 2× Type-14 to "+exported) {
		t.Errorf("export printed %q", out)
	}
	t.Logf("watchlist export:\n%s", out)
	b, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := an2k.Parse(b)
	if err != nil {
		t.Fatalf("the exported file does not parse: %v", err)
	}
	p, _ := an2k.LoadProfile("int-i")
	types := map[int]int{}
	for i, r := range tx.Records {
		types[r.Type]++
		switch r.Type {
		case 2:
			if name := p.Subject(&tx.Records[i])["name"]; name != "HOFSTADTER, LEONARD" {
				t.Errorf("exported Type-2 name %q", name)
			}
		case 10, 14:
			if _, err := tx.Image(i); err != nil {
				t.Errorf("exported record %d (Type-%d): %v", i, r.Type, err)
			}
		}
	}
	if types[1] != 1 || types[2] != 1 || types[10] != 1 || types[14] != 2 {
		t.Errorf("exported records by type: %v", types)
	}
	if dom, _ := tx.Domain(); dom != "INT-I" || tx.Originator() != "BM0000001" || tx.Destination() != "IP0000000" {
		t.Errorf("exported Type-1: DOM %q ORI %q DAI %q", dom, tx.Originator(), tx.Destination())
	}
	if _, errs, code := cli(t, d.addr, "export", "leonard", "-o", exported); code != 4 || !strings.Contains(errs, "--force") {
		t.Errorf("export over an existing file: exit %d %q", code, errs)
	}

	imp := t.TempDir()
	nistFile(t, imp, "penny.an2", "penny", "PENNY", "bbt/penny/1.png", nil)
	nistFile(t, imp, "howard.an2", "howard", "WOLOWITZ, HOWARD", "bbt/howard/1.png", nil)
	out = mustCLI(t, d.addr, "import", imp, "--list", "interpol")
	if !strings.Contains(out, "Imported 2, already enrolled 0, failed 0 (of 2 ANSI/NIST files).") {
		t.Errorf("import printed %q", out)
	}
	out = mustCLI(t, d.addr, "show", "howard", "--json")
	if !strings.Contains(out, "WOLOWITZ, HOWARD") {
		t.Errorf("imported howard: %s", out)
	}

	bad := filepath.Join(dir, "broken.an2")
	if err := os.WriteFile(bad, b[:len(b)-1000], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "--nist", bad, "--list", "interpol"}, {"search", "--nist", bad}} {
		out, errs, code := cli(t, d.addr, args...)
		if code != 4 || !strings.Contains(errs, "broken.an2") || !strings.Contains(errs, "record ") || !strings.Contains(errs, "at byte") {
			t.Errorf("%v: exit %d %q %q", args, code, out, errs)
		}
	}
	d.stop(t)
}
