package matcher

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
)

// tileBlocks is how many code blocks a worker scores at a time: 2,048
// rows, 256 KB of 128-d codes, which stay in the L2 cache while every group
// of probes of a batch passes over them, so a batch reads the gallery from
// memory once.
const tileBlocks = 128

// search is the per-query state Search and SearchBatch keep in scratch.
type search struct {
	probes []*qprobe
	groups [][]int8  // probes interleaved by eights (dotBlocks8)
	wide   [][]int16 // the same probes widened, one after another
	work   []worker
	np     int     // probes of the current search
	nwork  int     // workers of the current search
	subs   []int32 // candidate subjects of one probe
	// missing counts re-scored subjects a VectorSource did not have.
	missing int
	final   topK
}

// worker is one scanning goroutine's state: per probe, a heap of the best
// lower bounds of distinct subjects and the rows that reached it.
type worker struct {
	tops  []topK
	cands [][]cand
	acc   []int32
}

// Search returns the opt.K subjects most similar to probe, best first,
// each with its best score over its vectors. Equal scores are ordered by
// subject id, also at the K-th place, so the result does not depend on the
// order the index was built in. It returns ErrDimension or ErrBadVector
// (wrapped) for a probe it cannot compare.
//
// The scores are exact f32 cosines: the scan over int8 codes only selects
// which subjects to re-score (quant.go).
func (ix *Index) Search(probe []float32, opt SearchOptions) ([]Hit, error) {
	sc := ix.scratch.Get().(*scratch)
	defer ix.scratch.Put(sc)
	var out [1][]Hit
	if err := ix.searchSourced(sc, [][]float32{probe}, opt, out[:]); err != nil {
		return nil, err
	}
	return out[0], nil
}

