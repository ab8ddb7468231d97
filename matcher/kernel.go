package matcher

// The int8 scoring kernels. The index stores rows in blocks of blockRows
// rows, interleaved four bytes at a time: chunk j of a block (64 bytes) holds
// dimensions 4j..4j+3 of its 16 rows, row after row. Codes are unsigned
// (the signed code plus 128) and the probe signed, the operand types of
// AVX-512 VNNI's VPDPBUSD, which then multiplies one 64-byte chunk by four
// broadcast probe bytes into 16 row sums at once: a block's 16 scores come
// out in one register with no horizontal additions. The caller removes the
// +128 offset (128 times the probe's code sum, once per probe).
//
// Every kernel computes the same exact integer sums; the pure-Go ones are
// the reference and the fallback (build tag noasm, or a CPU with neither
// AVX2 nor AVX-512 VNNI). The choice is made once, at start. An amd64
// build without noasm expects an assembly kernel: on a CPU that runs none
// the kernel tests fail, naming what it lacks, unless the environment has
// BORDERMATCH_ALLOW_NO_SIMD=1 (kernel_test.go).

const (
	blockRows  = 16
	chunkBytes = 4 * blockRows // one chunk: 4 dimensions of 16 rows
	groupSize  = 8             // probes scored together by dotBlocks8
)

// kernelSet is one implementation of the two kernels.
//
// chunks, the number of 64-byte chunks in a block, is a multiple of 4.
//
// dotBlocks1 scores len(codes)/(chunks*64) whole blocks against one probe:
// out[b*16+l] is the dot product of row l of block b with the probe (p8,
// chunks*4 signed codes; p16 is the same widened to int16, for kernels that
// need it). Bit l of masks[b] is set when the row may reach the probe's
// floor (passes, below, with the row's scale scales[b*16+l], 0 past the
// end of scales, and the probe's params, lane 0).
//
// dotBlocks8 scores the blocks against eight probes at once: g holds them
// interleaved, chunk j of probe p at g[(j*8+p)*4:][:4]; out[(b*8+p)*16+l],
// and bit l of masks[b*8+p] for probe p's lane of prm. p16s are the probes
// widened, one after another, for kernels that score them one at a time.
//
// The masks let the caller skip the rows no probe can keep: each sum is
// turned into an upper bound of its row's score and compared with the
// floor where it is computed, in vector registers, rather than one by one
// in Go.
type kernelSet struct {
	name       string
	dotBlocks1 func(codes []byte, chunks int, p8 []int8, p16 []int16, scales []float32, prm *probeParams, out []int32, masks []uint16)
	dotBlocks8 func(codes []byte, chunks int, g []int8, p16s []int16, scales []float32, prm *probeParams, out []int32, masks []uint16)
}

// probeParams are, per probe of a group, what the kernels need to turn a
// row's sum v into an upper bound of its score (quant.go): with w = v-off,
// the bound is a·(w·b + c) + e for a row of scale a, and the row is
// flagged when a·(w·b + c) >= t, t being the floor minus e (minus a margin,
// see search.go). The kernels' layout: four arrays of eight lanes.
type probeParams struct {
	off [groupSize]int32
	b   [groupSize]float32
	c   [groupSize]float32
	t   [groupSize]float32
}

// passes is the kernels' test of one sum, rounded as they round it: each
// float32 operation on its own (a conversion stops Go fusing them).
func (prm *probeParams) passes(p int, v int32, a float32) bool {
	w := float32(v - prm.off[p])
	g := float32(float32(w*prm.b[p]) + prm.c[p])
	return float32(g*a) >= prm.t[p]
}

var goKernels = kernelSet{name: "go", dotBlocks1: dotBlocks1Go, dotBlocks8: dotBlocks8Go}

// kernels is the set in use, chosen by init in kernel_amd64.go.
var kernels = goKernels

