//go:build !amd64 || noasm

package benchmarks

func streamXor(b []uint64) uint64 { return streamXorGo(b) }
