//go:build !amd64 || noasm

package matcher

// fingerAsmKernels: no assembly kernels on this architecture or build.
func fingerAsmKernels() []fingerKernelSet { return nil }
