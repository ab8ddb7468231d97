package wsq

import (
	"fmt"
	"image"
	"math"
)

// frame is the SOF frame header.
type frame struct {
	black, white  int     // A, B: scanner black and white levels
	height, width int     // Y, X
	shift, scale  float32 // M and R: pixel = round(value·R + M)
	encoder       int     // encoder algorithm number
	software      int     // software implementation number
}

// quantTable is the DQT table: bin centre C and, per subband k, bin width
// Q[k] and zero-bin width Z[k]. A subband with Q[k] = 0 is not transmitted.
type quantTable struct {
	c    float32
	q, z [numSubbands]float32
}

// maxFilterTaps bounds the filter lengths a DTT may declare; the spec's
// filters have 9 and 7 taps.
const maxFilterTaps = 31

// maxHuffTables is the number of Huffman table slots (Th = 0…7).
const maxHuffTables = 8

type decoder struct {
	in  input
	buf []byte // segment payload buffer, reused

	frame     frame
	haveFrame bool
	filters   *filterBank // from DTT; the spec's default 9/7 bank when nil
	quant     quantTable
	haveQuant bool
	huff      [maxHuffTables]*huffTable

	// Entropy decoding state.
	bits    byte  // the byte being consumed
	nbits   uint8 // bits of it not yet consumed
	tokens  []int32
	ncoef   int // coefficients decoded so far
	maxCoef int // coefficients that subbands 0–59 can hold at most

	info Info
	img  *image.Gray
}

// readHeader reads SOI, the tables and comments before the frame, and SOF.
func (d *decoder) readHeader() error {
	var soi [2]byte
	for i := range soi {
		b, err := d.in.readByte("SOI")
		if err != nil {
			return err
		}
		soi[i] = b
	}
	if soi[0] != 0xff || soi[1] != 0xa0 {
		return d.in.errAt("SOI", 0, "not a WSQ file: starts with %02X%02X, not FFA0", soi[0], soi[1])
	}
	for {
		at := d.in.off
		m, err := d.in.readMarker("marker before SOF")
		if err != nil {
			return err
		}
		switch m {
		case markerSOF:
			return d.readFrame()
		case markerDTT, markerDQT, markerDHT, markerDRT, markerCOM:
			if err := d.readTable(m); err != nil {
				return err
			}
		default:
			return d.in.errAt("marker before SOF", at, "%s is not allowed before the frame header", markerName(m))
		}
	}
}

func (d *decoder) readTable(m int) error {
	seg, err := d.in.readSegment(markerName(m), d.buf)
	if err != nil {
		return err
	}
	d.buf = seg.b[:0]
	switch m {
	case markerDTT:
		return d.readTransformTable(&seg)
	case markerDQT:
		return d.readQuantTable(&seg)
	case markerDHT:
		return d.readHuffmanTables(&seg)
	case markerDRT:
		// Ri, the restart interval: decoding only needs the RST markers.
		if _, err := seg.u16("restart interval"); err != nil {
			return err
		}
		return seg.end()
	case markerCOM:
		if seg.truncated {
			return seg.end()
		}
		c := string(seg.b)
		d.info.Comments = append(d.info.Comments, c)
		if ppi := parseNISTCOM(c); ppi > 0 {
			d.info.PPI = ppi
		}
		return nil
	}
	return fmt.Errorf("wsq: internal: readTable(%04X)", m)
}

func (d *decoder) readFrame() error {
	if d.haveFrame {
		return d.in.errAt("SOF", d.in.off-2, "second frame header")
	}
	seg, err := d.in.readSegment("SOF", d.buf)
	if err != nil {
		return err
	}
	d.buf = seg.b[:0]
	f := &d.frame
	if f.black, err = seg.u8("black"); err != nil {
		return err
	}
	if f.white, err = seg.u8("white"); err != nil {
		return err
	}
	if f.height, err = seg.u16("height"); err != nil {
		return err
	}
	if f.height == 0 {
		return seg.errAt("height", seg.pos-2, "height is 0")
	}
	if f.width, err = seg.u16("width"); err != nil {
		return err
	}
	if f.width == 0 {
		return seg.errAt("width", seg.pos-2, "width is 0")
	}
	m, err := seg.scaled("shift M")
	if err != nil {
		return err
	}
	r, err := seg.scaled("scale R")
	if err != nil {
		return err
	}
	f.shift, f.scale = float32(m), float32(r)
	if f.encoder, err = seg.u8("encoder"); err != nil {
		return err
	}
	if f.software, err = seg.u16("software"); err != nil {
		return err
	}
	if err := seg.end(); err != nil {
		return err
	}
	d.haveFrame = true
	d.info.Black, d.info.White = f.black, f.white
	d.info.Encoder, d.info.Software = f.encoder, f.software
	return nil
}

