package matcher

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// wantFingerKernels are the finger assembly kernels this build should
// offer on this CPU (stated here apart from finger_kernel_amd64.go's test
// of the CPU), or why none. There is one, avx512, which needs AVX512F,
// AVX512VPOPCNTDQ, AVX512DQ and AVX512VL. There is no AVX2 finger kernel:
// on a CPU without those (one with AVX2 only, say) the pure-Go kernel is
// the best there is, and an assembly build legitimately uses it.
func wantFingerKernels() (names []string, why string) {
	if !asmBuild {
		return nil, pureGoBuild()
	}
	miss := lacking(feature{"AVX512F", cpu.X86.HasAVX512F}, feature{"AVX512VPOPCNTDQ", cpu.X86.HasAVX512VPOPCNTDQ},
		feature{"AVX512DQ", cpu.X86.HasAVX512DQ}, feature{"AVX512VL", cpu.X86.HasAVX512VL})
	if len(miss) > 0 {
		return nil, "the avx512 finger kernel needs " + strings.Join(miss, "+") + ", which this CPU lacks"
	}
	return []string{"avx512"}, ""
}

// checkFingerKernels checks that the finger kernels offered and the one in
// use are what this build should give on this CPU (wantFingerKernels), and
// fails the test on an assembly build when the CPU has no SIMD at all
// (requireSIMD). It returns the assembly kernels, and why there are none.
func checkFingerKernels(tb testing.TB) ([]fingerKernelSet, string) {
	tb.Helper()
	requireSIMD(tb)
	want, why := wantFingerKernels()
	sets := fingerAsmKernels()
	var got []string
	for _, k := range sets {
		got = append(got, k.name)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("finger assembly kernels offered: %q, want %q (%s)", got, want, why)
	}
	inUse := "go"
	if len(want) > 0 {
		inUse = want[0]
	}
	if fingerKernel.name != inUse {
		tb.Fatalf("finger kernel in use: %s, want %s, the fastest this build runs on this CPU", fingerKernel.name, inUse)
	}
	return sets, why
}

// TestFingerKernelSelection: the finger kernel in use is the fastest this
// build runs on this CPU, and the assembly kernel is offered (and so
// checked by TestFingerKernelsAgree) wherever the CPU runs it.
func TestFingerKernelSelection(t *testing.T) {
	_, why := checkFingerKernels(t)
	if why != "" {
		why = "; no assembly kernel: " + why
	}
	t.Logf("%s/%s, asm build %v: finger kernel in use %s%s", runtime.GOOS, runtime.GOARCH, asmBuild, fingerKernel.name, why)
}

// randomSlab is nc gallery records and nblk probe blocks of random
// cylinders: masks of about 3/4 of the bits, slices of a given density
// within their mask, random angles. Some records get an empty mask, as
// padding lanes have.
func randomSlab(r *rand.Rand, nc, nblk int, density float64) (cand, probe []uint64) {
	word := func(p float64) uint64 {
		var w uint64
		for b := range 64 {
			if r.Float64() < p {
				w |= 1 << b
			}
		}
		return w
	}
	rec := func(out []uint64, stride int) {
		m := word(0.75)
		if r.IntN(20) == 0 {
			m = 0
		}
		out[recMask*stride] = m
		for w := range mccND {
			out[w*stride] = word(density) & m
		}
		out[recAngle*stride] = uint64(r.IntN(angleSteps))
	}
	cand = make([]uint64, nc*coarseRecWords)
	for j := range nc {
		rec(cand[j*coarseRecWords:], 1)
	}
	probe = make([]uint64, nblk*probeBlockWords)
	for b := range nblk {
		for l := range probeLanes {
			rec(probe[b*probeBlockWords+l:], probeLanes)
		}
	}
	return cand, probe
}

