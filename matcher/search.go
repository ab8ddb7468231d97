package matcher

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
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
	np     int // probes of the current search
	nwork  int // workers of the current search
	// missing counts re-scored subjects a VectorSource did not have.
	missing int
}

// worker is one scanning goroutine's state: per probe, a heap of the best
// lower bounds of distinct subjects and the rows that reached it.
type worker struct {
	tops  []topK
	cands [][]cand
	acc   []int32  // a tile's sums: per block, per probe of the group, 16
	masks []uint16 // per block and probe: the sums that reach the probe's floor
	hot   []int32  // blocks of the tile with a mask set, relative to its first
	prm   probeParams
	// rescore's, for the probes p with p%nwork the worker's number.
	subs    []int32 // candidate subjects of one probe
	final   topK
	v       []float32 // a source's vector, normalised
	missing int       // re-scored subjects the source did not have
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
	var out [1][]Hit
	err := ix.searchSourced(sc, [][]float32{probe}, opt, out[:])
	ix.scratch.Put(sc) // not after a panic: the scratch is dropped
	if err != nil {
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
	out := make([][]Hit, len(probes))
	err := ix.searchSourced(sc, probes, opt, out)
	ix.scratch.Put(sc) // not after a panic: the scratch is dropped
	if err != nil {
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
	// The workers take tiles one at a time from a shared counter rather
	// than a fixed share of the rows each: on a busy machine a worker that
	// loses its core for a while then delays the search by its own tiles'
	// time only, not by its whole share's. A tile is whole bitmap words
	// (64 rows), so a worker reads only its own words.
	var next atomic.Int64
	parallel(workers, func(w int) { ix.scanTiles(sc, &work[w], &next, n, filter) })

	// Re-scoring reads f32 rows scattered over the slab, mostly cache and
	// TLB misses, or waits on the VectorSource (the store): on all the
	// workers' cores, a share of the probes each, so that a batch's
	// re-scoring does not leave all but one core idle.
	errs := make([]error, min(workers, np))
	rescoreShare := func(w int) {
		for p := w; p < np; p += workers {
			var err error
			if out[p], err = ix.rescore(sc, p, k, floor); err != nil && errs[w] == nil {
				errs[w] = err
			}
		}
	}
	parallel(len(errs), rescoreShare)
	for w := range work {
		sc.missing += work[w].missing
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// parallel runs f(1)..f(n-1) on goroutines of their own and f(0) on the
// caller's, and returns when all have. A panic on one of the goroutines —
// a VectorSource's, say — is carried to the caller's goroutine (as a
// *goroutinePanic, after the others have ended), where a caller can
// recover it, instead of killing the process; and a panic in f(0) leaves
// only once the goroutines have ended, so none is still at work in a
// scratch while the panic unwinds.
func parallel(n int, f func(w int)) {
	if n <= 1 {
		f(0) // no goroutine: nothing to share
		return
	}
	g := new(goroutines) // one allocation for what the goroutines share
	for w := 1; w < n; w++ {
		g.wg.Go(func() {
			defer g.recover()
			f(w)
		})
	}
	func() {
		defer g.wg.Wait()
		f(0)
	}()
	if g.pan != nil {
		panic(g.pan)
	}
}

// goroutines is what parallel's goroutines share: the group, and the first
// panic among them.
type goroutines struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	pan *goroutinePanic
}

// recover, deferred on a goroutine, keeps its panic if it is the first.
func (g *goroutines) recover() {
	if r := recover(); r != nil {
		g.mu.Lock()
		if g.pan == nil {
			g.pan = &goroutinePanic{value: r, stack: debug.Stack()}
		}
		g.mu.Unlock()
	}
}

// goroutinePanic is a panic of one of a search's goroutines, raised again
// on the caller's: the value and the stack where it was raised.
type goroutinePanic struct {
	value any
	stack []byte
}

func (p *goroutinePanic) Error() string {
	return fmt.Sprintf("%v\n\ngoroutine stack:\n%s", p.value, p.stack)
}

// Unwrap gives the panic's value, when it is an error.
func (p *goroutinePanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
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
	w.missing = 0
	if w.acc == nil {
		w.acc = make([]int32, tileBlocks*groupSize*blockRows)
		// In uint64s, so that a block's eight masks read as two words.
		m := make([]uint64, tileBlocks*groupSize/4)
		w.masks = unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(m))), tileBlocks*groupSize)
		w.hot = make([]int32, 0, tileBlocks)
		w.v = make([]float32, subjects.dim)
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

// scanTiles scans the tiles of rows 0..n-1 that it gets from next.
func (ix *Index) scanTiles(sc *scratch, w *worker, next *atomic.Int64, n int, filter []uint64) {
	for {
		lo := int(next.Add(1)-1) * tileBlocks * blockRows
		if lo >= n {
			return
		}
		ix.scan(sc, w, lo, min(lo+tileBlocks*blockRows, n), filter)
	}
}

// scan scores rows lo..hi-1 (those set in filter, when it is not nil)
// against every probe, a tile of blocks at a time. lo is a multiple of 64.
//
// The kernels turn every sum into its row's upper bound and flag the rows
// whose bound reaches the probe's floor as of the start of the tile; only
// the flagged rows are looked at in Go. A floor only rises, so a flag from
// an older floor is a superset of what finish keeps: finish checks each
// flagged row against the current floor again.
func (ix *Index) scan(sc *scratch, w *worker, lo, hi int, filter []uint64) {
	bb := ix.chunks * chunkBytes
	qps := sc.probes[:sc.np]
	single := len(qps) == 1
	prm := &w.prm
	for b0 := lo / blockRows; b0*blockRows < hi; b0 += tileBlocks {
		b1 := min(b0+tileBlocks, blocksFor(hi))
		rhi := min(b1*blockRows, hi)
		if single {
			masks := w.masks[:b1-b0]
			if filter != nil {
				clear(masks) // blocks without a row of the filter are not scored
			}
			qps[0].params(prm, 0, w.tops[0].floor)
			ix.score(b0, b1, filter, func(c0, c1 int) {
				kernels.dotBlocks1(ix.codes[c0*bb:c1*bb], ix.chunks, qps[0].p8, qps[0].p16, ix.tileScales(c0, c1), prm, w.acc[(c0-b0)*blockRows:], masks[c0-b0:])
			})
			hot := w.hot[:0]
			for i, m := range masks {
				if m != 0 {
					hot = append(hot, int32(i))
				}
			}
			w.hot = hot
			ix.finish(&w.tops[0], &w.cands[0], qps[0], w.acc, masks, hot, 1, 0, b0, rhi, filter)
			continue
		}
		for g := 0; g*groupSize < len(qps); g++ {
			for p := range groupSize {
				if i := g*groupSize + p; i < len(qps) {
					qps[i].params(prm, p, w.tops[i].floor)
				} else { // a padding probe: no row
					prm.off[p], prm.b[p], prm.c[p], prm.t[p] = 0, 0, 0, float32(math.Inf(1))
				}
			}
			masks := w.masks[:(b1-b0)*groupSize]
			if filter != nil {
				clear(masks)
			}
			ix.score(b0, b1, filter, func(c0, c1 int) {
				acc := w.acc[(c0-b0)*blockRows*groupSize:]
				kernels.dotBlocks8(ix.codes[c0*bb:c1*bb], ix.chunks, sc.groups[g], sc.wide[g], ix.tileScales(c0, c1), prm, acc, masks[(c0-b0)*groupSize:])
			})
			// A block's eight masks are two words.
			words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(masks))), len(masks)/4)
			hot := w.hot[:0]
			for i := 0; i+1 < len(words); i += 2 {
				if words[i]|words[i+1] != 0 {
					hot = append(hot, int32(i/2))
				}
			}
			w.hot = hot
			if len(hot) == 0 {
				continue
			}
			for p := g * groupSize; p < min((g+1)*groupSize, len(qps)); p++ {
				ix.finish(&w.tops[p], &w.cands[p], qps[p], w.acc, masks, hot, groupSize, p%groupSize, b0, rhi, filter)
			}
		}
	}
}

