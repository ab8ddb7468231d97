// Package synthetic is the seeded synthetic face gallery that bmbench,
// make loadtest and the tests share. It imports nothing of Bordermatch, so
// that any package's tests can use it (package cluster's tests could not
// import benchmarks once benchmarks imports cluster: an import cycle).
package synthetic

import (
	"fmt"
	"math/rand/v2"
)

// Vector fills v with the face vector of synthetic subject i: seeded, so
// every run and every tool makes the same gallery.
func Vector(i int, v []float32) {
	r := rand.New(rand.NewPCG(uint64(i), 0x6c6f6164))
	for j := range v {
		v[j] = float32(r.NormFloat64())
	}
}

// ID is the id of synthetic subject i.
func ID(i int) string { return fmt.Sprintf("g%08d", i) }
