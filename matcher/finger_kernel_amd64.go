//go:build amd64 && !noasm

package matcher

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func coarseAllAVX512(cand *uint64, nc int, probe *uint64, nblk int, minCommon, gate uint64, out *float32)

//go:noescape
func coarseMaxAVX512(cand *uint64, nc int, probe *uint64, nblk int, minCommon, gate uint64, best *float32)

// fingerAsmKernels are the assembly kernels this CPU can run, fastest
// first. The AVX-512 kernel needs VPOPCNTQ (AVX512_VPOPCNTDQ), VCVTQQ2PS
// (AVX512DQ) and masked 256-bit float operations (AVX512VL).
func fingerAsmKernels() []fingerKernelSet {
	var ks []fingerKernelSet
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL {
		ks = append(ks, fingerKernelSet{name: "avx512", coarseMax: coarseMaxAsm512, coarseAll: coarseAllAsm512})
	}
	return ks
}

func coarseMaxAsm512(cand, probe []uint64, minCommon, gate uint64, best []float32) {
	nblk := len(probe) / probeBlockWords
	if nblk == 0 {
		return
	}
	_ = best[nblk*probeLanes-1]
	nc := len(cand) / coarseRecWords
	if nc == 0 {
		clear(best[:nblk*probeLanes])
		return
	}
	coarseMaxAVX512(unsafe.SliceData(cand), nc, unsafe.SliceData(probe), nblk, minCommon, gate, unsafe.SliceData(best))
}

func coarseAllAsm512(cand, probe []uint64, minCommon, gate uint64, out []float32) {
	nblk, nc := len(probe)/probeBlockWords, len(cand)/coarseRecWords
	if nblk == 0 || nc == 0 {
		return
	}
	_ = out[nblk*nc*probeLanes-1]
	coarseAllAVX512(unsafe.SliceData(cand), nc, unsafe.SliceData(probe), nblk, minCommon, gate, unsafe.SliceData(out))
}

func init() {
	if ks := fingerAsmKernels(); len(ks) > 0 {
		fingerKernel = ks[0]
	}
}