// tileScales are the row scales of blocks c0..c1-1 (fewer for the last,
// partial block).
func (ix *Index) tileScales(c0, c1 int) []float32 {
	return ix.scales[c0*blockRows : min(c1*blockRows, len(ix.scales))]
}

// maskMargin is how far below a floor the kernels flag rows. The kernels
// compute a row's bound in another order than finish (probeParams), so the
// two round differently, by a few units in the last place of numbers below
// 2 in magnitude (the bound of a cosine): under 1e-6. The margin, ten
// times that, makes sure every row finish would keep is flagged.
const maskMargin = 1e-5

// params writes the probe's lane p of the kernels' parameters for a floor.
// A floor of -Inf flags every row.
func (qp *qprobe) params(prm *probeParams, p int, floor float32) {
	prm.off[p] = int32(qp.off) // an integer below 2^24: exact in float32
	prm.b[p] = qp.b
	prm.c[p] = qp.c
	prm.t[p] = floor - qp.e - maskMargin
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
// stride probes' 16 sums; this probe's are the p-th, and masks[i*stride+p]
// flags the rows of block b0+i whose bound reached the probe's floor when
// the tile was scored; hot lists the blocks where any probe's did.
func (ix *Index) finish(t *topK, cands *[]cand, qp *qprobe, acc []int32, masks []uint16, hot []int32, stride, p, b0, rhi int, filter []uint64) {
	scales, slots := ix.scales[:rhi], ix.slots[:rhi]
	off, pb, pc, pe := qp.off, qp.b, qp.c, qp.e
	for _, i := range hot {
		m := masks[int(i)*stride+p]
		if m == 0 {
			continue
		}
		b := b0 + int(i)
		if n := rhi - b*blockRows; n < blockRows {
			m &= 1<<n - 1 // the padding rows of the last block
		}
		blk := (*[blockRows]int32)(acc[(int(i)*stride+p)*blockRows:])
		for ; m != 0; m &= m - 1 {
			l := bits.TrailingZeros16(m)
			r := b*blockRows + l
			if filter != nil && (r>>6 >= len(filter) || filter[r>>6]&(1<<(r&63)) == 0) {
				continue
			}
			a := scales[r]
			s := (float32(blk[l]) - off) * (a * pb)
			h := a*pc + pe
			if s+h < t.floor {
				continue
			}
			*cands = append(*cands, cand{upper: s + h, row: int32(r)})
			if l := s - h; l >= t.floor {
				t.offer(l, slots[r].subject)
			}
		}
	}
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
	rw := &work[p%len(work)] // the worker whose scratch this probe's rescore uses
	subs := rw.subs[:0]
	for w := range work {
		for _, c := range work[w].cands[p] {
			if c.upper >= bound {
				subs = append(subs, ix.slots[c.row].subject)
			}
		}
	}
	slices.Sort(subs)
	subs = slices.Compact(subs)
	rw.subs = subs

	q := sc.probes[p].q
	t := &rw.final
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
		err := ix.fetch(rw.v, q, ids, func(i int, s float32) {
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
				rw.missing++
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
