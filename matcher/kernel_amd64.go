//go:build amd64 && !noasm

package matcher

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func dotBlocks1VNNI(codes *byte, nblocks, chunks int, probe *int8, vmin int32, out *int32, masks *uint16)

//go:noescape
func dotBlocks8VNNI(codes *byte, nblocks, chunks int, group *int8, vmins *int32, out *int32, masks *uint16)

//go:noescape
func dotBlocks1AVX2(codes *byte, nblocks, chunks int, probe *int16, out *int32)

var (
	vnniKernels = kernelSet{
		name: "avx512vnni",
		dotBlocks1: func(codes []byte, chunks int, p8 []int8, _ []int16, vmin int32, out []int32, masks []uint16) {
			nb := len(codes) / (chunks * chunkBytes)
			if nb == 0 {
				return
			}
			_ = p8[chunks*4-1]
			_ = out[nb*blockRows-1]
			_ = masks[nb-1]
			dotBlocks1VNNI(unsafe.SliceData(codes), nb, chunks, unsafe.SliceData(p8), vmin, unsafe.SliceData(out), unsafe.SliceData(masks))
		},
		dotBlocks8: func(codes []byte, chunks int, g []int8, _ []int16, vmins *[groupSize]int32, out []int32, masks []uint16) {
			nb := len(codes) / (chunks * chunkBytes)
			if nb == 0 {
				return
			}
			_ = g[chunks*4*groupSize-1]
			_ = out[nb*blockRows*groupSize-1]
			_ = masks[nb*groupSize-1]
			dotBlocks8VNNI(unsafe.SliceData(codes), nb, chunks, unsafe.SliceData(g), &vmins[0], unsafe.SliceData(out), unsafe.SliceData(masks))
		},
	}
	avx2Kernels = kernelSet{name: "avx2", dotBlocks1: avx2Blocks1, dotBlocks8: dotBlocks8By1(avx2Sums)}
)

func avx2Blocks1(codes []byte, chunks int, _ []int8, p16 []int16, vmin int32, out []int32, masks []uint16) {
	avx2Sums(codes, chunks, p16, out)
	for b := range len(codes) / (chunks * chunkBytes) {
		masks[b] = sumMask(out[b*blockRows:], vmin)
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
