package facerecord

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// seeds are every test file, valid or not, the three-face DG2, a 39794-5
// record with all the metadata read here, bare and in a DG2, and the
// 19794-5 records wrapped in a DG2.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, pattern := range []string{"testdata/*.dat", "testdata/*.bin", "testdata/*.iso2005", "testdata/*/*.bin", "testdata/*.jpg"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			out = append(out, readFile(t, f[len("testdata/"):]))
		}
	}
	if len(out) != 9 {
		t.Fatalf("%d seed files", len(out))
	}
	full := full39794(readFile(t, "ISO19794_Test1_Face.jpg"), []byte{0x80, 2, 0, 148, 0x81, 1, 70})
	out = append(out, multiFaceDG2(t), full, dg2(1, enc(0x7F60, bht19794, enc(0x7F2E, full))))
	for _, f := range []string{"ISO19794_Test1_Data.bin", "face01.iso2005"} {
		out = append(out, dg2(1, enc(0x7F60, bht19794, enc(0x5F2E, readFile(t, f)))))
	}
	return out
}

// checkParse is the fuzz property: no panic, the input unchanged, an
// error is an *Error wrapping a sentinel, and every accepted face has an
// image inside the input whose own headers give the face's type and size.
func checkParse(t *testing.T, parse func([]byte) ([]Face, error), b []byte) {
	in := append([]byte(nil), b...)
	faces, err := parse(b)
	if !bytes.Equal(in, b) {
		t.Fatal("parse modified its input")
	}
	if err != nil {
		checkError(t, err)
		return
	}
	if len(faces) == 0 {
		t.Fatal("no error and no face")
	}
	for i, f := range faces {
		if f.Format == FormatUnknown || f.ImageOffset < 0 || f.ImageOffset+len(f.Image) > len(b) ||
			!bytes.Equal(b[f.ImageOffset:f.ImageOffset+len(f.Image)], f.Image) {
			t.Fatalf("face %d: format %v, image of %d bytes at %d in %d", i, f.Format, len(f.Image), f.ImageOffset, len(b))
		}
		typ, w, h, err := ImageInfo(f.Image)
		if err != nil || typ != f.ImageType || w != f.Width || h != f.Height || w <= 0 || h <= 0 {
			t.Fatalf("face %d: ImageInfo %v %d×%d %v, face %v %d×%d", i, typ, w, h, err, f.ImageType, f.Width, f.Height)
		}
	}
}

// fuzz runs the property over the seeds and mutations of them. The seeds
// are 5–27 KB, and Go minimises each new input it keeps for up to a minute
// by default, which stalls a short run; run with a small budget:
//
//	go test -run '^$' -fuzz '^FuzzParseDG2$' -fuzztime 60s -fuzzminimizetime 2s ./templates/facerecord
func fuzz(f *testing.F, parse func([]byte) ([]Face, error)) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, parse, b) })
}

func FuzzParseDG2(f *testing.F)    { fuzz(f, ParseDG2) }
func FuzzParseRecord(f *testing.F) { fuzz(f, ParseRecord) }

// TestMutations runs the fuzz property over seeded random mutations of
// the headers (the first 100 bytes, where the structure is) so plain
// `go test` exercises it beyond the seeds.
func TestMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range seeds(t) {
		for range 300 {
			m := append([]byte(nil), s...)
			for range 1 + rng.IntN(3) {
				m[rng.IntN(min(len(m), 100))] ^= byte(1 << rng.IntN(8))
			}
			checkParse(t, ParseDG2, m)
			checkParse(t, ParseRecord, m)
		}
	}
}
