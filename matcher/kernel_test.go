package matcher

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// kernelCase is one kernel input: codes of nb blocks of chunks chunks,
// eight probes and their floors.
type kernelCase struct {
	chunks int
	codes  []byte
	p8     [groupSize][]int8
	p16s   []int16
	group  []int8
	vmins  [groupSize]int32
}

func newKernelCase(chunks int, codes []byte, probes []int8, vmins [groupSize]int32) kernelCase {
	kc := kernelCase{chunks: chunks, codes: codes, group: make([]int8, chunks*4*groupSize), vmins: vmins}
	for p := range groupSize {
		kc.p8[p] = probes[p*chunks*4 : (p+1)*chunks*4]
		for j, x := range kc.p8[p] {
			kc.p16s = append(kc.p16s, int16(x))
			kc.group[(j/4*groupSize+p)*4+j%4] = x
		}
	}
	return kc
}

// check runs every assembly kernel set on kc and compares its sums and
// masks with the pure-Go kernels', which a naive row-by-row sum checks in
// turn.
func (kc kernelCase) check(t *testing.T) {
	t.Helper()
	nb := len(kc.codes) / (kc.chunks * chunkBytes)
	want1 := make([]int32, nb*blockRows)
	wantm1 := make([]uint16, nb)
	want8 := make([]int32, nb*blockRows*groupSize)
	wantm8 := make([]uint16, nb*groupSize)
	goKernels.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, &kc.vmins, want8, wantm8)
	for p := range groupSize {
		goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:], kc.vmins[p], want1, wantm1)
		for b := range nb {
			for l := range blockRows {
				var naive int32
				for d := range kc.chunks * 4 {
					naive += int32(kc.codes[b*kc.chunks*chunkBytes+d/4*chunkBytes+l*4+d%4]) * int32(kc.p8[p][d])
				}
				if want1[b*blockRows+l] != naive || want8[(b*groupSize+p)*blockRows+l] != naive {
					t.Fatalf("go kernels: block %d row %d probe %d: %d and %d, naive %d", b, l, p, want1[b*blockRows+l], want8[(b*groupSize+p)*blockRows+l], naive)
				}
				in := naive >= kc.vmins[p]
				if wantm1[b]>>l&1 == 1 != in || wantm8[b*groupSize+p]>>l&1 == 1 != in {
					t.Fatalf("go kernels: block %d row %d probe %d: sum %d, floor %d, masks %#x and %#x", b, l, p, naive, kc.vmins[p], wantm1[b], wantm8[b*groupSize+p])
				}
			}
		}
	}
	for _, ks := range asmKernels() {
		// One element more than the blocks: the kernels must not write past them.
		got8 := make([]int32, len(want8)+1)
		got8[len(want8)] = 12345
		gotm8 := make([]uint16, len(wantm8)+1)
		gotm8[len(wantm8)] = 12345
		ks.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, &kc.vmins, got8, gotm8)
		if !slices.Equal(got8[:len(want8)], want8) || got8[len(want8)] != 12345 {
			t.Fatalf("%s dotBlocks8, %d chunks, %d blocks: sums differ from go", ks.name, kc.chunks, nb)
		}
		if !slices.Equal(gotm8[:len(wantm8)], wantm8) || gotm8[len(wantm8)] != 12345 {
			t.Fatalf("%s dotBlocks8, %d chunks, %d blocks: masks %x, go %x", ks.name, kc.chunks, nb, gotm8, wantm8)
		}
		for p := range groupSize {
			got1 := make([]int32, len(want1)+1)
			got1[len(want1)] = 12345
			gotm1 := make([]uint16, len(wantm1)+1)
			gotm1[len(wantm1)] = 12345
			goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], nil, kc.vmins[p], want1, wantm1)
			ks.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:(p+1)*kc.chunks*4], kc.vmins[p], got1, gotm1)
			if !slices.Equal(got1[:len(want1)], want1) || got1[len(want1)] != 12345 {
				t.Fatalf("%s dotBlocks1, %d chunks, %d blocks, probe %d: sums differ from go", ks.name, kc.chunks, nb, p)
			}
			if !slices.Equal(gotm1[:len(wantm1)], wantm1) || gotm1[len(wantm1)] != 12345 {
				t.Fatalf("%s dotBlocks1, %d chunks, %d blocks, probe %d: masks %x, go %x", ks.name, kc.chunks, nb, p, gotm1, wantm1)
			}
		}
	}
}

// randomFloors picks each probe's floor: none, impossible, or near the
// middle of the sums so masks come out mixed.
func randomFloors(r *rand.Rand) [groupSize]int32 {
	var v [groupSize]int32
	for p := range v {
		switch r.IntN(4) {
		case 0:
			v[p] = math.MinInt32
		case 1:
			v[p] = math.MaxInt32
		default:
			v[p] = int32(r.IntN(20001) - 10000)
		}
	}
	return v
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
		nb := r.IntN(8) // odd and even: the eight-probe kernel pairs blocks
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
		newKernelCase(chunks, codes, probes, randomFloors(r)).check(t)
	}
}

// FuzzKernels: the same comparison on fuzzed codes and probes.
func FuzzKernels(f *testing.F) {
	f.Add(uint8(0), uint8(1), int32(0), []byte{1, 2, 3, 255, 128, 0})
	f.Add(uint8(3), uint8(2), int32(-5000), []byte{255})
	f.Add(uint8(1), uint8(3), int32(math.MinInt32), []byte{7, 200})
	f.Fuzz(func(t *testing.T, c, nb uint8, floor int32, data []byte) {
		if len(data) == 0 {
			return
		}
		chunks := 4 * (1 + int(c)%8)
		n := int(nb) % 6
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
		var vmins [groupSize]int32
		for p := range vmins {
			vmins[p] = floor + int32(p)*int32(data[p%len(data)])*16
		}
		newKernelCase(chunks, codes, probes, vmins).check(t)
	})
}
