package benchmarks

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
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

// The probe reads every core's slice and reports a rate a machine can have.
func TestReadBandwidthPlausible(t *testing.T) {
	threads := runtime.GOMAXPROCS(0)
	p := readBandwidth(threads, 64<<20, 2, 0)
	t.Logf("%v", p)
	if !(p.BytesPerSec > 1e8 && p.BytesPerSec < 1e13) || p.Threads != threads || p.BufferBytes < 63<<20 || p.Loads == "" {
		t.Errorf("implausible probe: %+v", p)
	}
}

func TestLastLevelCache(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int64
	}{{"32768K", 32 << 20}, {"1M", 1 << 20}, {"2G", 2 << 30}, {"512", 512}, {"", 0}, {"x", 0}, {"-1K", 0}} {
		if got := parseCacheSize(c.s); got != c.want {
			t.Errorf("parseCacheSize(%q) = %d, want %d", c.s, got, c.want)
		}
	}
	dir := t.TempDir()
	for i, c := range [][2]string{{"1", "32K"}, {"1", "32K"}, {"2", "1024K"}, {"3", "32768K"}} {
		d := filepath.Join(dir, fmt.Sprintf("index%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "level"), []byte(c[0]+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "size"), []byte(c[1]+"\n"), 0o644)
	}
	if got := lastLevelCache(dir); got != 32<<20 {
		t.Errorf("lastLevelCache = %d, want 32 MiB", got)
	}
	if got := lastLevelCache(filepath.Join(dir, "none")); got != 0 {
		t.Errorf("lastLevelCache(no dir) = %d", got)
	}
}
