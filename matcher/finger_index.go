package matcher

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

var (
	// ErrNilTemplate: a finger template is missing.
	ErrNilTemplate = errors.New("matcher: nil finger template")
)

// fingerParallelComparisons is the number of comparisons from which a
// search is split over cores; a comparison costs microseconds, so a few
// dozen already pay for the goroutines. Work is handed out in chunks of
// fingerChunk entries, so that workers that draw small templates take more.
const (
	fingerParallelComparisons = 64
	fingerChunk               = 32
)

// FingerIndex is the in-memory 1:N index of finger templates: every
// enrolled finger of every subject, scored exactly (every template
// compared) on all cores.
//
// A subject may have up to one template per finger position, or several
// (several impressions of one finger, or fingers of unknown position);
// hits are per subject.
//
// Fusion over fingers. A search with several probe fingers scores each
// probe finger against the subject's templates of the same position, or
// against all of them when the probe's or the template's position is
// unknown, and keeps the best score per probe finger. The subject's score
// is the mean of these over the probe fingers, a finger the subject has no
// template for counting 0: the sum rule, scaled back to 0..1. The sum rule
// suits scores of one matcher on one scale, rewards agreement of
// independent fingers (two fingers at 0.1 beat one at 0.15 and one at 0),
// and a missing finger lowers the score rather than vetoing the subject.
//
// Watchlists. A subject is on the watchlists SetWatchlists gives it; a
// search restricted to some (SearchOptions.Watchlists) compares only the
// templates of subjects on at least one of them, from the first stage on:
// the shortlist is drawn from those subjects alone, so a small watchlist's
// mates are found however many better-scoring strangers other lists hold.
//
// Concurrency: all methods are safe for concurrent use; searches share a
// read lock, Add and Remove take the write lock briefly.
type FingerIndex struct {
	m FingerMatcher

	mu      sync.RWMutex
	entries []fingerEntry
	// slab holds every entry's first-stage records (see finger_kernel.go),
	// entry i's at [entries[i].off, +its cylinder count) records.
	slab     []uint64
	subjects []string         // by subject number; "" marks a free number
	byID     map[string]int32 // subject id -> number
	count    []int32          // entries per subject number
	free     []int32
	// lists holds each watchlist's subjects, a bitmap over subject
	// numbers, and onLists each subject's watchlists.
	lists   map[string]*fingerList
	onLists [][]string

	pool sync.Pool // *fingerSearch
}

type fingerEntry struct {
	t       *FingerTemplate
	off     int // first slab record
	subject int32
	pos     minutiae.Position
}

// fingerList is one watchlist: bit s set when subject number s is on it.
type fingerList struct {
	bits     []uint64
	subjects int
}

// records is the entry's slab records.
func (x *FingerIndex) records(e *fingerEntry) []uint64 {
	return x.slab[e.off*coarseRecWords : (e.off+len(e.t.min))*coarseRecWords]
}

// fingerSearch is one search's buffers.
type fingerSearch struct {
	coarse []float32 // first-stage score per entry × probe finger
	probes []stage1Probe
	list   []int32   // entries of the shortlisted subjects
	scores []float32 // full score per list × probe finger
	best   []float32 // per subject × probe finger
	short  []bool    // per subject: shortlisted
	hist   [shortlistBuckets]int32
	hits   []Hit
	cands  []fingerCand
	relist []int32  // positions in list of the leaders' entries
	allow  []uint64 // the OR of the requested watchlists' bitmaps
	n      int      // templates searched: those of the allowed subjects
}

// The search is a cascade. Stage one scores every template against every
// probe finger with coarseScore, from the slab by a SIMD kernel (see
// finger_kernel.go), about a thirtieth of the cost of a full comparison;
// stage two gives the LSS-R comparison (scoreLocal) to every template of
// the subjects that ranked in the first shortlistSize(n) templates for
// some probe finger, and stage three the full comparison, global
// consolidation included, to the leaders of that ranking (max(2k,
// rescoreMin) subjects), which it ranks on the full scores only. The shortlist is wide
// (at least 2% of the gallery) because the coarse score is a rough one;
// the FVC test measures how often it loses the true mate
// (TestFingerSearchCascade).
const (
	shortlistMin      = 200
	shortlistFraction = 50 // 1/50 of the gallery
	shortlistBuckets  = 1024
)

func shortlistSize(n int) int { return max(shortlistMin, n/shortlistFraction) }

// NewFingerIndex returns an empty index.
func NewFingerIndex() *FingerIndex {
	return &FingerIndex{byID: map[string]int32{}, lists: map[string]*fingerList{}}
}