// TestFingerKernelsAgree: every assembly kernel this CPU runs gives the
// reference kernel's maxima bit for bit, over random records, counts
// (tails included) and gates.
func TestFingerKernelsAgree(t *testing.T) {
	ks, why := checkFingerKernels(t)
	if len(ks) == 0 {
		t.Skipf("no finger assembly kernel to check: %s (TestFingerKernelSelection checks that the pure-Go one is in use)", why)
	}
	r := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		nc, nblk := r.IntN(70), 1+r.IntN(maxProbeBlocks)
		cand, probe := randomSlab(r, nc, nblk, []float64{0.05, 0.3, 0.7}[trial%3])
		minCommon, gate := uint64(r.IntN(65)), uint64(r.IntN(angleSteps/2+1))
		want := make([]float32, nblk*probeLanes)
		coarseMaxGo(cand, probe, minCommon, gate, want)
		for _, k := range ks {
			got := make([]float32, nblk*probeLanes)
			for i := range got {
				got[i] = -1 // the kernel must write every lane
			}
			k.coarseMax(cand, probe, minCommon, gate, got)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s, trial %d (nc %d, blocks %d, minCommon %d, gate %d): lane %d: %v, want %v",
						k.name, trial, nc, nblk, minCommon, gate, i, got[i], want[i])
				}
			}
		}
		wantAll := make([]float32, nblk*nc*probeLanes)
		coarseAllGo(cand, probe, minCommon, gate, wantAll)
		for _, k := range ks {
			got := make([]float32, len(wantAll))
			for i := range got {
				got[i] = -1
			}
			k.coarseAll(cand, probe, minCommon, gate, got)
			for i := range wantAll {
				if math.Float32bits(got[i]) != math.Float32bits(wantAll[i]) {
					t.Fatalf("%s coarseAll, trial %d (nc %d, blocks %d): out %d: %v, want %v",
						k.name, trial, nc, nblk, i, got[i], wantAll[i])
				}
			}
		}
	}
}

// TestFingerScoreKernels: the full comparison gives the same scores, to
// the bit, with the reference kernels and with each assembly set.
func TestFingerScoreKernels(t *testing.T) {
	ks, why := checkFingerKernels(t)
	if len(ks) == 0 {
		t.Skipf("no finger assembly kernel to check: %s (TestFingerKernelSelection checks that the pure-Go one is in use)", why)
	}
	views := subsetViews(t, "fvc2002_db1_b")
	ts := make([]*FingerTemplate, len(views))
	for i, v := range views {
		ts[i] = mustPrepare(t, v)
	}
	saved := fingerKernel
	defer func() { fingerKernel = saved }()
	scores := func() []float64 {
		var m FingerMatcher
		var out []float64
		for _, a := range ts {
			for _, b := range ts {
				out = append(out, m.Score(a, b))
			}
		}
		return out
	}
	fingerKernel = fingerKernelSet{name: "go", coarseMax: coarseMaxGo, coarseAll: coarseAllGo}
	want := scores()
	for _, k := range ks {
		fingerKernel = k
		for i, s := range scores() {
			if s != want[i] {
				t.Fatalf("%s: pair %d: score %v, reference %v", k.name, i, s, want[i])
			}
		}
	}
}

// TestSqrtTabRounding: sqrtTab holds correctly rounded float32 square
// roots (what VSQRTPS computes), not float64 roots rounded twice.
func TestSqrtTabRounding(t *testing.T) {
	for n, s := range sqrtTab {
		lo := math.Nextafter32(s, 0)
		hi := math.Nextafter32(s, math.MaxFloat32)
		// Midpoints of neighbouring float32s are exact in float64, and so
		// are their squares (50 significant bits at most).
		mlo, mhi := (float64(lo)+float64(s))/2, (float64(s)+float64(hi))/2
		if n > 0 && (mlo*mlo > float64(n) || mhi*mhi < float64(n)) {
			t.Fatalf("sqrtTab[%d] = %v is not the nearest float32 to √%d", n, s, n)
		}
	}
}

// TestCoarseScoreMatchesTemplates: the slab and probe layouts carry the
// templates' coarse cylinders faithfully: the first-stage score from the
// layouts equals a direct computation on the templates.
func TestCoarseScoreMatchesTemplates(t *testing.T) {
	views := subsetViews(t, "fvc2002_db3_b")
	ts := make([]*FingerTemplate, len(views))
	for i, v := range views {
		ts[i] = mustPrepare(t, v)
	}
	var p stage1Probe
	var best [maxProbeBlocks * probeLanes]float32
	for _, a := range ts[:8] {
		layoutProbe(&p, a)
		for _, b := range ts {
			got := coarseScore(&p, appendSlab(nil, b), &best)
			want := directCoarse(a, b)
			if math.Abs(float64(got-want)) > 1e-6 {
				t.Fatalf("coarse score %v, direct %v", got, want)
			}
		}
	}
}

