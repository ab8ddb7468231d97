package matcher

import (
	"math"
	"unsafe"
)

// Quantised scan.
//
// Every row is also stored as int8 codes with a scale of its own (per-row
// scale: a row's largest component maps to ±127, so no row loses precision
// to another's outlier; the scale costs 4 bytes a row). The probe is
// quantised the same way. A search scores every row from the codes — a
// quarter of the f32 bytes, so four times less memory traffic — which gives
// each row an interval sure to hold its exact f32 score, then re-scores in
// f32 only the subjects whose interval reaches the K-th best lower bound.
// The result is therefore the exact f32 search's, not an approximation.
//
// The bound. With the probe x = b·d + ρ (codes d, scale b, residual ρ) and
// a row y = a·c + r (|r_i| ≤ a/2 from rounding to nearest):
//
//	x·y − ab(d·c) = b·d·r + ρ·y,  so  |x·y − ab(d·c)| ≤ a·‖b·d‖₁/2 + ‖ρ‖₂·‖y‖₂,
//
// with ‖y‖₂ = 1 (a normalised row, to within rounding). quantEps covers the
// float rounding of both the approximation and the exact f32 dot.
const quantEps = 1e-5

// codeOffset makes the signed row codes unsigned, as VPDPBUSD wants them.
const codeOffset = 128

// paddedDim rounds a dimension up to a multiple of 16: whole 4-byte
// dimension groups, four of them per kernel loop iteration. The padding
// codes are zero (offset 128 stored) and the probe's padding is zero.
func paddedDim(dim int) int { return (dim + 15) &^ 15 }

// alignedCodes returns a zeroed byte slice of length n and capacity c whose
// first byte is 64-byte aligned (a cache line: a block's loads never split
// one).
func alignedCodes(n, c int) []byte {
	buf := make([]byte, c+64)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf)))) & 63
	return buf[off : off+n : off+c]
}

// quantiseRow writes row y (normalised) as codes into row r's lane of the
// block layout and returns its scale.
func quantiseRow(codes []byte, chunks, r int, y []float32) float32 {
	var m float32
	for _, v := range y {
		m = max(m, abs32(v))
	}
	a := m / 127
	blk := codes[r/blockRows*chunks*chunkBytes:][:chunks*chunkBytes]
	lane := (r % blockRows) * 4
	for j := range chunks * 4 {
		var c int32
		if j < len(y) && a > 0 {
			c = int32(math.RoundToEven(float64(y[j] / a)))
			c = max(-127, min(127, c))
		}
		blk[j/4*chunkBytes+lane+j%4] = byte(c + codeOffset)
	}
	return a
}

// copyLane copies row src's codes into row dst's lane.
func copyLane(codes []byte, chunks, dst, src int) {
	db := codes[dst/blockRows*chunks*chunkBytes:][:chunks*chunkBytes]
	sb := codes[src/blockRows*chunks*chunkBytes:][:chunks*chunkBytes]
	dl, sl := (dst%blockRows)*4, (src%blockRows)*4
	for j := range chunks {
		copy(db[j*chunkBytes+dl:j*chunkBytes+dl+4], sb[j*chunkBytes+sl:j*chunkBytes+sl+4])
	}
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// qprobe is one probe prepared for the quantised scan.
type qprobe struct {
	q   []float32 // normalised
	p8  []int8    // codes, padded
	p16 []int16   // the same, widened
	b   float32   // scale
	off float32   // codeOffset times the sum of the codes
	c   float32   // ‖b·d‖₁/2: times a row's scale, the row's share of the bound
	e   float32   // ‖ρ‖₂ + quantEps: the probe's share
}

func newQprobe(dim int) *qprobe {
	pd := paddedDim(dim)
	return &qprobe{q: make([]float32, dim), p8: make([]int8, pd), p16: make([]int16, pd)}
}

// quantise fills the codes and bound terms from p.q.
func (p *qprobe) quantise() {
	var m float32
	for _, v := range p.q {
		m = max(m, abs32(v))
	}
	b := m / 127
	var sum int32
	var l1, rr float64
	clear(p.p8)
	clear(p.p16)
	for j, v := range p.q {
		c := int32(math.RoundToEven(float64(v / b)))
		c = max(-127, min(127, c))
		p.p8[j], p.p16[j] = int8(c), int16(c)
		sum += c
		l1 += math.Abs(float64(b) * float64(c))
		rho := float64(v) - float64(b)*float64(c)
		rr += rho * rho
	}
	p.b = b
	p.off = float32(codeOffset * sum)
	p.c = float32(l1/2) * (1 + 1e-6)
	p.e = float32(math.Sqrt(rr)*(1+1e-6)) + quantEps
}

// cand is a row whose interval reached the K-th best lower bound when it
// was scanned.
type cand struct {
	upper float32
	row   int32
}
