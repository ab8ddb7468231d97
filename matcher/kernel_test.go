package matcher

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// allowNoSIMD names the environment variable that lets the kernel tests
// pass on an amd64 CPU with neither AVX2 nor AVX-512, which can run none
// of the assembly kernels: BORDERMATCH_ALLOW_NO_SIMD=1. Without it such a
// CPU fails them, naming what it lacks: an amd64 build without the noasm
// tag expects an assembly kernel, and on that CPU the agreement tests
// would compare the pure-Go kernels only with themselves and pass without
// having checked anything. (To test the pure-Go kernels on purpose, build
// with -tags noasm. GODEBUG=cpu.avx2=off,cpu.avx512f=off, which
// golang.org/x/sys/cpu obeys, shows the failure on any CPU.)
const allowNoSIMD = "BORDERMATCH_ALLOW_NO_SIMD"

// feature is a CPU feature a kernel needs, and whether this CPU has it.
type feature struct {
	name string
	has  bool
}

// lacking are the names of the features the CPU does not have.
func lacking(fs ...feature) []string {
	var miss []string
	for _, f := range fs {
		if !f.has {
			miss = append(miss, f.name)
		}
	}
	return miss
}

// wantKernels are the int8 kernel sets this build should offer on this
// CPU, fastest first, as kernel.go documents them (stated here apart from
// kernel_amd64.go's test of the CPU), and why each of the others is not
// offered.
func wantKernels() (names, why []string) {
	if !asmBuild {
		return nil, []string{pureGoBuild()}
	}
	if miss := lacking(feature{"AVX512F", cpu.X86.HasAVX512F}, feature{"AVX512VNNI", cpu.X86.HasAVX512VNNI}); len(miss) == 0 {
		names = append(names, "avx512vnni")
	} else {
		why = append(why, "avx512vnni needs "+strings.Join(miss, "+"))
	}
	if miss := lacking(feature{"AVX2", cpu.X86.HasAVX2}); len(miss) == 0 {
		names = append(names, "avx2")
	} else {
		why = append(why, "avx2 needs "+strings.Join(miss, "+"))
	}
	return names, why
}

// pureGoBuild says why a build has no assembly kernels.
func pureGoBuild() string {
	if runtime.GOARCH == "amd64" {
		return "a pure-Go build (the noasm tag)"
	}
	return "a pure-Go build (no assembly kernels for " + runtime.GOARCH + ")"
}

// noSIMD fails the test, saying why: the build expects an assembly kernel
// that this CPU cannot run. With BORDERMATCH_ALLOW_NO_SIMD=1 it only logs.
func noSIMD(tb testing.TB, why string) {
	tb.Helper()
	msg := fmt.Sprintf("an amd64 build without the noasm tag expects an assembly kernel, but %s, so only the pure-Go kernels would be checked", why)
	if os.Getenv(allowNoSIMD) == "1" {
		tb.Logf("%s (allowed: %s=1)", msg, allowNoSIMD)
		return
	}
	tb.Fatalf("%s: set %s=1 to accept that, or test with -tags noasm", msg, allowNoSIMD)
}

// requireSIMD fails the test (see noSIMD) on an assembly build when the
// CPU has neither AVX2 nor AVX-512 (AVX512F).
func requireSIMD(tb testing.TB) {
	tb.Helper()
	if asmBuild && !cpu.X86.HasAVX2 && !cpu.X86.HasAVX512F {
		noSIMD(tb, "this CPU has neither AVX2 nor AVX-512 (AVX512F)")
	}
}

// checkKernels checks that the int8 kernel sets offered and the one in use
// are what this build should give on this CPU (wantKernels), and fails
// the test (noSIMD) on an assembly build that offers none. It returns the
// assembly sets, for the test to compare with the pure-Go ones.
func checkKernels(tb testing.TB) []kernelSet {
	tb.Helper()
	want, why := wantKernels()
	sets := asmKernels()
	var got []string
	for _, ks := range sets {
		got = append(got, ks.name)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("assembly kernel sets offered: %q, want %q (%s)", got, want, strings.Join(why, "; "))
	}
	inUse := "go"
	if len(want) > 0 {
		inUse = want[0]
	}
	if kernels.name != inUse {
		tb.Fatalf("kernel set in use: %s, want %s, the fastest this build runs on this CPU", kernels.name, inUse)
	}
	if asmBuild && len(want) == 0 {
		noSIMD(tb, "no int8 assembly kernel runs on this CPU: "+strings.Join(why, "; "))
	}
	return sets
}

// TestKernelSelection: the int8 kernel set in use is the fastest this
// build runs on this CPU, and every assembly set the CPU runs is offered
// (and so checked by TestKernelsMatchGo).
func TestKernelSelection(t *testing.T) {
	checkKernels(t)
	want, why := wantKernels()
	t.Logf("%s/%s, asm build %v: kernel set in use %s; assembly sets checked: %q; not offered: %s",
		runtime.GOOS, runtime.GOARCH, asmBuild, kernels.name, want, strings.Join(why, "; "))
}