// directCoarse is the first-stage score computed on the templates.
func directCoarse(p, c *FingerTemplate) float32 {
	nA, nB := len(p.min), len(c.min)
	if nA < 2 || nB < 2 {
		return 0
	}
	var best []float32
	for i := range min(nA, coarseProbeCylinders) {
		a := p.coarse[i*coarseRecWords : (i+1)*coarseRecWords]
		var bl float32
		for j := range nB {
			if foldAngle(p.min[i].angle-c.min[j].angle) > coarseDeltaTheta {
				continue
			}
			b := c.coarse[j*coarseRecWords : (j+1)*coarseRecWords]
			if bits.OnesCount64(a[mccND]&b[mccND]) < minCommonCoarse {
				continue
			}
			var na, nb, both int
			for w := range mccND {
				na += bits.OnesCount64(a[w] & b[mccND])
				nb += bits.OnesCount64(b[w] & a[mccND])
				both += bits.OnesCount64(a[w] & b[w])
			}
			if na+nb > 0 {
				bl = max(bl, cylSim(na, nb, both))
			}
		}
		best = append(best, bl)
	}
	nP := int(npFor[min(nA, nB)])
	for len(best) < nP {
		best = append(best, 0)
	}
	// Sum the nP largest.
	var sum float32
	for range nP {
		k := 0
		for i := range best {
			if best[i] > best[k] {
				k = i
			}
		}
		sum += best[k]
		best[k] = -1
	}
	return sum / float32(nP)
}

// FuzzFingerKernels: the assembly kernels agree with the reference on
// arbitrary records.
func FuzzFingerKernels(f *testing.F) {
	f.Add(uint64(1), uint8(10), uint8(2), uint16(170), uint8(20))
	f.Add(uint64(7), uint8(0), uint8(1), uint16(512), uint8(0))
	ks, why := checkFingerKernels(f)
	if len(ks) == 0 {
		f.Skipf("no finger assembly kernel to check: %s", why)
	}
	f.Fuzz(func(t *testing.T, seed uint64, nc, nblk uint8, gate uint16, minCommon uint8) {
		r := rand.New(rand.NewPCG(seed, 1))
		nb := 1 + int(nblk)%maxProbeBlocks
		cand, probe := randomSlab(r, int(nc), nb, r.Float64())
		g, mc := uint64(gate%(angleSteps/2+1)), uint64(minCommon%65)
		want := make([]float32, nb*probeLanes)
		coarseMaxGo(cand, probe, mc, g, want)
		wantAll := make([]float32, nb*int(nc)*probeLanes)
		coarseAllGo(cand, probe, mc, g, wantAll)
		for _, k := range ks {
			got := make([]float32, nb*probeLanes)
			k.coarseMax(cand, probe, mc, g, got)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: lane %d: %v, want %v", k.name, i, got[i], want[i])
				}
			}
			gotAll := make([]float32, len(wantAll))
			k.coarseAll(cand, probe, mc, g, gotAll)
			for i := range wantAll {
				if math.Float32bits(gotAll[i]) != math.Float32bits(wantAll[i]) {
					t.Fatalf("%s coarseAll: out %d: %v, want %v", k.name, i, gotAll[i], wantAll[i])
				}
			}
		}
	})
}

// TestFingerIndexSlab: after adds and removals every entry's slab records
// are its template's, and a search's first stage ranks a probe's own
// template first.
func TestFingerIndexSlab(t *testing.T) {
	gallery, _ := fingerGallery(t, 300)
	x := NewFingerIndex()
	for i, g := range gallery {
		if err := x.Add("s"+strconv.Itoa(i), 0, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"s0", "s57", "s123", "s299"} {
		if x.Remove(id) == 0 {
			t.Fatalf("%s not enrolled", id)
		}
	}
	if x.Len() <= shortlistSize(x.Len()) {
		t.Fatalf("%d templates: the first stage would not run", x.Len())
	}
	for i := range x.entries {
		e := &x.entries[i]
		want := appendSlab(nil, e.t)
		got := x.records(e)
		if len(got) != len(want) {
			t.Fatalf("entry %d: %d slab words, want %d", i, len(got), len(want))
		}
		for w := range want {
			if got[w] != want[w] {
				t.Fatalf("entry %d: slab word %d differs", i, w)
			}
		}
	}
	if tail := x.entries[len(x.entries)-1]; (tail.off+len(tail.t.min))*coarseRecWords != len(x.slab) {
		t.Errorf("slab holds %d words past the last entry", len(x.slab)-(tail.off+len(tail.t.min))*coarseRecWords)
	}
	sc := &fingerSearch{}
	for _, i := range []int{0, 57, len(x.entries) - 1} {
		e := x.entries[i]
		x.shortlist([]probeFinger{{0, e.t}}, sc)
		if !sc.short[e.subject] {
			t.Errorf("entry %d: its own template missed the shortlist", i)
		}
		hits, err := x.Search(e.t, SearchOptions{K: 1})
		if err != nil || len(hits) != 1 || hits[0].SubjectID != x.subjects[e.subject] {
			t.Errorf("entry %d: search %v %v", i, hits, err)
		}
	}
}