// Add enrolls one finger template of a subject at a finger position
// (minutiae.PositionUnknown when not known).
func (x *FingerIndex) Add(subjectID string, pos minutiae.Position, t *FingerTemplate) error {
	if subjectID == "" {
		return ErrEmptyID
	}
	if t == nil {
		return ErrNilTemplate
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.byID[subjectID]
	if !ok {
		if n := len(x.free); n > 0 {
			s, x.free = x.free[n-1], x.free[:n-1]
			x.subjects[s] = subjectID
		} else {
			s = int32(len(x.subjects))
			x.subjects = append(x.subjects, subjectID)
			x.count = append(x.count, 0)
			x.onLists = append(x.onLists, nil)
		}
		x.byID[subjectID] = s
	}
	x.entries = append(x.entries, fingerEntry{t: t, off: len(x.slab) / coarseRecWords, subject: s, pos: pos})
	x.slab = appendSlab(x.slab, t)
	x.count[s]++
	return nil
}

// Remove deletes every template of a subject and returns how many there
// were. It scans the index, which at a million templates takes a few
// milliseconds under the write lock: enrolments and deletions are rare.
func (x *FingerIndex) Remove(subjectID string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.byID[subjectID]
	if !ok {
		return 0
	}
	kept := x.entries[:0]
	slab := x.slab[:0]
	for _, e := range x.entries {
		if e.subject != s {
			// Kept records move down in place: a kept entry's records
			// never start before the compacted slab's end.
			r := x.records(&e)
			e.off = len(slab) / coarseRecWords
			slab = append(slab, r...)
			kept = append(kept, e)
		}
	}
	clear(x.entries[len(kept):]) // drop the references for the collector
	x.entries, x.slab = kept, slab
	n := int(x.count[s])
	x.count[s] = 0
	x.setLists(s, nil)
	x.subjects[s] = ""
	delete(x.byID, subjectID)
	x.free = append(x.free, s)
	return n
}

// SetWatchlists puts an enrolled subject on exactly the given watchlists
// (none: on no list, found only by unrestricted searches), and reports
// whether the subject is enrolled. Enrol its fingers first; Remove takes
// it off its lists.
func (x *FingerIndex) SetWatchlists(subjectID string, lists []string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	s, ok := x.byID[subjectID]
	if ok {
		x.setLists(s, lists)
	}
	return ok
}

// setLists, under the write lock, moves subject s from its lists to lists.
func (x *FingerIndex) setLists(s int32, lists []string) {
	for _, name := range x.onLists[s] {
		l := x.lists[name]
		l.bits[s/64] &^= 1 << (s % 64)
		if l.subjects--; l.subjects == 0 {
			delete(x.lists, name)
		}
	}
	lists = slices.Clone(lists)
	slices.Sort(lists)
	lists = slices.Compact(lists)
	for _, name := range lists {
		l := x.lists[name]
		if l == nil {
			l = &fingerList{}
			x.lists[name] = l
		}
		if w := int(s/64) + 1; len(l.bits) < w {
			l.bits = append(l.bits, make([]uint64, w-len(l.bits))...)
		}
		l.bits[s/64] |= 1 << (s % 64)
		l.subjects++
	}
	x.onLists[s] = lists
}

// Watchlists reports an enrolled subject's watchlists (sorted; shared, not
// to be modified).
func (x *FingerIndex) Watchlists(subjectID string) ([]string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s, ok := x.byID[subjectID]
	if !ok {
		return nil, false
	}
	return x.onLists[s], true
}

// filter sets sc.allow to the subjects on any of the named watchlists, or
// to nil for no restriction; ok is false when none of the lists has
// anyone. Called under the read lock.
func (x *FingerIndex) filter(names []string, sc *fingerSearch) (ok bool) {
	if len(names) == 0 {
		sc.allow = nil
		return true
	}
	words := (len(x.subjects) + 63) / 64
	sc.allow = grow(sc.allow[:0], words)
	clear(sc.allow)
	ok = false
	for _, name := range names {
		if l := x.lists[name]; l != nil && l.subjects > 0 {
			ok = true
			for i, w := range l.bits {
				sc.allow[i] |= w
			}
		}
	}
	return ok
}

// allowed reports whether subject s is searched: no restriction, or on one
// of the requested lists.
func (sc *fingerSearch) allowed(s int32) bool {
	return sc.allow == nil || sc.allow[s/64]&(1<<(s%64)) != 0
}

// Len is the number of templates.
func (x *FingerIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.entries)
}

