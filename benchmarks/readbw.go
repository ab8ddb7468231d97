package benchmarks

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReadProbe is the machine's streaming read bandwidth from memory, as
// ReadBandwidth measures it.
type ReadProbe struct {
	BytesPerSec float64 `json:"bytes_per_sec"`
	Threads     int     `json:"threads"`      // goroutines, one slice each
	BufferBytes int64   `json:"buffer_bytes"` // all slices together
	LLCBytes    int64   `json:"llc_bytes"`    // last-level cache; 0 when unknown
	Loads       string  `json:"loads"`        // the widest loads used: AVX-512, AVX2 or Go
}

func (p ReadProbe) String() string {
	return fmt.Sprintf("read bandwidth %.1f GB/s (%s loads, %d threads, %d MiB buffer; last-level cache %s)",
		p.BytesPerSec/1e9, p.Loads, p.Threads, p.BufferBytes>>20, p.llc())
}

func (p ReadProbe) llc() string {
	if p.LLCBytes <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", p.LLCBytes>>20)
}

// ReadBandwidth measures how fast all cores together read memory: GOMAXPROCS
// goroutines each stream their own slice of a buffer of 4× the last-level
// cache (at least 256 MiB; 1 GiB when the cache size is unknown) with the
// widest loads the CPU has: the best of at least ten passes and a second
// of them (a pass is a few milliseconds, easily disturbed on a shared
// machine), over readRounds buffers allocated one after another. One
// buffer's pages can read several GB/s slower than another's (measured
// here: 22–30 GB/s from one call to the next), and a gallery's slab may
// land on the fast kind, so a single buffer understates the ceiling. This
// is the ceiling for a scan of a gallery too big for the cache.
func ReadBandwidth() ReadProbe {
	llc := lastLevelCache("/sys/devices/system/cpu/cpu0/cache")
	size := int64(1 << 30)
	if llc > 0 {
		size = max(4*llc, 256<<20)
	}
	var best ReadProbe
	for range readRounds {
		p := readBandwidth(runtime.GOMAXPROCS(0), size, 10, time.Second)
		if p.BytesPerSec > best.BytesPerSec {
			best = p
		}
		runtime.GC() // give the buffer back before the next one
	}
	best.LLCBytes = llc
	return best
}

// readRounds is how many buffers ReadBandwidth reads.
const readRounds = 3

// readSink keeps the bandwidth loop's sums alive.
var readSink uint64

// readBandwidth runs passes passes, and more until minTime has passed.
func readBandwidth(threads int, size int64, passes int, minTime time.Duration) ReadProbe {
	words := int(size / 8 / int64(threads))
	bufs := make([][]uint64, threads)
	var wg sync.WaitGroup
	for w := range threads {
		wg.Go(func() { // first touch on the thread that reads it
			b := make([]uint64, words)
			for i := range b {
				b[i] = uint64(i) * 0x9e3779b97f4a7c15
			}
			bufs[w] = b
		})
	}
	wg.Wait()
	best := 0.0
	sums := make([]uint64, threads)
	for pass, begin := 0, time.Now(); pass < passes || time.Since(begin) < minTime; pass++ {
		start := make(chan struct{})
		var ready sync.WaitGroup
		ready.Add(threads)
		for w := range threads {
			wg.Go(func() {
				ready.Done()
				<-start
				sums[w] = streamXor(bufs[w])
			})
		}
		ready.Wait()
		t0 := time.Now()
		close(start)
		wg.Wait()
		el := time.Since(t0).Seconds()
		for _, s := range sums {
			readSink += s
		}
		best = max(best, float64(words*threads*8)/el)
	}
	return ReadProbe{BytesPerSec: best, Threads: threads, BufferBytes: int64(words * threads * 8), Loads: readLoads()}
}

// lastLevelCache returns the size in bytes of the highest-level cache
// listed under dir (Linux: /sys/devices/system/cpu/cpu0/cache), 0 when
// there is none to read.
func lastLevelCache(dir string) int64 {
	idx, _ := filepath.Glob(filepath.Join(dir, "index*"))
	level, size := 0, int64(0)
	for _, d := range idx {
		l, err1 := os.ReadFile(filepath.Join(d, "level"))
		s, err2 := os.ReadFile(filepath.Join(d, "size"))
		if err1 != nil || err2 != nil {
			continue
		}
		lv, err := strconv.Atoi(strings.TrimSpace(string(l)))
		if err != nil {
			continue
		}
		if b := parseCacheSize(strings.TrimSpace(string(s))); b > 0 && lv >= level {
			level, size = lv, b
		}
	}
	return size
}

// parseCacheSize reads sysfs sizes: "32768K", "1M", "512" (bytes).
func parseCacheSize(s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n * mult
}

// streamXorGo XORs b's words together, reading it once: the reference
// for streamXor's kernels.
func streamXorGo(b []uint64) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+8 <= len(b); i += 8 {
		c := b[i : i+8 : i+8]
		s0 ^= c[0] ^ c[4]
		s1 ^= c[1] ^ c[5]
		s2 ^= c[2] ^ c[6]
		s3 ^= c[3] ^ c[7]
	}
	for ; i < len(b); i++ {
		s0 ^= b[i]
	}
	return s0 ^ s1 ^ s2 ^ s3
}
