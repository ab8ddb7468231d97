package finger

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. The benchmarks report it
// per op beside wall time: on a shared machine wall time includes waiting
// for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchExtract(b *testing.B, path string, dpi int) {
	g := loadGray(b, path)
	e := NewExtractor(Config{})
	if _, err := e.Extract(g, dpi); err != nil { // and warm the kernel bank
		b.Fatal(err)
	}
	b.ReportAllocs()
	c0 := cpuTime()
	for b.Loop() {
		if _, err := e.Extract(g, dpi); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkExtract extracts one 500 dpi FVC2002 DB1 image (388×374) per
// iteration on one goroutine. Goal: ≤ 150 ms.
func BenchmarkExtract(b *testing.B) {
	benchExtract(b, filepath.Join("testdata", "fvc2002_db1_b", "101_1.tif"), 500)
}

// BenchmarkExtract569 is the same on an FVC2002 DB2 image (296×560, 569 dpi).
func BenchmarkExtract569(b *testing.B) {
	benchExtract(b, filepath.Join("testdata", "fvc2002_db2_b", "101_1.tif"), 569)
}
