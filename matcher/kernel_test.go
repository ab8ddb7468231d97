package matcher

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// kernelCase is one kernel input: codes of nb blocks of chunks chunks and
// eight probes.
type kernelCase struct {
	chunks int
	codes  []byte
	p8     [groupSize][]int8
	p16s   []int16
	group  []int8
}

func newKernelCase(chunks int, codes []byte, probes []int8) kernelCase {
	kc := kernelCase{chunks: chunks, codes: codes, group: make([]int8, chunks*4*groupSize)}
	for p := range groupSize {
		kc.p8[p] = probes[p*chunks*4 : (p+1)*chunks*4]
		for j, x := range kc.p8[p] {
			kc.p16s = append(kc.p16s, int16(x))
			kc.group[(j/4*groupSize+p)*4+j%4] = x
		}
	}
	return kc
}

// check runs every assembly kernel set on kc and compares it with the
// pure-Go kernels, which a naive row-by-row sum checks in turn.
func (kc kernelCase) check(t *testing.T) {
	t.Helper()
	nb := len(kc.codes) / (kc.chunks * chunkBytes)
	want1 := make([]int32, nb*blockRows)
	want8 := make([]int32, nb*blockRows*groupSize)
	goKernels.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, want8)
	for p := range groupSize {
		goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:], want1)
		for b := range nb {
			for l := range blockRows {
				var naive int32
				for d := range kc.chunks * 4 {
					naive += int32(kc.codes[b*kc.chunks*chunkBytes+d/4*chunkBytes+l*4+d%4]) * int32(kc.p8[p][d])
				}
				if want1[b*blockRows+l] != naive || want8[(b*groupSize+p)*blockRows+l] != naive {
					t.Fatalf("go kernels: block %d row %d probe %d: %d and %d, naive %d", b, l, p, want1[b*blockRows+l], want8[(b*groupSize+p)*blockRows+l], naive)
				}
			}
		}
	}
	for _, ks := range asmKernels() {
		got8 := make([]int32, len(want8)+1)
		got8[len(want8)] = 12345 // the kernels must not write past their blocks
		ks.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, got8)
		if !slices.Equal(got8[:len(want8)], want8) || got8[len(want8)] != 12345 {
			t.Fatalf("%s dotBlocks8, %d chunks, %d blocks: differs from go", ks.name, kc.chunks, nb)
		}
		for p := range groupSize {
			got1 := make([]int32, len(want1)+1)
			got1[len(want1)] = 12345
			goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], nil, want1)
			ks.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:(p+1)*kc.chunks*4], got1)
			if !slices.Equal(got1[:len(want1)], want1) || got1[len(want1)] != 12345 {
				t.Fatalf("%s dotBlocks1, %d chunks, %d blocks, probe %d: differs from go", ks.name, kc.chunks, nb, p)
			}
		}
	}
}

// TestKernelsMatchGo: every assembly kernel this CPU runs gives the pure-Go
// sums, over random dimensions (multiples of 16, the padding the index
// uses), block counts including none and a trailing partial block the
// kernels must ignore, and values including the extremes.
func TestKernelsMatchGo(t *testing.T) {
	t.Logf("kernels in use: %s; assembly sets on this CPU: %d", kernels.name, len(asmKernels()))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		chunks := 4 * (1 + r.IntN(16))
		nb := r.IntN(6)
		codes := make([]byte, nb*chunks*chunkBytes+r.IntN(2)*chunkBytes)
		probes := make([]int8, groupSize*chunks*4)
		switch i % 4 {
		case 0: // extremes: the largest products, both signs
			for j := range codes {
				codes[j] = 255
			}
			for j := range probes {
				probes[j] = -128 + int8(j%2)*127*2 + int8(j%2)
			}
		default:
			for j := range codes {
				codes[j] = byte(r.Uint32())
			}
			for j := range probes {
				probes[j] = int8(r.Uint32())
			}
		}
		newKernelCase(chunks, codes, probes).check(t)
	}
}

// FuzzKernels: the same comparison on fuzzed codes and probes.
func FuzzKernels(f *testing.F) {
	f.Add(uint8(0), uint8(1), []byte{1, 2, 3, 255, 128, 0})
	f.Add(uint8(3), uint8(2), []byte{255})
	f.Fuzz(func(t *testing.T, c, nb uint8, data []byte) {
		if len(data) == 0 {
			return
		}
		chunks := 4 * (1 + int(c)%8)
		n := int(nb) % 4
		codes := make([]byte, n*chunks*chunkBytes)
		probes := make([]int8, groupSize*chunks*4)
		k := 0
		for j := range codes {
			codes[j] = data[k%len(data)]
			k++
		}
		for j := range probes {
			probes[j] = int8(data[k%len(data)] ^ byte(k>>8))
			k++
		}
		newKernelCase(chunks, codes, probes).check(t)
	})
}