// sumMask is the mask of the 16 sums of block b that pass probe p's test.
func sumMask(sums []int32, scales []float32, b int, prm *probeParams, p int) uint16 {
	var m uint16
	for l, v := range sums[:blockRows] {
		var a float32
		if r := b*blockRows + l; r < len(scales) {
			a = scales[r]
		}
		if prm.passes(p, v, a) {
			m |= 1 << l
		}
	}
	return m
}

func dotBlocks1Go(codes []byte, chunks int, p8 []int8, _ []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	dotBlocks1Sums(codes, chunks, p8, out)
	for b := range len(codes) / (chunks * chunkBytes) {
		masks[b] = sumMask(out[b*blockRows:], scales, b, prm, 0)
	}
}

// dotBlocks1Sums is dotBlocks1Go without the masks.
func dotBlocks1Sums(codes []byte, chunks int, p8 []int8, out []int32) {
	bb := chunks * chunkBytes
	nb := len(codes) / bb
	p8 = p8[:chunks*4]
	for b := range nb {
		blk := codes[b*bb : (b+1)*bb]
		var acc [blockRows]int32
		for j := range chunks {
			c := blk[j*chunkBytes : (j+1)*chunkBytes : (j+1)*chunkBytes]
			q := p8[j*4 : j*4+4 : j*4+4]
			q0, q1, q2, q3 := int32(q[0]), int32(q[1]), int32(q[2]), int32(q[3])
			for l := range blockRows {
				r := c[l*4 : l*4+4 : l*4+4]
				acc[l] += int32(r[0])*q0 + int32(r[1])*q1 + int32(r[2])*q2 + int32(r[3])*q3
			}
		}
		copy(out[b*blockRows:(b+1)*blockRows], acc[:])
	}
}

func dotBlocks8Go(codes []byte, chunks int, g []int8, _ []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	bb := chunks * chunkBytes
	nb := len(codes) / bb
	g = g[:chunks*4*groupSize]
	for b := range nb {
		blk := codes[b*bb : (b+1)*bb]
		var acc [groupSize][blockRows]int32
		for j := range chunks {
			c := blk[j*chunkBytes : (j+1)*chunkBytes : (j+1)*chunkBytes]
			for p := range groupSize {
				q := g[(j*groupSize+p)*4:][:4:4]
				q0, q1, q2, q3 := int32(q[0]), int32(q[1]), int32(q[2]), int32(q[3])
				a := &acc[p]
				for l := range blockRows {
					r := c[l*4 : l*4+4 : l*4+4]
					a[l] += int32(r[0])*q0 + int32(r[1])*q1 + int32(r[2])*q2 + int32(r[3])*q3
				}
			}
		}
		for p := range groupSize {
			copy(out[(b*groupSize+p)*blockRows:], acc[p][:])
			masks[b*groupSize+p] = sumMask(acc[p][:], scales, b, prm, p)
		}
	}
}

// dotBlocks8By1 is dotBlocks8 for kernel sets with only a one-probe
// kernel of sums: one pass per probe over the same blocks (which the
// caller keeps small enough to stay in cache), the masks computed in Go.
func dotBlocks8By1(one func(codes []byte, chunks int, p16 []int16, out []int32)) func(codes []byte, chunks int, g []int8, p16s []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	return func(codes []byte, chunks int, g []int8, p16s []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
		nb := len(codes) / (chunks * chunkBytes)
		var tmp [blockRows * 64]int32
		for lo := 0; lo < nb; lo += 64 {
			hi := min(lo+64, nb)
			part := codes[lo*chunks*chunkBytes : hi*chunks*chunkBytes]
			for p := range groupSize {
				one(part, chunks, p16s[p*chunks*4:(p+1)*chunks*4], tmp[:])
				for b := lo; b < hi; b++ {
					sums := tmp[(b-lo)*blockRows:][:blockRows]
					copy(out[(b*groupSize+p)*blockRows:][:blockRows], sums)
					masks[b*groupSize+p] = sumMask(sums, scales, b, prm, p)
				}
			}
		}
	}
}
