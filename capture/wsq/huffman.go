package wsq

import (
	"errors"
	"fmt"
)

// huffTable decodes the canonical Huffman code of a DHT table, as in JPEG
// (ITU T.81 Annex C and F.2.2.3): codes of each length are consecutive
// integers, and a code of length l is complete when it is at most maxcode[l].
type huffTable struct {
	maxcode [17]int32 // largest code of length l, or -1 when there is none
	mincode [17]int32 // smallest code of length l
	valptr  [17]int32 // index in vals of the symbol of mincode[l]
	vals    []byte
}

func newHuffTable(counts, vals []byte) (*huffTable, error) {
	t := &huffTable{vals: append([]byte(nil), vals...)}
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		t.maxcode[l] = -1
		if n > 0 {
			t.valptr[l] = k
			t.mincode[l] = code
			code += n
			t.maxcode[l] = code - 1
			k += n
		}
		if code > 1<<l {
			return nil, fmt.Errorf("more codes of length %d than fit in %d bits", l, l)
		}
		code <<= 1
	}
	if k == 0 {
		return nil, errors.New("no codes")
	}
	return t, nil
}

// The symbols of the WSQ Huffman alphabet (spec Table 5).
const (
	symRunMax   = 100 // 1…100: a run of that many zero coefficients
	symPos8     = 101 // a positive coefficient in the next 8 bits
	symNeg8     = 102 // a negative coefficient in the next 8 bits
	symPos16    = 103 // a positive coefficient in the next 16 bits
	symNeg16    = 104 // a negative coefficient in the next 16 bits
	symRun8     = 105 // a run of zeros, its length in the next 8 bits
	symRun16    = 106 // a run of zeros, its length in the next 16 bits
	symValueMin = 107 // 107…254: the coefficient symbol−180 (−73…74)
	symValueMax = 254
	symBias     = 180
)

// nextBit returns the next bit of the entropy-coded data. Where a new byte
// starts it may instead meet a marker, which it returns (bit is then
// meaningless); a 0xFF data byte is followed by a stuffed 0x00.
func (d *decoder) nextBit(where string) (bit int32, marker int, err error) {
	if d.nbits == 0 {
		b, err := d.in.readByte(where)
		if err != nil {
			return 0, 0, err
		}
		if b == 0xff {
			b2, err := d.in.readByte(where)
			if err != nil {
				return 0, 0, err
			}
			if b2 != 0 {
				return 0, 0xff00 | int(b2), nil
			}
		}
		d.bits, d.nbits = b, 8
	}
	d.nbits--
	return int32(d.bits>>d.nbits) & 1, 0, nil
}

// extraBits reads the n-bit field after a symbol; a marker here is an error.
func (d *decoder) extraBits(where string, n int) (int, error) {
	v := 0
	for range n {
		b, m, err := d.nextBit(where)
		if err != nil {
			return 0, err
		}
		if m != 0 {
			return 0, d.in.errAt(where, d.in.off-2, "%s inside a coefficient", markerName(m))
		}
		v = v<<1 | int(b)
	}
	return v, nil
}

// decodeBlock decodes the Huffman-coded coefficients of one SOB block into
// d.tokens until the marker that ends the block, which it returns. A block
// ends with its last byte padded with 1-bits; the decoder meets the marker
// while reading those as the start of a code and drops them. RSTm markers
// inside the block restart at a byte boundary with the same table.
func (d *decoder) decodeBlock(t *huffTable, where string) (int, error) {
	d.nbits = 0
	restarts := 0
	for {
		var code int32
		sym := -1
		for l := 1; l <= 16; l++ {
			b, m, err := d.nextBit(where)
			if err != nil {
				return 0, err
			}
			if m != 0 {
				if m < markerRST0 || m > markerRST7 {
					return m, nil
				}
				if m-markerRST0 != restarts%8 {
					return 0, d.in.errAt(where, d.in.off-2, "%s where RST%d was due", markerName(m), restarts%8)
				}
				restarts++
				code, l = 0, 0
				continue
			}
			code = code<<1 | b
			if code <= t.maxcode[l] {
				sym = int(t.vals[t.valptr[l]+code-t.mincode[l]])
				break
			}
		}
		if sym < 0 {
			return 0, d.in.errAt(where, d.in.off, "no Huffman code matches the bits before this point")
		}
		switch {
		case sym >= 1 && sym <= symRunMax:
			if err := d.zeros(where, sym); err != nil {
				return 0, err
			}
		case sym >= symValueMin && sym <= symValueMax:
			if err := d.coefficient(where, sym-symBias); err != nil {
				return 0, err
			}
		case sym >= symPos8 && sym <= symRun16:
			n := 8
			if sym == symPos16 || sym == symNeg16 || sym == symRun16 {
				n = 16
			}
			v, err := d.extraBits(where, n)
			if err != nil {
				return 0, err
			}
			switch sym {
			case symRun8, symRun16:
				err = d.zeros(where, v)
			case symNeg8, symNeg16:
				err = d.coefficient(where, -v)
			default:
				err = d.coefficient(where, v)
			}
			if err != nil {
				return 0, err
			}
		default:
			return 0, d.in.errAt(where, d.in.off, "Huffman symbol %d is not in the WSQ alphabet", sym)
		}
	}
}

// Tokens hold the decoded coefficients compactly until the frame is known to
// be complete: a coefficient v as v<<1, a run of n zeros as n<<1 | 1.

func (d *decoder) zeros(where string, n int) error {
	if n == 0 {
		return nil
	}
	if err := d.count(where, n); err != nil {
		return err
	}
	if k := len(d.tokens) - 1; k >= 0 && d.tokens[k]&1 != 0 {
		d.tokens[k] += int32(n) << 1
		return nil
	}
	d.tokens = append(d.tokens, int32(n)<<1|1)
	return nil
}

func (d *decoder) coefficient(where string, v int) error {
	if err := d.count(where, 1); err != nil {
		return err
	}
	d.tokens = append(d.tokens, int32(v)<<1)
	return nil
}

func (d *decoder) count(where string, n int) error {
	d.ncoef += n
	if d.ncoef > d.maxCoef {
		return d.in.errAt(where, d.in.off, "more coefficients than the %d×%d frame holds (%d)", d.frame.width, d.frame.height, d.maxCoef)
	}
	return nil
}
