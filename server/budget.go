package server

import (
	"os"
	"runtime"
	"runtime/debug"

	"github.com/rs/zerolog"
)

// memoryHeadroom is what the soft memory limit leaves beyond the gallery
// and the decode budget: gRPC buffers, searches' candidates, Badger's
// caches growing.
const memoryHeadroom = 256 << 20

// setMemoryLimit sets the Go runtime's soft memory limit from the decode
// budget, unless GOMEMLIMIT sets one: the images being decoded are bounded
// by the budget, but what a finished one leaves is garbage the collector
// would otherwise let grow to the size of the live heap again (GOGC=100)
// before collecting it. The limit is twice the heap in use once the
// gallery is loaded (room for it to grow) plus the budget and some
// headroom; the collector works harder near it rather than let the bombs'
// garbage pile up. It returns the limit set, or 0.
func setMemoryLimit(budget int64, log zerolog.Logger) int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	limit := 2*int64(ms.HeapInuse) + budget + memoryHeadroom
	debug.SetMemoryLimit(limit)
	log.Info().Int64("memory_limit_mib", limit>>20).Int64("memory_budget_mib", budget>>20).
		Int64("heap_in_use_mib", int64(ms.HeapInuse)>>20).Msg("Go soft memory limit from the memory budget (GOMEMLIMIT overrides)")
	return limit
}