// readTransformTable reads DTT: the lengths of the analysis lowpass and
// highpass filters, then the non-negative-index half of each (both are
// symmetric), each tap as sign byte, decimal exponent and 32-bit magnitude.
func (d *decoder) readTransformTable(seg *segment) error {
	lowLen, err := seg.u8("lowpass length")
	if err != nil {
		return err
	}
	highLen, err := seg.u8("highpass length")
	if err != nil {
		return err
	}
	for _, n := range []int{lowLen, highLen} {
		if n%2 == 0 || n > maxFilterTaps {
			// Even lengths are the spec's half-sample symmetric filter banks,
			// which no known encoder uses.
			return seg.errAt("filter lengths", 0, "filter lengths %d/%d: only odd lengths up to %d are supported", lowLen, highLen, maxFilterTaps)
		}
	}
	half := func(n int, name string) ([]float64, error) {
		taps := make([]float64, (n+1)/2)
		for i := range taps {
			field := fmt.Sprintf("%s tap %d", name, i)
			sign, err := seg.u8(field)
			if err != nil {
				return nil, err
			}
			exp, err := seg.u8(field)
			if err != nil {
				return nil, err
			}
			v, err := seg.u32(field)
			if err != nil {
				return nil, err
			}
			taps[i] = float64(v) / math.Pow10(exp)
			if sign != 0 {
				taps[i] = -taps[i]
			}
		}
		return taps, nil
	}
	h0, err := half(lowLen, "lowpass")
	if err != nil {
		return err
	}
	h1, err := half(highLen, "highpass")
	if err != nil {
		return err
	}
	if err := seg.end(); err != nil {
		return err
	}
	d.filters = newFilterBank(h0, h1)
	return nil
}

// readQuantTable reads DQT: the bin centre C, then Q and Z of all 64
// subbands.
func (d *decoder) readQuantTable(seg *segment) error {
	c, err := seg.scaled("bin centre C")
	if err != nil {
		return err
	}
	d.quant.c = float32(c)
	for k := range numSubbands {
		q, err := seg.scaled(fmt.Sprintf("subband %d Q", k))
		if err != nil {
			return err
		}
		z, err := seg.scaled(fmt.Sprintf("subband %d Z", k))
		if err != nil {
			return err
		}
		d.quant.q[k], d.quant.z[k] = float32(q), float32(z)
	}
	if err := seg.end(); err != nil {
		return err
	}
	d.haveQuant = true
	return nil
}

// readHuffmanTables reads DHT: one or more tables, each its number Th, the
// counts L1…L16 of codes of each length, and the symbols in code order.
func (d *decoder) readHuffmanTables(seg *segment) error {
	if len(seg.b) == 0 && !seg.truncated {
		return seg.errAt("", 0, "no table")
	}
	for seg.pos < len(seg.b) || seg.truncated {
		th, err := seg.u8("table number")
		if err != nil {
			return err
		}
		where := fmt.Sprintf("table %d", th)
		if th >= maxHuffTables {
			return seg.errAt(where, seg.pos-1, "table number %d is over 7", th)
		}
		countsAt := seg.pos
		counts, err := seg.bytes(where, 16)
		if err != nil {
			return err
		}
		n := 0
		for _, c := range counts {
			n += int(c)
		}
		if n > 256 {
			return seg.errAt(where, countsAt, "%d symbols, more than 256", n)
		}
		vals, err := seg.bytes(where, n)
		if err != nil {
			return err
		}
		t, err := newHuffTable(counts, vals)
		if err != nil {
			return seg.errAt(where, countsAt, "%v", err)
		}
		d.huff[th] = t
	}
	return nil
}