// SearchBatch is Search for several probes with the same options: hits[i]
// are probe i's, the same as Search(probes[i], opt) would return. It reads
// the index once for all of them, scoring each block of codes against
// eight probes per load, so a batch costs much less than its probes one by
// one. It fails, naming the probe, on the first probe Search would refuse.
func (ix *Index) SearchBatch(probes [][]float32, opt SearchOptions) ([][]Hit, error) {
	sc := ix.scratch.Get().(*scratch)
	defer ix.scratch.Put(sc)
	out := make([][]Hit, len(probes))
	if err := ix.searchSourced(sc, probes, opt, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (ix *Index) search(sc *scratch, probes [][]float32, opt SearchOptions, out [][]Hit) error {
	k := opt.K
	if k <= 0 {
		k = defaultK
	}
	floor := float32(math.Inf(-1))
	if opt.HasMinScore {
		floor = opt.MinScore
	}
	np := len(probes)
	for len(sc.probes) < np {
		sc.probes = append(sc.probes, newQprobe(ix.dim))
	}
	qps := sc.probes[:np]
	sc.np = np
	for i, p := range probes {
		if err := ix.normalise(qps[i].q, p); err != nil {
			if np > 1 {
				return fmt.Errorf("probe %d: %w", i, err)
			}
			return err
		}
		qps[i].quantise()
	}
	if np > 1 {
		sc.interleave(qps, ix.chunks)
	}

	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := len(ix.slots)
	filter, ok := ix.filter(opt.Watchlists, sc)
	if !ok || n == 0 || np == 0 {
		return nil
	}

	workers := 1
	if n > parallelRows {
		workers = min(runtime.GOMAXPROCS(0), n/(parallelRows/4))
	}
	for len(sc.work) < workers {
		sc.work = append(sc.work, worker{})
	}
	work := sc.work[:workers]
	sc.nwork = workers
	for w := range work {
		work[w].reset(np, k, floor, ix)
	}
	// Whole bitmap words (64 rows, 4 blocks) per worker, so a worker reads
	// only its own words.
	chunk := ((n+workers-1)/workers + 63) &^ 63
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo < hi {
			wg.Go(func() { ix.scan(sc, &work[w], lo, hi, filter) })
		}
	}
	ix.scan(sc, &work[0], 0, min(chunk, n), filter)
	wg.Wait()

	for p := range np {
		var err error
		if out[p], err = ix.rescore(sc, p, k, floor); err != nil {
			return err
		}
	}
	for w := range work {
		for p := range work[w].tops {
			work[w].tops[p].subjects = nil // do not pin a grown-out subjects array
		}
	}
	sc.final.subjects = nil
	return nil
}

func (w *worker) reset(np, k int, floor float32, subjects *Index) {
	for len(w.tops) < np {
		w.tops = append(w.tops, topK{})
		w.cands = append(w.cands, nil)
	}
	for p := range np {
		w.tops[p].reset(k, floor, subjects)
		w.cands[p] = w.cands[p][:0]
	}
	if w.acc == nil {
		w.acc = make([]int32, tileBlocks*groupSize*blockRows)
	}
}

// interleave lays the probes out for dotBlocks8, eight at a time, the last
// group padded with zero probes.
func (sc *search) interleave(qps []*qprobe, chunks int) {
	ng := (len(qps) + groupSize - 1) / groupSize
	for len(sc.groups) < ng {
		sc.groups = append(sc.groups, make([]int8, chunks*4*groupSize))
		sc.wide = append(sc.wide, make([]int16, chunks*4*groupSize))
	}
	for g := range ng {
		grp, wide := sc.groups[g], sc.wide[g]
		clear(grp)
		clear(wide)
		for p := range groupSize {
			if g*groupSize+p >= len(qps) {
				break
			}
			q := qps[g*groupSize+p]
			for j, x := range q.p8 {
				grp[(j/4*groupSize+p)*4+j%4] = x
			}
			copy(wide[p*chunks*4:], q.p16)
		}
	}
}

// scan scores rows lo..hi-1 (those set in filter, when it is not nil)
// against every probe, a tile of blocks at a time. lo is a multiple of 64.
func (ix *Index) scan(sc *scratch, w *worker, lo, hi int, filter []uint64) {
	bb := ix.chunks * chunkBytes
	qps := sc.probes[:sc.np]
	single := len(qps) == 1
	for b0 := lo / blockRows; b0*blockRows < hi; b0 += tileBlocks {
		b1 := min(b0+tileBlocks, blocksFor(hi))
		rlo, rhi := b0*blockRows, min(b1*blockRows, hi)
		var amax float32
		for _, a := range ix.scales[rlo:rhi] {
			amax = max(amax, a)
		}
		if single {
			ix.score(b0, b1, filter, func(c0, c1 int) {
				acc := w.acc[(c0-b0)*blockRows:]
				kernels.dotBlocks1(ix.codes[c0*bb:c1*bb], ix.chunks, qps[0].p8, qps[0].p16, acc)
			})
			ix.finish(&w.tops[0], &w.cands[0], qps[0], w.acc, 1, 0, b0, rlo, rhi, filter, amax)
			continue
		}
		for g := 0; g*groupSize < len(qps); g++ {
			ix.score(b0, b1, filter, func(c0, c1 int) {
				acc := w.acc[(c0-b0)*blockRows*groupSize:]
				kernels.dotBlocks8(ix.codes[c0*bb:c1*bb], ix.chunks, sc.groups[g], sc.wide[g], acc)
			})
			for p := g * groupSize; p < min((g+1)*groupSize, len(qps)); p++ {
				ix.finish(&w.tops[p], &w.cands[p], qps[p], w.acc, groupSize, p%groupSize, b0, rlo, rhi, filter, amax)
			}
		}
	}
}

// score calls kernel on blocks b0..b1-1, or, with a filter, on the runs of
// those blocks that hold a row of it.
func (ix *Index) score(b0, b1 int, filter []uint64, kernel func(c0, c1 int)) {
	if filter == nil {
		kernel(b0, b1)
		return
	}
	run := -1
	for b := b0; b <= b1; b++ {
		has := false
		if b < b1 {
			if wi := b * blockRows >> 6; wi < len(filter) {
				has = filter[wi]>>(uint(b*blockRows)&63)&(1<<blockRows-1) != 0
			}
		}
		switch {
		case has && run < 0:
			run = b
		case !has && run >= 0:
			kernel(run, b)
			run = -1
		}
	}
}

// finish turns a tile's integer sums for one probe into score intervals:
// a row whose upper bound reaches the worker's floor is kept as a
// candidate, and its lower bound offered to the heap. acc holds, per block,
// stride probes' 16 sums; this probe's are the p-th. amax is the largest
// row scale of the tile: with it, a floor becomes an integer sum below
// which no row of the tile can reach it, so most rows cost one compare.
func (ix *Index) finish(t *topK, cands *[]cand, qp *qprobe, acc []int32, stride, p, b0, rlo, rhi int, filter []uint64, amax float32) {
	scales, slots := ix.scales[:rhi], ix.slots[:rhi]
	off, pb, pc, pe := qp.off, qp.b, qp.c, qp.e
	vmin := qp.minSum(t.floor, amax)
	for b := rlo / blockRows; b*blockRows < rhi; b++ {
		blk := (*[blockRows]int32)(acc[((b-b0)*stride+p)*blockRows:])
		n := min(blockRows, rhi-b*blockRows)
		for l, v := range blk {
			if v < vmin || l >= n {
				continue
			}
			r := b*blockRows + l
			if filter != nil && (r>>6 >= len(filter) || filter[r>>6]&(1<<(r&63)) == 0) {
				continue
			}
			a := scales[r]
			s := (float32(v) - off) * (a * pb)
			m := a*pc + pe
			if s+m < t.floor {
				continue
			}
			*cands = append(*cands, cand{upper: s + m, row: int32(r)})
			if l := s - m; l >= t.floor {
				t.offer(l, slots[r].subject)
				vmin = qp.minSum(t.floor, amax)
			}
		}
	}
}

// minSum is the integer sum below which a row of scale at most amax has an
// upper bound below floor (math.MinInt32 when there is none).
func (qp *qprobe) minSum(floor, amax float32) int32 {
	if !(floor-qp.e > 0) || amax <= 0 || qp.b <= 0 {
		return math.MinInt32
	}
	x := (float64(floor-qp.e)/float64(amax)-float64(qp.c))/float64(qp.b) + float64(qp.off)
	if x > math.MaxInt32/2 {
		return math.MaxInt32 / 2
	}
	return int32(math.Floor(x)) - 1
}

// rescore merges probe p's worker heaps into the K-th best lower bound,
// re-scores in f32 every subject with a candidate row reaching it — from
// the slab, or with a VectorSource from the source — and returns the best
// K of those, best first.
func (ix *Index) rescore(sc *scratch, p, k int, floor float32) ([]Hit, error) {
	work := sc.work[:sc.nwork]
	best := &work[0].tops[p]
	for w := 1; w < len(work); w++ {
		for _, c := range work[w].tops[p].h {
			best.offer(c.score, c.subject)
		}
	}
	bound := best.floor
	subs := sc.subs[:0]
	for w := range work {
		for _, c := range work[w].cands[p] {
			if c.upper >= bound {
				subs = append(subs, ix.slots[c.row].subject)
			}
		}
	}
	slices.Sort(subs)
	subs = slices.Compact(subs)
	sc.subs = subs

	q := sc.probes[p].q
	t := &sc.final
	t.reset(k, floor, ix)
	if ix.src != nil {
		ids := make([]string, len(subs))
		for i, sn := range subs {
			ids[i] = string(ix.idOf(sn))
		}
		scores := make([]float32, len(subs))
		for i := range scores {
			scores[i] = float32(math.NaN()) // no vector: not a hit
		}
		err := ix.fetch(sc, q, ids, func(i int, s float32) {
			if !(scores[i] >= s) {
				scores[i] = s
			}
		})
		if err != nil {
			return nil, err
		}
		for i, sn := range subs {
			if s := scores[i]; s >= t.floor {
				t.offer(s, sn)
			} else if s != s {
				sc.missing++
			}
		}
	} else {
		d := ix.dim
		for _, sn := range subs {
			score := float32(-2)
			for r := ix.subjects[sn].first; r >= 0; r = ix.next[r] {
				score = max(score, dot(q, ix.slab[int(r)*d:int(r+1)*d]))
			}
			if score >= t.floor {
				t.offer(score, sn)
			}
		}
	}
	hits := make([]Hit, len(t.h))
	for i, c := range t.h {
		hits[i] = Hit{SubjectID: string(ix.idOf(c.subject)), Score: c.score}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.SubjectID, b.SubjectID)
	})
	return hits, nil
}
