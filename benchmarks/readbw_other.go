//go:build !amd64 || noasm

package benchmarks

func streamXor(b []uint64) uint64 { return streamXorGo(b) }

func readLoads() string { return "Go (64-bit)" }