func (d *decoder) decode() error {
	if err := d.readHeader(); err != nil {
		return err
	}
	w, h := d.frame.width, d.frame.height
	if w*h > MaxPixels {
		return fmt.Errorf("%w: %d×%d pixels, the limit is %d", ErrTooLarge, w, h, MaxPixels)
	}
	tree := buildTrees(w, h)
	// Whatever the DQT says, the blocks can carry at most the coefficients of
	// subbands 0–59 (60–63 are never sent).
	for k := range numCoded {
		d.maxCoef += tree.sub[k].w * tree.sub[k].h
	}
	if err := d.readBlocks(); err != nil {
		return err
	}
	if !d.haveQuant {
		return d.in.errAt("DQT", d.in.off, "no quantisation table in the file")
	}
	want := 0
	for k := range numCoded {
		if d.quant.q[k] != 0 {
			want += tree.sub[k].w * tree.sub[k].h
		}
	}
	if d.ncoef != want {
		return d.in.errAt("EOI", d.in.off-2, "the blocks hold %d coefficients, the subbands with a bin width need %d", d.ncoef, want)
	}
	fb := d.filters
	if fb == nil {
		fb = defaultFilterBank
	}
	coef := make([]float32, w*h)
	d.dequantize(coef, &tree)
	d.tokens = nil
	fb.reconstruct(coef, w, &tree)
	d.img = toGray(coef, w, h, d.frame.shift, d.frame.scale)
	return nil
}

// readBlocks reads everything after the frame header: tables, comments and
// SOB blocks up to EOI.
func (d *decoder) readBlocks() error {
	blocks := 0
	at := d.in.off
	m, err := d.in.readMarker("marker after SOF")
	if err != nil {
		return err
	}
	for {
		switch m {
		case markerEOI:
			if blocks == 0 {
				return d.in.errAt("EOI", at, "no SOB block before EOI")
			}
			return nil
		case markerSOB:
			blocks++
			where := fmt.Sprintf("SOB block %d", blocks)
			seg, err := d.in.readSegment(where, d.buf)
			if err != nil {
				return err
			}
			d.buf = seg.b[:0]
			td, err := seg.u8("Huffman table")
			if err != nil {
				return err
			}
			if err := seg.end(); err != nil {
				return err
			}
			if td >= maxHuffTables || d.huff[td] == nil {
				return d.in.errAt(where, d.in.off-1, "Huffman table %d is not defined", td)
			}
			if m, err = d.decodeBlock(d.huff[td], where); err != nil {
				return err
			}
			at = d.in.off - 2
			continue
		case markerDTT, markerDQT, markerDHT, markerDRT, markerCOM:
			if err := d.readTable(m); err != nil {
				return err
			}
		default:
			return d.in.errAt("marker after SOF", at, "%s is not allowed here", markerName(m))
		}
		at = d.in.off
		if m, err = d.in.readMarker("marker after SOF"); err != nil {
			return err
		}
	}
}

// dequantize places the decoded coefficients into their subbands and maps
// each quantised value q to (spec's dequantisation, with bin centre C):
//
//	q > 0: Q·(q − C) + Z/2
//	q < 0: Q·(q + C) − Z/2
//	q = 0: 0
func (d *decoder) dequantize(coef []float32, t *trees) {
	w := t.nodes[0].w
	tokens := d.tokens
	run := 0
	for k := range numCoded {
		qk := d.quant.q[k]
		if qk == 0 {
			continue
		}
		zk := d.quant.z[k] / 2
		c := d.quant.c
		s := t.sub[k]
		for y := s.y; y < s.y+s.h; y++ {
			row := coef[y*w+s.x : y*w+s.x+s.w]
			for x := 0; x < len(row); {
				if run > 0 {
					n := min(run, len(row)-x)
					x += n // coef is zero already
					run -= n
					continue
				}
				t := tokens[0]
				tokens = tokens[1:]
				if t&1 != 0 {
					run = int(t >> 1)
					continue
				}
				switch q := float32(t >> 1); {
				case q > 0:
					row[x] = qk*(q-c) + zk
				case q < 0:
					row[x] = qk*(q+c) - zk
				}
				x++
			}
		}
	}
}

// toGray maps the reconstructed values to pixels: round(v·R + M), clamped.
func toGray(v []float32, w, h int, shift, scale float32) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i, f := range v {
		p := f*scale + shift + 0.5
		switch {
		case p < 0:
			img.Pix[i] = 0
		case p > 255:
			img.Pix[i] = 255
		default:
			img.Pix[i] = uint8(p)
		}
	}
	return img
}
