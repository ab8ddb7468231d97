//go:build amd64 && !noasm

package matcher

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// asmBuild: this build has the assembly kernels (amd64 without the noasm
// tag), so it expects to run one of them: the kernel tests fail on a CPU
// that can run none (see requireSIMD in kernel_test.go).
const asmBuild = true

//go:noescape
func dotBlocks1VNNI(codes *byte, nblocks, chunks int, probe *int8, scales *float32, prm *probeParams, out *int32, masks *uint16)

//go:noescape
func dotBlocks8VNNI(codes *byte, nblocks, chunks int, group *int8, scales *float32, prm *probeParams, out *int32, masks *uint16)

//go:noescape
func dotBlocks1AVX2(codes *byte, nblocks, chunks int, probe *int16, out *int32)

var (
	vnniKernels = kernelSet{name: "avx512vnni", dotBlocks1: vnniBlocks1, dotBlocks8: vnniBlocks8}
	avx2Kernels = kernelSet{name: "avx2", dotBlocks1: avx2Blocks1, dotBlocks8: dotBlocks8By1(avx2Sums)}
)

// The VNNI kernels read a whole block's 16 scales: the blocks whose rows
// run past the end of scales (the last, partial one) get a padded copy.

func vnniBlocks1(codes []byte, chunks int, p8 []int8, _ []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	bb := chunks * chunkBytes
	nb := len(codes) / bb
	if nb == 0 {
		return
	}
	_ = p8[chunks*4-1]
	_ = out[nb*blockRows-1]
	_ = masks[nb-1]
	full := min(nb, len(scales)/blockRows)
	if full > 0 {
		dotBlocks1VNNI(unsafe.SliceData(codes), full, chunks, unsafe.SliceData(p8), unsafe.SliceData(scales), prm, unsafe.SliceData(out), unsafe.SliceData(masks))
	}
	for b := full; b < nb; b++ {
		var pad [blockRows]float32
		copy(pad[:], scales[min(len(scales), b*blockRows):])
		dotBlocks1VNNI(&codes[b*bb], 1, chunks, unsafe.SliceData(p8), &pad[0], prm, &out[b*blockRows], &masks[b])
	}
}

func vnniBlocks8(codes []byte, chunks int, g []int8, _ []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	bb := chunks * chunkBytes
	nb := len(codes) / bb
	if nb == 0 {
		return
	}
	_ = g[chunks*4*groupSize-1]
	_ = out[nb*blockRows*groupSize-1]
	_ = masks[nb*groupSize-1]
	full := min(nb, len(scales)/blockRows)
	if full > 0 {
		dotBlocks8VNNI(unsafe.SliceData(codes), full, chunks, unsafe.SliceData(g), unsafe.SliceData(scales), prm, unsafe.SliceData(out), unsafe.SliceData(masks))
	}
	for b := full; b < nb; b++ {
		var pad [blockRows]float32
		copy(pad[:], scales[min(len(scales), b*blockRows):])
		dotBlocks8VNNI(&codes[b*bb], 1, chunks, unsafe.SliceData(g), &pad[0], prm, &out[b*blockRows*groupSize], &masks[b*groupSize])
	}
}

func avx2Blocks1(codes []byte, chunks int, _ []int8, p16 []int16, scales []float32, prm *probeParams, out []int32, masks []uint16) {
	avx2Sums(codes, chunks, p16, out)
	for b := range len(codes) / (chunks * chunkBytes) {
		masks[b] = sumMask(out[b*blockRows:], scales, b, prm, 0)
	}
}

func avx2Sums(codes []byte, chunks int, p16 []int16, out []int32) {
	nb := len(codes) / (chunks * chunkBytes)
	if nb == 0 {
		return
	}
	_ = p16[chunks*4-1]
	_ = out[nb*blockRows-1]
	dotBlocks1AVX2(unsafe.SliceData(codes), nb, chunks, unsafe.SliceData(p16), unsafe.SliceData(out))
}

// asmKernels are the assembly sets this CPU can run, fastest first.
func asmKernels() []kernelSet {
	var ks []kernelSet
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI {
		ks = append(ks, vnniKernels)
	}
	if cpu.X86.HasAVX2 {
		ks = append(ks, avx2Kernels)
	}
	return ks
}

func init() {
	if ks := asmKernels(); len(ks) > 0 {
		kernels = ks[0]
	}
}
