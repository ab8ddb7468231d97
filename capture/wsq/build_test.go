package wsq

import (
	"bytes"
	"testing"
)

// wsqFile writes small WSQ files for tests: the spec's 9/7 DTT, a DQT with
// the given bin widths, one Huffman table in which every symbol 1…254 has
// the 8-bit code symbol−1 (so the entropy data stays byte aligned), and the
// coefficients of the coded subbands in the spec's three blocks.
type wsqFile struct {
	w, h     int
	shift    [2]int // M as (exponent, value)
	scale    [2]int // R as (exponent, value)
	q        [numSubbands]int
	coef     []int // quantised coefficients of subbands 0–59 with q ≠ 0, in order
	rstEvery int   // symbols between RST markers (0: none)
	comment  string
	noDTT    bool
}

func newWSQFile(w, h int) *wsqFile {
	f := &wsqFile{w: w, h: h, shift: [2]int{1, 1234}, scale: [2]int{1, 25}}
	for k := range f.q {
		f.q[k] = 10 // Q = 1.0 (exponent 1)
	}
	return f
}

// coefficients returns how many coefficients the file must carry, per block.
func (f *wsqFile) coefficients() [3]int {
	t := buildTrees(f.w, f.h)
	var n [3]int
	for k := range numCoded {
		if f.q[k] == 0 {
			continue
		}
		b := 0
		if k >= 19 {
			b = 1
		}
		if k >= 52 {
			b = 2
		}
		n[b] += t.sub[k].w * t.sub[k].h
	}
	return n
}

