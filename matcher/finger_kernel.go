package matcher

import (
	"math/bits"
	"slices"
)

// The first stage of a 1:N finger search scores every template of the
// gallery, so its data and its inner loop are laid out for the machine:
//
//   - The gallery side is one slab of fixed-size records, one per coarse
//     cylinder (coarseRecWords uint64: the mccND slices, the validity
//     mask, the minutia's angle), a template's records contiguous and in
//     order of angle. A template is an offset and a count: no pointers to
//     chase, one sequential read per template.
//   - The probe side is transposed once per search into blocks of 8 lanes
//     (one probe cylinder a lane, one 512-bit vector per word), so a kernel
//     compares one gallery cylinder with 8 probe cylinders per instruction.
//
// The kernel computes, for every probe cylinder, its best local similarity
// (cylSim on the coarse cylinders) over the template's cylinders within
// coarseDeltaTheta of direction and with enough valid cells in common.
// The first-stage score is the mean of the nP best of these maxima
// (coarseScore).
const (
	coarseRecWords  = 8 // slab record: mccND slices, the mask, the angle
	recMask         = mccND
	recAngle        = mccND + 1
	probeLanes      = 8
	probeBlockWords = coarseRecWords * probeLanes
	// maxProbeBlocks bounds the probe cylinders the first stage compares.
	maxProbeBlocks = 4
)

// coarseAllFunc is the full comparison's first kernel: cylSim for every
// pair of a probe lane and a record that passes the gates, 0 for the
// others, into out[(block*len(cand)/coarseRecWords+record)*probeLanes+lane].
type coarseAllFunc func(cand, probe []uint64, minCommon, gate uint64, out []float32)

// coarseMaxFunc is the first-stage kernel: for every lane of the probe
// blocks, the best cylSim over the gallery records cand that pass the gates
// (angle difference ≤ gate, common mask cells ≥ minCommon), or 0, into
// best[block*probeLanes+lane].
type coarseMaxFunc func(cand, probe []uint64, minCommon, gate uint64, best []float32)

// fingerKernel is the first-stage kernel in use, chosen once at start
// from the CPU's features (see finger_kernel_amd64.go).
var fingerKernel = fingerKernelSet{name: "go", coarseMax: coarseMaxGo, coarseAll: coarseAllGo}

type fingerKernelSet struct {
	name      string
	coarseMax coarseMaxFunc
	coarseAll coarseAllFunc
}

// FingerKernel names the first-stage kernel this process uses: "go", or an
// instruction set such as "avx512".
func FingerKernel() string { return fingerKernel.name }

// coarseMaxGo is the reference kernel, always built; the assembly kernels
// must agree with it bit for bit (TestFingerKernelsAgree).
func coarseMaxGo(cand, probe []uint64, minCommon, gate uint64, best []float32) {
	nc := len(cand) / coarseRecWords
	for blk := range len(probe) / probeBlockWords {
		pb := probe[blk*probeBlockWords : (blk+1)*probeBlockWords]
		for l := range probeLanes {
			var bl float32
			for j := range nc {
				bl = max(bl, pairSim(pb, l, (*[coarseRecWords]uint64)(cand[j*coarseRecWords:]), minCommon, gate))
			}
			best[blk*probeLanes+l] = bl
		}
	}
}

// coarseAllGo is the reference of coarseAllFunc.
func coarseAllGo(cand, probe []uint64, minCommon, gate uint64, out []float32) {
	nc := len(cand) / coarseRecWords
	for blk := range len(probe) / probeBlockWords {
		pb := probe[blk*probeBlockWords : (blk+1)*probeBlockWords]
		for j := range nc {
			c := (*[coarseRecWords]uint64)(cand[j*coarseRecWords:])
			o := out[(blk*nc+j)*probeLanes : (blk*nc+j+1)*probeLanes]
			for l := range probeLanes {
				o[l] = pairSim(pb, l, c, minCommon, gate)
			}
		}
	}
}

