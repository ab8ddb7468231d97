//go:build !noasm

package benchmarks

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func streamXorAVX2(p *byte, n int) uint64

// streamXor is streamXorGo with 32-byte loads where the CPU has AVX2: a
// scalar loop tops out near half of what the memory delivers, which would
// make the scan look faster than the bus.
func streamXor(b []uint64) uint64 {
	if !cpu.X86.HasAVX2 {
		return streamXorGo(b)
	}
	n := len(b) &^ 15
	s := uint64(0)
	if n > 0 {
		s = streamXorAVX2((*byte)(unsafe.Pointer(unsafe.SliceData(b))), n*8)
	}
	return s ^ streamXorGo(b[n:])
}
