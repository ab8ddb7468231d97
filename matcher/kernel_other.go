//go:build !amd64 || noasm

package matcher

func asmKernels() []kernelSet { return nil }