// pairSim is cylSim of probe lane l and record c, 0 if a gate stops it.
func pairSim(pb []uint64, l int, c *[coarseRecWords]uint64, minCommon, gate uint64) float32 {
	ma, ang := pb[recMask*probeLanes+l], pb[recAngle*probeLanes+l]
	d := (ang - c[recAngle]) & angleMask
	if min(d, angleSteps-d) > gate {
		return 0
	}
	mb := c[recMask]
	if uint64(bits.OnesCount64(ma&mb)) < minCommon {
		return 0
	}
	var na, nb, both int
	for w := range mccND {
		a := pb[w*probeLanes+l]
		na += bits.OnesCount64(a & mb)
		nb += bits.OnesCount64(c[w] & ma)
		both += bits.OnesCount64(a & c[w])
	}
	if na+nb == 0 {
		return 0
	}
	return cylSim(na, nb, both)
}

// transposeProbe writes the records of t's cylinders, in t's order, as
// probe blocks into blocks (grown as needed); lanes past the last cylinder
// are empty.
func transposeProbe(blocks []uint64, t *FingerTemplate) []uint64 {
	n := len(t.min)
	nblk := (n + probeLanes - 1) / probeLanes
	blocks = grow(blocks, nblk*probeBlockWords)
	clear(blocks)
	for i := range n {
		b := blocks[(i/probeLanes)*probeBlockWords:]
		for w := range coarseRecWords {
			b[w*probeLanes+i%probeLanes] = t.coarse[i*coarseRecWords+w]
		}
	}
	return blocks
}

// appendSlab appends t's slab records to slab, in order of angle.
func appendSlab(slab []uint64, t *FingerTemplate) []uint64 {
	n := len(t.min)
	var order [maxFingerMinutiae]uint8
	for i := range n {
		order[i] = uint8(i)
	}
	slices.SortStableFunc(order[:n], func(a, b uint8) int { return int(t.min[a].angle) - int(t.min[b].angle) })
	for _, i := range order[:n] {
		slab = append(slab, t.coarse[int(i)*coarseRecWords:(int(i)+1)*coarseRecWords]...)
	}
	return slab
}

// stage1Probe is a probe finger transposed for the kernel.
type stage1Probe struct {
	blocks []uint64 // nblk × probeBlockWords
	n      int      // the probe's cylinder count (for nP)
}

// layoutProbe fills p from t: its first coarseProbeCylinders cylinders
// (those with the most valid cells, see sortCylinders), in order of angle,
// so that a block's lanes span a narrow range of direction. Lanes past the
// last cylinder have an empty mask, which no gate passes.
func layoutProbe(p *stage1Probe, t *FingerTemplate) {
	m := min(len(t.min), coarseProbeCylinders)
	var order [maxProbeBlocks * probeLanes]uint8
	for i := range m {
		order[i] = uint8(i)
	}
	slices.SortStableFunc(order[:m], func(a, b uint8) int { return int(t.min[a].angle) - int(t.min[b].angle) })
	nblk := (m + probeLanes - 1) / probeLanes
	p.blocks = grow(p.blocks, nblk*probeBlockWords)
	clear(p.blocks)
	p.n = len(t.min)
	for k, i := range order[:m] {
		b := p.blocks[(k/probeLanes)*probeBlockWords:]
		l := k % probeLanes
		for w := range coarseRecWords {
			b[w*probeLanes+l] = t.coarse[int(i)*coarseRecWords+w]
		}
	}
}

// coarseScore is the first-stage score of a probe against a template's
// slab records: the mean of the nP best per-probe-cylinder maxima. Each
// probe cylinder counts once, so one probe cylinder that resembles many
// of the template's cannot fill the nP alone. best is the caller's
// scratch (on the heap: a kernel called through a function value would
// make a local array escape, an allocation per comparison).
func coarseScore(p *stage1Probe, cand []uint64, best *[maxProbeBlocks * probeLanes]float32) float32 {
	nB := len(cand) / coarseRecWords
	if p.n < 2 || nB < 2 {
		return 0
	}
	nl := len(p.blocks) / coarseRecWords
	fingerKernel.coarseMax(cand, p.blocks, uint64(minCommonCoarse), uint64(coarseDeltaTheta), best[:nl])
	nP := int(npFor[min(p.n, nB)])
	var top [mccMaxNP]float32 // the best nP, decreasing
	for _, v := range best[:nl] {
		if v <= top[nP-1] {
			continue
		}
		k := nP - 1
		for ; k > 0 && top[k-1] < v; k-- {
			top[k] = top[k-1]
		}
		top[k] = v
	}
	var sum float32
	for _, v := range top[:nP] {
		sum += v
	}
	return sum / float32(nP)
}
