//go:build !noasm

package benchmarks

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func streamXorAVX2(p *byte, n int) uint64

//go:noescape
func streamXorAVX512(p *byte, n int) uint64

// readLoads names the widest loads streamXor uses on this CPU.
func readLoads() string {
	switch {
	case cpu.X86.HasAVX512F:
		return "AVX-512"
	case cpu.X86.HasAVX2:
		return "AVX2"
	}
	return "Go (64-bit)"
}

// streamXor is streamXorGo with the widest loads the CPU has: 64 bytes
// with AVX-512, 32 with AVX2. A scalar loop tops out near half of what the
// memory delivers, which would make the scan look faster than the bus.
func streamXor(b []uint64) uint64 {
	p := (*byte)(unsafe.Pointer(unsafe.SliceData(b)))
	switch {
	case cpu.X86.HasAVX512F:
		n := len(b) &^ 31
		if n == 0 {
			return streamXorGo(b)
		}
		return streamXorAVX512(p, n*8) ^ streamXorGo(b[n:])
	case cpu.X86.HasAVX2:
		n := len(b) &^ 15
		if n == 0 {
			return streamXorGo(b)
		}
		return streamXorAVX2(p, n*8) ^ streamXorGo(b[n:])
	}
	return streamXorGo(b)
}
