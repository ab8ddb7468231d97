package lds

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"
)

// seeds are every test file (each parser gets them all, so the fuzzer
// also crosses formats), the BSI DG2, and the bare records of DG3 and
// DG4.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range parsers {
		out = append(out, readFile(t, c.file))
	}
	out = append(out, dg2(t))
	for _, dg := range []string{"bsi2008/Datagroup3.bin", "bsi2008/Datagroup4.bin"} {
		b := readFile(t, dg)
		for _, magic := range []string{"FIR\x00", "IIR\x00"} {
			if i := bytes.Index(b, []byte(magic)); i >= 0 {
				out = append(out, b[i:])
			}
		}
	}
	return out
}

// inside checks that img is b[off:off+len(img)].
func inside(t *testing.T, b, img []byte, off int, what string) {
	if off < 0 || off+len(img) > len(b) || !bytes.Equal(b[off:off+len(img)], img) {
		t.Fatalf("%s: %d bytes at %d, input of %d", what, len(img), off, len(b))
	}
}

// checkParse is the fuzz property: no panic, the input unchanged, an
// error is an *Error wrapping a sentinel at an offset inside the input,
// and what is returned lies in the input.
func checkParse(t *testing.T, parse func([]byte) (any, error), b []byte) {
	in := bytes.Clone(b)
	v, err := parse(b)
	if !bytes.Equal(in, b) {
		t.Fatal("parse modified its input")
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(b) {
			t.Fatalf("error %T %v", err, err)
		}
		for _, s := range []error{ErrTruncated, ErrFormat, ErrUnsupported, ErrImage} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	switch v := v.(type) {
	case []FingerImage:
		for _, f := range v {
			inside(t, b, f.Image, f.ImageOffset, "finger image")
		}
	case []Iris:
		for _, ir := range v {
			inside(t, b, ir.Image, ir.ImageOffset, "iris image")
		}
	case *SOD:
		if len(v.Hashes) == 0 {
			t.Fatal("SOD without hashes")
		}
		for dg := range v.Hashes {
			if err := v.CheckHash(dg, b); err != nil && !errors.Is(err, ErrHashMismatch) {
				t.Fatal(err)
			}
		}
	case *MRZ:
		if len(v.Lines) < 2 {
			t.Fatal("MRZ without lines")
		}
	}
}

// fuzz runs the property over the seeds and mutations of them. Run each
// with a small minimisation budget (the seeds are up to 32 KB):
//
//	go test -run x -fuzz '^FuzzParseDG3$' -fuzztime 30s -fuzzminimizetime 2s -parallel 1 ./templates/lds/
func fuzz(f *testing.F, parse func([]byte) (any, error)) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, parse, b) })
}

func FuzzParseCOM(f *testing.F)        { fuzz(f, parsers[0].parse) }
func FuzzParseDG1(f *testing.F)        { fuzz(f, parsers[1].parse) }
func FuzzParseDG3(f *testing.F)        { fuzz(f, parsers[2].parse) }
func FuzzParseDG4(f *testing.F)        { fuzz(f, parsers[3].parse) }
func FuzzParseDG14(f *testing.F)       { fuzz(f, parsers[4].parse) }
func FuzzParseDG15(f *testing.F)       { fuzz(f, parsers[5].parse) }
func FuzzParseSOD(f *testing.F)        { fuzz(f, parsers[6].parse) }
func FuzzParseIrisRecord(f *testing.F) { fuzz(f, parsers[7].parse) }

// TestMutations runs the fuzz property over seeded random mutations of
// the headers (the first 120 bytes, where the structure is) so plain
// `go test` exercises it beyond the seeds.
func TestMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range seeds(t) {
		for range 200 {
			m := bytes.Clone(s)
			for range 1 + rng.IntN(3) {
				m[rng.IntN(min(len(m), 120))] ^= byte(1 << rng.IntN(8))
			}
			for _, c := range parsers {
				checkParse(t, c.parse, m)
			}
		}
	}
}

// TestLengthsDoNotAllocate: records declaring the largest counts and
// lengths their fields hold are refused without allocating for them.
func TestLengthsDoNotAllocate(t *testing.T) {
	// 255 finger images in a 33-byte record; 255 iris subtypes of 65535
	// images each in 50 bytes; 65535 iris representations in 68 bytes.
	fir := []byte("FIR\x00010\x00\x00\x00\x00\x00\x00\x21\x00\x00\x00\x1F\xFF\x01\x01\xF4\x01\xF4\x01\xF4\x01\xF4\x08\x02\x00\x00\x00")
	dg3 := append([]byte{0x63, 0, 0x7F, 0x61, 0, 0x02, 0x01, 0x01, 0x7F, 0x60, 0, 0xA1, 0x00, 0x5F, 0x2E, byte(len(fir))}, fir...)
	dg3[1], dg3[4], dg3[10] = byte(len(dg3)-2), byte(len(dg3)-5), byte(len(dg3)-11)
	iir5 := append([]byte("IIR\x00010\x00\x00\x00\x00\x32\x00\x00\xFF\x00\x2D\x00\x00\x00\x00\x00\x10"), make([]byte, 24)...)
	iir5 = append(iir5, 0x01, 0xFF, 0xFF, 0, 0)
	iir11 := append([]byte("IIR\x00020\x00\x00\x00\x00\x44\xFF\xFF\x00\x01"), make([]byte, 52)...)
	iir11[16+3] = 52      // representation length, no quality block
	iir11[16+19+4] = 0x0E // PNG
	for _, c := range []struct {
		name, want string
		parse      func([]byte) (any, error)
		in         []byte
	}{
		{"DG3", "19794-4 finger 1 data block length: needs 4 bytes", parsers[2].parse, dg3},
		{"19794-6:2005", "19794-6 subtype 1 image 1 header: needs 11 bytes", parsers[7].parse, iir5},
		{"19794-6:2011", "19794-6 representation 1 image: empty image", parsers[7].parse, iir11},
	} {
		_, err := c.parse(c.in)
		checkErr(t, err, errors.Unwrap(err), c.want)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 100
		for range runs {
			c.parse(c.in)
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4096 {
			t.Errorf("%s: %d bytes allocated per parse of %d bytes", c.name, per, len(c.in))
		}
	}
}
