//go:build !amd64 || noasm

package matcher

// asmBuild: this build has no assembly kernels (another architecture, or
// the noasm tag): only the pure-Go ones.
const asmBuild = false

// asmKernels: no assembly kernels on this architecture or build.
func asmKernels() []kernelSet { return nil }
