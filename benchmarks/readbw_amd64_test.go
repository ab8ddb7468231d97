//go:build !noasm

package benchmarks

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Each assembly kernel the CPU can run reads exactly the bytes the Go
// reference reads: the same XOR checksum, whichever one streamXor picks.
func TestStreamXorKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := make([]uint64, 1<<16)
	for i := range b {
		b[i] = r.Uint64()
	}
	p := (*byte)(unsafe.Pointer(&b[0]))
	for _, k := range []struct {
		name string
		has  bool
		unit int // words a kernel call must be a multiple of
		f    func(*byte, int) uint64
	}{
		{"AVX2", cpu.X86.HasAVX2, 16, streamXorAVX2},
		{"AVX-512", cpu.X86.HasAVX512F, 32, streamXorAVX512},
	} {
		if !k.has {
			t.Logf("no %s on this CPU", k.name)
			continue
		}
		for _, n := range []int{0, k.unit, 3 * k.unit, len(b)} {
			if got, want := k.f(p, n*8), streamXorGo(b[:n]); got != want {
				t.Errorf("%s over %d words: %x, Go %x", k.name, n, got, want)
			}
		}
	}
	t.Logf("streamXor uses %s loads", readLoads())
}