// kernelCase is one kernel input: codes of nb blocks of chunks chunks,
// eight probes, the row scales and the probes' bound parameters.
type kernelCase struct {
	chunks int
	codes  []byte
	p8     [groupSize][]int8
	p16s   []int16
	group  []int8
	scales []float32
	prm    probeParams
}

// newKernelCase draws the scales and parameters from r: scales of rows
// near the end missing at times (the last, partial block), and floors
// none, impossible or at the bound of one of the rows, so that the masks
// come out mixed and ties are tried.
func newKernelCase(r *rand.Rand, chunks int, codes []byte, probes []int8) kernelCase {
	kc := kernelCase{chunks: chunks, codes: codes, group: make([]int8, chunks*4*groupSize)}
	for p := range groupSize {
		kc.p8[p] = probes[p*chunks*4 : (p+1)*chunks*4]
		for j, x := range kc.p8[p] {
			kc.p16s = append(kc.p16s, int16(x))
			kc.group[(j/4*groupSize+p)*4+j%4] = x
		}
	}
	nb := len(codes) / (chunks * chunkBytes)
	kc.scales = make([]float32, max(0, nb*blockRows-r.IntN(3)*r.IntN(blockRows)))
	for i := range kc.scales {
		kc.scales[i] = float32(r.Float64()) / 64
	}
	sums := make([]int32, nb*blockRows)
	for p := range groupSize {
		kc.prm.off[p] = int32(r.IntN(1<<21)) - 1<<20
		kc.prm.b[p] = float32(r.Float64()) / 1e4
		kc.prm.c[p] = float32(r.Float64()) * 8
		switch k := r.IntN(6); {
		case k == 0:
			kc.prm.t[p] = float32(math.Inf(-1))
		case k == 1:
			kc.prm.t[p] = float32(math.Inf(1))
		case nb > 0:
			dotBlocks1Sums(codes, chunks, kc.p8[p], sums)
			i := r.IntN(len(sums))
			var a float32
			if i < len(kc.scales) {
				a = kc.scales[i]
			}
			w := float32(sums[i] - kc.prm.off[p])
			kc.prm.t[p] = float32(float32(float32(w*kc.prm.b[p])+kc.prm.c[p])*a) + float32(k-3)*1e-9
		}
	}
	return kc
}