// Subjects is the number of subjects.
func (x *FingerIndex) Subjects() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// Search finds the subjects whose fingers best match one probe finger of
// any position: SearchFingers with the probe at PositionUnknown.
func (x *FingerIndex) Search(probe *FingerTemplate, opt SearchOptions) ([]Hit, error) {
	return x.SearchFingers(map[minutiae.Position]*FingerTemplate{minutiae.PositionUnknown: probe}, opt)
}

// probeFinger is one probe of a search.
type probeFinger struct {
	pos minutiae.Position
	t   *FingerTemplate
}

// SearchFingers finds the K subjects with the best fused score over the
// probe fingers (see FingerIndex for the fusion rule), best first, ties
// broken by subject id. Hit.Score is in 0..1. With opt.Watchlists, only
// the subjects on one of them are compared and returned (none, when no
// subject is on any of them).
func (x *FingerIndex) SearchFingers(probes map[minutiae.Position]*FingerTemplate, opt SearchOptions) ([]Hit, error) {
	ps, err := probeList(probes)
	if err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc, _ := x.pool.Get().(*fingerSearch)
	if sc == nil {
		sc = &fingerSearch{}
	}
	defer x.pool.Put(sc)
	return x.search(ps, opt, sc), nil
}

// probeList checks a search's probe fingers and orders them by position.
func probeList(probes map[minutiae.Position]*FingerTemplate) ([]probeFinger, error) {
	if len(probes) == 0 {
		return nil, fmt.Errorf("%w: no probe fingers", ErrNilTemplate)
	}
	ps := make([]probeFinger, 0, len(probes))
	for pos, t := range probes {
		if t == nil {
			return nil, fmt.Errorf("%w: probe %s", ErrNilTemplate, pos)
		}
		ps = append(ps, probeFinger{pos, t})
	}
	slices.SortFunc(ps, func(a, b probeFinger) int { return cmp.Compare(a.pos, b.pos) })
	return ps, nil
}

