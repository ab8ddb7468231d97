package benchmarks

import (
	"math/rand/v2"
	"testing"
)

// The read-bandwidth kernel must read every word: it XORs them, so one
// flipped bit anywhere, tails included, changes the result.
func TestStreamXorMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 1000, 4099} {
		b := make([]uint64, n)
		for i := range b {
			b[i] = r.Uint64()
		}
		want := streamXorGo(b)
		if got := streamXor(b); got != want {
			t.Fatalf("n=%d: streamXor %x, Go %x", n, got, want)
		}
		for i := range b {
			b[i] ^= 1 << (i % 64)
			if got := streamXor(b); got == want || got != streamXorGo(b) {
				t.Fatalf("n=%d: word %d flipped: streamXor %x, Go %x, before %x", n, i, got, streamXorGo(b), want)
			}
			b[i] ^= 1 << (i % 64)
		}
	}
}