// check runs each of the assembly kernel sets on kc and compares its sums
// and masks with the pure-Go kernels', which a naive row-by-row sum and
// the bound test check in turn.
func (kc kernelCase) check(t *testing.T, sets []kernelSet) {
	t.Helper()
	nb := len(kc.codes) / (kc.chunks * chunkBytes)
	want1 := make([]int32, nb*blockRows)
	wantm1 := make([]uint16, nb)
	want8 := make([]int32, nb*blockRows*groupSize)
	wantm8 := make([]uint16, nb*groupSize)
	goKernels.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, kc.scales, &kc.prm, want8, wantm8)
	for p := range groupSize {
		one := kc.prm
		one.off[0], one.b[0], one.c[0], one.t[0] = kc.prm.off[p], kc.prm.b[p], kc.prm.c[p], kc.prm.t[p]
		goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:], kc.scales, &one, want1, wantm1)
		for b := range nb {
			for l := range blockRows {
				var naive int32
				for d := range kc.chunks * 4 {
					naive += int32(kc.codes[b*kc.chunks*chunkBytes+d/4*chunkBytes+l*4+d%4]) * int32(kc.p8[p][d])
				}
				if want1[b*blockRows+l] != naive || want8[(b*groupSize+p)*blockRows+l] != naive {
					t.Fatalf("go kernels: block %d row %d probe %d: %d and %d, naive %d", b, l, p, want1[b*blockRows+l], want8[(b*groupSize+p)*blockRows+l], naive)
				}
				var a float64
				if r := b*blockRows + l; r < len(kc.scales) {
					a = float64(kc.scales[r])
				}
				bound := a * (float64(naive-kc.prm.off[p])*float64(kc.prm.b[p]) + float64(kc.prm.c[p]))
				in := wantm1[b]>>l&1 == 1
				if in != (wantm8[b*groupSize+p]>>l&1 == 1) {
					t.Fatalf("go kernels: block %d row %d probe %d: masks %#x and %#x disagree", b, l, p, wantm1[b], wantm8[b*groupSize+p])
				}
				// float32 rounding aside, a row is flagged when its bound reaches t.
				if d := bound - float64(kc.prm.t[p]); in && d < -1e-5*max(1, math.Abs(bound)) || !in && d > 1e-5*max(1, math.Abs(bound)) {
					t.Fatalf("go kernels: block %d row %d probe %d: bound %v, t %v, flagged %v", b, l, p, bound, kc.prm.t[p], in)
				}
			}
		}
	}
	for _, ks := range sets {
		// One element more than the blocks: the kernels must not write past them.
		got8 := make([]int32, len(want8)+1)
		got8[len(want8)] = 12345
		gotm8 := make([]uint16, len(wantm8)+1)
		gotm8[len(wantm8)] = 12345
		ks.dotBlocks8(kc.codes, kc.chunks, kc.group, kc.p16s, kc.scales, &kc.prm, got8, gotm8)
		if !slices.Equal(got8[:len(want8)], want8) || got8[len(want8)] != 12345 {
			t.Fatalf("%s dotBlocks8, %d chunks, %d blocks: sums differ from go", ks.name, kc.chunks, nb)
		}
		if !slices.Equal(gotm8[:len(wantm8)], wantm8) || gotm8[len(wantm8)] != 12345 {
			t.Fatalf("%s dotBlocks8, %d chunks, %d blocks: masks %x, go %x", ks.name, kc.chunks, nb, gotm8, wantm8)
		}
		for p := range groupSize {
			one := kc.prm
			one.off[0], one.b[0], one.c[0], one.t[0] = kc.prm.off[p], kc.prm.b[p], kc.prm.c[p], kc.prm.t[p]
			got1 := make([]int32, len(want1)+1)
			got1[len(want1)] = 12345
			gotm1 := make([]uint16, len(wantm1)+1)
			gotm1[len(wantm1)] = 12345
			goKernels.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], nil, kc.scales, &one, want1, wantm1)
			ks.dotBlocks1(kc.codes, kc.chunks, kc.p8[p], kc.p16s[p*kc.chunks*4:(p+1)*kc.chunks*4], kc.scales, &one, got1, gotm1)
			if !slices.Equal(got1[:len(want1)], want1) || got1[len(want1)] != 12345 {
				t.Fatalf("%s dotBlocks1, %d chunks, %d blocks, probe %d: sums differ from go", ks.name, kc.chunks, nb, p)
			}
			if !slices.Equal(gotm1[:len(wantm1)], wantm1) || gotm1[len(wantm1)] != 12345 {
				t.Fatalf("%s dotBlocks1, %d chunks, %d blocks, probe %d: masks %x, go %x", ks.name, kc.chunks, nb, p, gotm1, wantm1)
			}
		}
	}
}

// TestKernelsMatchGo: every assembly kernel this CPU runs gives the pure-Go
// sums, over random dimensions (multiples of 16, the padding the index
// uses), block counts including none and a trailing partial block the
// kernels must ignore, and values including the extremes. On an assembly
// build it fails if the CPU runs none (checkKernels).
func TestKernelsMatchGo(t *testing.T) {
	sets := checkKernels(t)
	var names []string
	for _, ks := range sets {
		names = append(names, ks.name)
	}
	t.Logf("kernel set in use: %s; assembly sets checked against go: %q", kernels.name, names)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		chunks := 4 * (1 + r.IntN(16))
		nb := r.IntN(8) // odd and even: the eight-probe kernel pairs blocks
		codes := make([]byte, nb*chunks*chunkBytes+r.IntN(2)*chunkBytes)
		probes := make([]int8, groupSize*chunks*4)
		switch i % 4 {
		case 0: // extremes: the largest products, both signs
			for j := range codes {
				codes[j] = 255
			}
			for j := range probes {
				probes[j] = -128 + int8(j%2)*127*2 + int8(j%2)
			}
		default:
			for j := range codes {
				codes[j] = byte(r.Uint32())
			}
			for j := range probes {
				probes[j] = int8(r.Uint32())
			}
		}
		newKernelCase(r, chunks, codes, probes).check(t, sets)
	}
}

// FuzzKernels: the same comparison on fuzzed codes and probes.
func FuzzKernels(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint64(0), []byte{1, 2, 3, 255, 128, 0})
	f.Add(uint8(3), uint8(2), uint64(7), []byte{255})
	f.Add(uint8(1), uint8(3), uint64(1<<40), []byte{7, 200})
	sets := checkKernels(f)
	f.Fuzz(func(t *testing.T, c, nb uint8, seed uint64, data []byte) {
		if len(data) == 0 {
			return
		}
		chunks := 4 * (1 + int(c)%8)
		n := int(nb) % 6
		codes := make([]byte, n*chunks*chunkBytes)
		probes := make([]int8, groupSize*chunks*4)
		k := 0
		for j := range codes {
			codes[j] = data[k%len(data)]
			k++
		}
		for j := range probes {
			probes[j] = int8(data[k%len(data)] ^ byte(k>>8))
			k++
		}
		newKernelCase(rand.New(rand.NewPCG(seed, 1)), chunks, codes, probes).check(t, sets)
	})
}
