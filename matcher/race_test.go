//go:build race

package matcher

// raceEnabled: the race detector slows every memory access several times,
// so the longest single-goroutine tests sample instead of covering all.
const raceEnabled = true