// SearchFingersBatch runs several searches with the same options, each
// with its own probe fingers, and returns their hits in order: what
// SearchFingers returns for each. They share the first stage: one pass
// over the gallery's records scores every template against the probe
// fingers of all of them, so a batch costs less than its searches one by
// one (FingerCoalescer batches concurrent callers this way).
func (x *FingerIndex) SearchFingersBatch(probes []map[minutiae.Position]*FingerTemplate, opt SearchOptions) ([][]Hit, error) {
	pss := make([][]probeFinger, len(probes))
	for b, p := range probes {
		ps, err := probeList(p)
		if err != nil {
			return nil, fmt.Errorf("search %d: %w", b, err)
		}
		pss[b] = ps
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	sc, _ := x.pool.Get().(*fingerSearch)
	if sc == nil {
		sc = &fingerSearch{}
	}
	defer x.pool.Put(sc)
	return x.searchBatch(pss, opt, sc), nil
}

// search is SearchFingers under the read lock, with sc its buffers.
func (x *FingerIndex) search(ps []probeFinger, opt SearchOptions, sc *fingerSearch) []Hit {
	return x.searchBatch([][]probeFinger{ps}, opt, sc)[0]
}

// searchBatch runs the searches pss (each one's probe fingers) under the
// read lock: the first stage for all of them in one pass, then each one's
// second stage.
func (x *FingerIndex) searchBatch(pss [][]probeFinger, opt SearchOptions, sc *fingerSearch) [][]Hit {
	out := make([][]Hit, len(pss))
	if !x.filter(opt.Watchlists, sc) {
		for b := range out {
			out[b] = []Hit{}
		}
		return out
	}
	all := slices.Concat(pss...)
	x.coarsePass(all, sc)
	off := 0
	for b, ps := range pss {
		x.markShort(off, len(ps), len(all), sc)
		out[b] = x.rank(ps, opt, sc)
		off += len(ps)
	}
	return out
}

// rank is a search's second and third stages: the local comparison of
// every template of the subjects sc.short holds with the search's probe
// fingers ps, the full comparison of the leaders', and the fused hits,
// best first.
func (x *FingerIndex) rank(ps []probeFinger, opt SearchOptions, sc *fingerSearch) []Hit {
	k := opt.K
	if k <= 0 {
		k = defaultK
	}
	np := len(ps)
	// Stage two: local scores for every template of a shortlisted subject.
	sc.list = sc.list[:0]
	for i, e := range x.entries {
		if sc.short[e.subject] {
			sc.list = append(sc.list, int32(i))
		}
	}
	sc.scores = grow(sc.scores, len(sc.list)*np)
	x.parallel(len(sc.list)*np, func(lo, hi int, s *fingerScratch) {
		for j := lo; j < hi; j++ {
			e, pf := &x.entries[sc.list[j/np]], &ps[j%np]
			var v float32
			if compatible(pf.pos, e.pos) {
				v = s.scoreLocal(pf.t, e.t)
			}
			sc.scores[j] = v
		}
	})
	sc.cands = sc.cands[:0]
	for s, id := range x.subjects {
		if id != "" && sc.short[s] {
			sc.cands = append(sc.cands, fingerCand{subject: int32(s)})
		}
	}
	x.subjectScores(np, sc)
	x.sortCands(sc.cands)

	// The shortlist is ranked on the local score; its leaders get the full
	// score, global stage included (a quarter of a comparison's cost on
	// its own: ranking a shortlist of 2% of the gallery on it cost 8–12%
	// of the search's throughput). The full score is never lower, so the
	// leaders stay ahead of the rest, and the hits returned carry the
	// scores Verify gives.
	lead := sc.cands[:min(len(sc.cands), max(2*k, rescoreMin))]
	clear(sc.short)
	for _, cd := range lead {
		sc.short[cd.subject] = true
	}
	sc.relist = sc.relist[:0]
	for j, i := range sc.list {
		if sc.short[x.entries[i].subject] {
			sc.relist = append(sc.relist, int32(j))
		}
	}
	x.parallel(len(sc.relist)*np, func(lo, hi int, s *fingerScratch) {
		for r := lo; r < hi; r++ {
			j := int(sc.relist[r/np])
			e, pf := &x.entries[sc.list[j]], &ps[r%np]
			if compatible(pf.pos, e.pos) {
				sc.scores[j*np+r%np] = s.score(pf.t, e.t)
			}
		}
	})
	x.subjectScores(np, sc)
	x.sortCands(lead)

	sc.hits = sc.hits[:0]
	for _, cd := range lead {
		if opt.HasMinScore && cd.score < opt.MinScore {
			continue
		}
		sc.hits = append(sc.hits, Hit{SubjectID: x.subjects[cd.subject], Score: cd.score})
	}
	return slices.Clone(sc.hits[:min(k, len(sc.hits))])
}

// rescoreMin is the fewest leaders of a search's first ranking that get
// the full comparison (see rank), however few hits are asked for.
const rescoreMin = 20

// fingerCand is a shortlisted subject and its score: the mean over the
// probe fingers of the best full score of the subject's templates.
type fingerCand struct {
	subject int32
	score   float32
}

// subjectScores sets the score of every candidate in sc.cands from
// sc.scores.
func (x *FingerIndex) subjectScores(np int, sc *fingerSearch) {
	sc.best = grow(sc.best, len(x.subjects)*np)
	clear(sc.best)
	for j, i := range sc.list {
		s := int(x.entries[i].subject)
		b := sc.best[s*np : (s+1)*np]
		for p, v := range sc.scores[j*np : (j+1)*np] {
			b[p] = max(b[p], v)
		}
	}
	for c := range sc.cands {
		var sum float32
		for _, v := range sc.best[int(sc.cands[c].subject)*np:][:np] {
			sum += v
		}
		sc.cands[c].score = sum / float32(np)
	}
}

// sortCands orders candidates by decreasing score, then by subject id.
func (x *FingerIndex) sortCands(cands []fingerCand) {
	slices.SortFunc(cands, func(a, b fingerCand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(x.subjects[a.subject], x.subjects[b.subject])
	})
}

// shortlist is the first stage of a search with probe fingers ps: it sets
// sc.short for the subjects with a template among the shortlistSize best
// coarse scores of some probe finger, or for every subject when the index
// is small. Only subjects sc.allowed are shortlisted.
func (x *FingerIndex) shortlist(ps []probeFinger, sc *fingerSearch) {
	x.coarsePass(ps, sc)
	x.markShort(0, len(ps), len(ps), sc)
}

// searched is the number of templates of the subjects sc.allowed.
func (x *FingerIndex) searched(sc *fingerSearch) int {
	if sc.allow == nil {
		return len(x.entries)
	}
	n := 0
	for i := range x.subjects {
		if sc.allowed(int32(i)) {
			n += int(x.count[i])
		}
	}
	return n
}

// coarsePass scores every template of an allowed subject against every
// probe finger of all (the probe fingers of one or more searches) with
// coarseScore, into sc.coarse[entry*len(all)+probe], in one pass over the
// slab; the others score 0. Not when the searched gallery is small enough
// to compare in full (then sc.coarse is left empty).
func (x *FingerIndex) coarsePass(all []probeFinger, sc *fingerSearch) {
	sc.n = x.searched(sc)
	if sc.n <= shortlistSize(sc.n) {
		sc.coarse = sc.coarse[:0]
		return
	}
	np, n := len(all), len(x.entries)
	sc.coarse = grow(sc.coarse, n*np)
	sc.probes = grow(sc.probes, np)
	for p, pf := range all {
		layoutProbe(&sc.probes[p], pf.t)
	}
	x.parallel(n*np, func(lo, hi int, s *fingerScratch) {
		for j := lo; j < hi; j++ {
			e, p := &x.entries[j/np], j%np
			var v float32
			if compatible(all[p].pos, e.pos) && sc.allowed(e.subject) {
				v = coarseScore(&sc.probes[p], x.records(e), &s.best)
			}
			sc.coarse[j] = v
		}
	})
}

// markShort sets sc.short from the coarse scores of the probe fingers
// off..off+np-1 of the stride probe fingers coarsePass scored.
func (x *FingerIndex) markShort(off, np, stride int, sc *fingerSearch) {
	sc.short = grow(sc.short, len(x.subjects))
	if len(sc.coarse) == 0 {
		for i, id := range x.subjects {
			sc.short[i] = id != "" && sc.allowed(int32(i))
		}
		return
	}
	clear(sc.short)
	size := shortlistSize(sc.n)
	for p := off; p < off+np; p++ {
		th := sc.threshold(p, stride, size)
		for i := range x.entries {
			if v := sc.coarse[i*stride+p]; v > 0 && v >= th {
				sc.short[x.entries[i].subject] = true
			}
		}
	}
}

// compatible reports whether a probe finger is compared with a template:
// same position, or either unknown.
func compatible(probe, enrolled minutiae.Position) bool {
	return probe == enrolled || probe == minutiae.PositionUnknown || enrolled == minutiae.PositionUnknown
}

// threshold is the first-stage score of probe p that about size templates
// reach (from a histogram of the scores, so in O(n)); ties at the
// threshold all pass.
func (sc *fingerSearch) threshold(p, np, size int) float32 {
	clear(sc.hist[:])
	for i := p; i < len(sc.coarse); i += np {
		sc.hist[min(int(sc.coarse[i]*shortlistBuckets), shortlistBuckets-1)]++
	}
	seen := 0
	for b := shortlistBuckets - 1; b > 0; b-- {
		seen += int(sc.hist[b])
		if seen >= size {
			return float32(b) / shortlistBuckets
		}
	}
	return 0
}

// parallel runs f over [0, n) in chunks on all cores, each worker with its
// own comparison scratch.
func (x *FingerIndex) parallel(n int, f func(lo, hi int, s *fingerScratch)) {
	workers := min(runtime.GOMAXPROCS(0), (n+fingerChunk-1)/fingerChunk)
	if n < fingerParallelComparisons || workers < 2 {
		s := x.m.scratch()
		f(0, n, s)
		x.m.pool.Put(s)
		return
	}
	// The package's parallel carries a worker's panic (a corrupt template,
	// a bug) back to the caller's goroutine, where the server recovers it,
	// instead of ending the process.
	var next atomic.Int64
	parallel(workers, func(int) {
		s := x.m.scratch()
		for {
			hi := int(next.Add(fingerChunk))
			lo := hi - fingerChunk
			if lo >= n {
				break
			}
			f(lo, min(hi, n), s)
		}
		x.m.pool.Put(s) // not after a panic: its contents are unknown
	})
}

// VerifyFingers is the fused score of a subject against the probe fingers,
// by the rule SearchFingers ranks with; ok is false when the subject is
// not enrolled.
func (x *FingerIndex) VerifyFingers(probes map[minutiae.Position]*FingerTemplate, subjectID string) (score float32, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s, ok := x.byID[subjectID]
	if !ok || len(probes) == 0 {
		return 0, ok
	}
	var sum float32
	for pos, t := range probes {
		if t == nil {
			continue
		}
		var best float32
		for _, e := range x.entries {
			if e.subject == s && compatible(pos, e.pos) {
				best = max(best, float32(x.m.Score(t, e.t)))
			}
		}
		sum += best
	}
	return sum / float32(len(probes)), true
}