func (f *wsqFile) bytes() []byte {
	var b bytes.Buffer
	u16 := func(v int) { b.WriteByte(byte(v >> 8)); b.WriteByte(byte(v)) }
	seg := func(marker int, payload []byte) {
		u16(marker)
		u16(len(payload) + 2)
		b.Write(payload)
	}
	u16(markerSOI)
	if f.comment != "" {
		seg(markerCOM, []byte(f.comment))
	}
	if !f.noDTT {
		var p bytes.Buffer
		p.Write([]byte{9, 7})
		for _, tap := range [][3]int{{0, 9, 852698573}, {0, 10, 3774028186}, {1, 10, 1106243994}, {1, 11, 2384946381}, {0, 11, 3782845235},
			{0, 9, 788485632}, {1, 10, 4180923187}, {1, 11, 4068942234}, {0, 10, 645388851}} {
			v := uint32(tap[2])
			p.Write([]byte{byte(tap[0]), byte(tap[1]), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		seg(markerDTT, p.Bytes())
	}
	var q bytes.Buffer
	q.Write([]byte{2, 0, 44}) // C = 0.44
	for k := range numSubbands {
		q.Write([]byte{1, byte(f.q[k] >> 8), byte(f.q[k]), 1, 0, 12}) // Q, Z = 1.2
	}
	seg(markerDQT, q.Bytes())
	sof := []byte{0, 255, byte(f.h >> 8), byte(f.h), byte(f.w >> 8), byte(f.w),
		byte(f.shift[0]), byte(f.shift[1] >> 8), byte(f.shift[1]), byte(f.scale[0]), byte(f.scale[1] >> 8), byte(f.scale[1]), 2, 0, 0}
	seg(markerSOF, sof)
	ht := []byte{0, 0, 0, 0, 0, 0, 0, 0, 254, 0, 0, 0, 0, 0, 0, 0, 0}
	for s := 1; s <= 254; s++ {
		ht = append(ht, byte(s))
	}
	seg(markerDHT, ht)
	coef := f.coef
	for _, n := range f.coefficients() {
		if n == 0 {
			continue
		}
		seg(markerSOB, []byte{0})
		var data []byte
		symbols := 0
		put := func(sym int, extra ...byte) {
			if f.rstEvery > 0 && symbols > 0 && symbols%f.rstEvery == 0 {
				data = append(data, 0xff, byte(markerRST0+(symbols/f.rstEvery-1)%8))
			}
			symbols++
			data = append(data, byte(sym-1))
			for _, e := range extra {
				data = append(data, e)
				if e == 0xff {
					data = append(data, 0)
				}
			}
		}
		block := coef[:n]
		coef = coef[n:]
		for i := 0; i < len(block); {
			if block[i] == 0 {
				j := i
				for j < len(block) && block[j] == 0 && j-i < 65535 {
					j++
				}
				switch run := j - i; {
				case run <= 100:
					put(run)
				case run < 256:
					put(symRun8, byte(run))
				default:
					put(symRun16, byte(run>>8), byte(run))
				}
				i = j
				continue
			}
			switch v := block[i]; {
			case v >= -73 && v <= 74:
				put(v + symBias)
			case v > 0 && v < 256:
				put(symPos8, byte(v))
			case v < 0 && v > -256:
				put(symNeg8, byte(-v))
			case v > 0:
				put(symPos16, byte(v>>8), byte(v))
			default:
				put(symNeg16, byte(-v>>8), byte(-v))
			}
			i++
		}
		b.Write(data)
	}
	u16(markerEOI)
	return b.Bytes()
}

// withCoefficients fills f.coef with a deterministic pattern: mostly zeros,
// some small and some large values.
func (f *wsqFile) withCoefficients() *wsqFile {
	n := f.coefficients()
	f.coef = make([]int, n[0]+n[1]+n[2])
	for i := range f.coef {
		switch i % 23 {
		case 0:
			f.coef[i] = (i%7 - 3) * 5
		case 5:
			f.coef[i] = 300 - i%600
		case 11:
			f.coef[i] = 70000 % (i + 2)
		}
	}
	return f
}

// TestFlat: with every coefficient zero the image is round(M) everywhere,
// whatever its size (including sizes where subbands are empty).
func TestFlat(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {2, 3}, {7, 5}, {64, 64}, {65, 33}, {300, 200}} {
		f := newWSQFile(sz[0], sz[1])
		n := f.coefficients()
		f.coef = make([]int, n[0]+n[1]+n[2])
		img, err := Decode(bytes.NewReader(f.bytes()))
		if err != nil {
			t.Fatalf("%v: %v", sz, err)
		}
		for i, p := range img.Pix {
			if p != 123 { // M = 123.4
				t.Fatalf("%v: pixel %d = %d, want 123", sz, i, p)
			}
		}
	}
}

// TestStreamFeatures decodes the same coefficients written with RST
// markers, with a comment, and without a DTT: the pixels must not change.
func TestStreamFeatures(t *testing.T) {
	base := newWSQFile(97, 61).withCoefficients()
	want, err := Decode(bytes.NewReader(base.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	flat := true
	for _, p := range want.Pix {
		flat = flat && p == want.Pix[0]
	}
	if flat {
		t.Fatal("the test pattern decodes to a flat image")
	}
	for name, f := range map[string]*wsqFile{
		"rst":     func() *wsqFile { g := *base; g.rstEvery = 3; return &g }(),
		"comment": func() *wsqFile { g := *base; g.comment = "NIST_COM 2\nPPI 1000\n"; return &g }(),
		"no DTT":  func() *wsqFile { g := *base; g.noDTT = true; return &g }(),
	} {
		img, info, err := DecodeWithInfo(bytes.NewReader(f.bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(img.Pix, want.Pix) {
			t.Errorf("%s: pixels differ", name)
		}
		if name == "comment" && info.PPI != 1000 {
			t.Errorf("PPI %d, want 1000", info.PPI)
		}
	}
	// Subbands with Q = 0 are not transmitted.
	f := newWSQFile(97, 61)
	for k := 30; k < 45; k++ {
		f.q[k] = 0
	}
	f.withCoefficients()
	if _, err := Decode(bytes.NewReader(f.bytes())); err != nil {
		t.Errorf("Q = 0 subbands: %v", err)
	}
	// A wrong RST number is refused.
	g := *base
	g.rstEvery = 3
	b := g.bytes()
	i := bytes.Index(b, []byte{0xff, 0xb1})
	b[i+1] = 0xb5
	if _, err := Decode(bytes.NewReader(b)); err == nil {
		t.Error("RST5 in place of RST1 accepted")
	}
}
