// Package matcher is the in-memory 1:N index of biometric templates: every
// vector of one modality in one contiguous slab, searched exactly (every
// vector scored) on all cores.
//
// The index is a cache, not a store. Badger, through package store, is the
// source of truth; the server keeps one Index per modality, loads it from
// the store at start and applies every enrolment and deletion to both.
//
// The search is exact rather than approximate (graph indexes): an exact
// scan gives the same candidate list whatever order the gallery was loaded
// in, which an officer or an auditor can rely on. To run it near memory
// bandwidth it scans int8 codes of the vectors (a quarter of the bytes,
// with AVX-512 VNNI or AVX2 kernels) and re-scores in f32 only the subjects
// whose proven score interval reaches the K-th best (quant.go), so the hits
// and scores are those of the f32 search. The f32 vectors for that are kept
// in memory by default; the server keeps them in the store only and gives
// the index a VectorSource (vectors.go), so a face costs some 172 bytes of
// RAM instead of 760.
package matcher

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

var (
	// ErrDimension: a vector's length differs from the index's dimension.
	ErrDimension = errors.New("matcher: wrong vector dimension")
	// ErrBadVector: a vector is all zeros or holds NaN or Inf, so it has no
	// direction to compare.
	ErrBadVector = errors.New("matcher: vector is zero or not finite")
	// ErrEmptyID: an entry has no subject id.
	ErrEmptyID = errors.New("matcher: empty subject id")
)

// defaultK is the number of hits Search returns when SearchOptions.K <= 0.
const defaultK = 10

// parallelRows is the index size from which a search is split across
// cores: below it, starting goroutines costs more than it saves. A worker
// gets at least parallelRows/4 rows.
const parallelRows = 16 << 10

// Entry is one template vector of a subject. A subject enrolled with
// several photos has several entries, all with the same SubjectID.
type Entry struct {
	SubjectID string
	// Vector has the index's dimension. It need not be normalised: the
	// index stores it scaled to unit length.
	Vector []float32
	// Watchlists the subject is on. Membership belongs to the subject, not
	// to one vector: a subject is on the union of the lists of its entries,
	// and every one of its vectors is searched when a list is requested.
	Watchlists []string
}

// Hit is a search result: a subject and its best score over its vectors.
type Hit struct {
	SubjectID string
	Score     float32 // cosine similarity, in [-1, 1]
}

// SearchOptions configure Search. The zero value asks for the best 10
// subjects of the whole index.
type SearchOptions struct {
	// K is how many subjects to return at most; <= 0 means 10. Meant to be
	// small (the server caps it at 100): each worker keeps K candidates
	// and finds a subject among them by a linear scan.
	K int
	// Watchlists restricts the search to subjects on at least one of these
	// lists. A list nobody is on matches nothing (it is not an error: a
	// list empties when its last subject is removed). Empty: everyone.
	Watchlists []string
	// MinScore, when HasMinScore is set, drops hits scoring below it (a hit
	// scoring exactly MinScore is kept). A flag rather than a magic value so
	// that the zero SearchOptions means "no floor" and a floor of 0 is still
	// expressible. The floor also speeds the scan up: fewer rows compete.
	MinScore    float32
	HasMinScore bool
}

// Index is an exact cosine-similarity index over vectors of one dimension.
//
// Layout: every vector is stored as int8 codes in blocks of 16 rows
// (kernel.go) with a scale per row, which the scan streams in order, and,
// unless the index has a VectorSource, L2-normalised in one f32 slab, row i
// at slab[i*dim:(i+1)*dim], for re-scoring and Verify. slots[i] says whose
// row i is and next[i] links a subject's rows. Removing a row moves the
// last row into the hole, so the slabs stay dense and row numbers stay
// small enough for the watchlist bitmaps.
//
// Memory: with a VectorSource a 128-d row costs 128 bytes of codes and 12
// of scale, slot and link; a subject costs 12 bytes of record, its id
// once in a byte arena and one or two uint32 in an open-addressing table
// (ids.go). Nothing per subject or row holds a pointer, so the garbage
// collector has nothing to scan in a ten-million-row index.
//
// Concurrency: all methods are safe for concurrent use. Search and Verify
// hold a read lock for their whole scan, so they never see a half-written
// row and the scan needs no per-row synchronisation. Writers (Add, Remove)
// are serialised by a mutex of their own and do their slow part — growing
// the slabs, which copies them — outside the read-write lock, while
// searches go on; they hold the write lock only for the copy of the rows
// and their bookkeeping. The price: a writer waits for the searches in
// flight to finish (a few milliseconds at a million rows), and searches
// that start meanwhile queue behind it, so a burst of writes adds up to one
// scan time to search latency. Copy-on-write snapshots would remove the
// wait but double the memory held during a write; not worth it at this
// write rate.
type Index struct {
	dim    int
	chunks int // 64-byte chunks in a block of codes: paddedDim(dim)/4
	src    VectorSource

	wmu sync.Mutex // serialises writers; held for the whole of Add and Remove

	mu       sync.RWMutex // guards everything below
	slab     []float32    // f32 rows, for re-scoring and Verify; nil with src
	codes    []byte       // int8 rows in blocks (kernel.go), 64-byte aligned
	scales   []float32    // per row: the codes' scale
	slots    []slot       // per row: whose
	next     []int32      // per row: the subject's next row, -1 after the last
	subjects []subject    // by subject number; first < 0 marks a free number
	ids      idTable      // subject ids and id -> subject number
	free     []int32      // subject numbers to reuse
	lists    map[string]*list
	sets     []listSet         // interned watchlist sets; sets[0] is no list
	setNums  map[string]uint32 // "\x00"-joined sorted names -> index in sets

	scratch sync.Pool // *scratch, per-query buffers
}

// slot is the metadata of one row.
type slot struct {
	subject int32 // index in Index.subjects
}

// subject is one enrolled person: where their id is, their first row
// (the others follow through Index.next) and their watchlists.
type subject struct {
	id    uint32 // offset of the id in the arena (ids.go)
	first int32
	set   uint32 // index in Index.sets
}

// listSet is one combination of watchlists some subjects are on. Subjects
// share them: a million subjects on the same two lists hold one set.
type listSet struct {
	lists []*list
	names []string // sorted; shared with callers of Subject, read-only
}

// list is one watchlist: a bitmap over rows (bit r set when row r belongs
// to a subject on the list) and the number of its subjects. A list stays in
// Index.lists when its last subject leaves (sets may still name it), with
// its bitmap freed; it counts as absent then.
type list struct {
	name     string
	bits     []uint64
	subjects int
}

func (l *list) set(r int32) {
	w := int(r >> 6)
	if w >= len(l.bits) {
		l.bits = append(l.bits, make([]uint64, w+1-len(l.bits))...)
	}
	l.bits[w] |= 1 << (r & 63)
}

func (l *list) clear(r int32) {
	if w := int(r >> 6); w < len(l.bits) {
		l.bits[w] &^= 1 << (r & 63)
	}
}

// scratch holds one query's buffers, recycled through Index.scratch so a
// search allocates little more than its result.
type scratch struct {
	q      []float32 // the normalised probe (Verify)
	v      []float32 // a source's vector, normalised
	inv    []float64 // AddBatch: the entries' inverse norms
	filter []uint64  // the OR of the requested watchlists
	search
}

// NewIndex returns an empty index of dim-dimensional vectors that keeps
// their f32 copies in memory. It panics if dim is not positive: that is a
// programming error, not a data error.
func NewIndex(dim int) *Index { return NewIndexWithSource(dim, nil) }

// NewIndexWithSource returns an empty index that keeps only the int8 codes
// of its vectors in memory and reads the exact vectors from src when it
// re-scores candidates or verifies. src must give, for each indexed
// subject, the vectors added for it (see VectorSource). A nil src keeps the
// f32 vectors in memory, like NewIndex.
func NewIndexWithSource(dim int, src VectorSource) *Index {
	if dim <= 0 {
		panic("matcher: dimension must be positive")
	}
	ix := &Index{
		dim: dim, chunks: paddedDim(dim) / 4, src: src,
		lists:   map[string]*list{},
		sets:    []listSet{{}},
		setNums: map[string]uint32{"": 0},
	}
	ix.ids.init()
	ix.scratch.New = func() any { return &scratch{q: make([]float32, dim), v: make([]float32, dim)} }
	return ix
}

// Dim is the vector dimension.
func (ix *Index) Dim() int { return ix.dim }

// invNorm checks v and returns 1/|v|, computed in float64 so that neither
// tiny nor huge components lose the direction.
func (ix *Index) invNorm(v []float32) (float64, error) {
	if len(v) != ix.dim {
		return 0, fmt.Errorf("%w: got %d, index has %d", ErrDimension, len(v), ix.dim)
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return 0, ErrBadVector
	}
	return 1 / math.Sqrt(ss), nil
}

// normalise writes v/|v| into dst.
func (ix *Index) normalise(dst, v []float32) error {
	inv, err := ix.invNorm(v)
	if err != nil {
		return err
	}
	for i, x := range v {
		dst[i] = float32(float64(x) * inv)
	}
	return nil
}

// Add adds one vector of a subject, creating the subject if it is new. It
// returns ErrEmptyID, or ErrDimension or ErrBadVector (wrapped) for a
// vector it cannot store; nothing is stored then.
func (ix *Index) Add(e Entry) error {
	return ix.AddBatch([]Entry{e})
}

// AddBatch adds several vectors as Add would, one after another, taking the
// locks once: the bulk load at start goes through it. Every entry is
// checked first; if one fails, the error names it and nothing is stored.
// The index keeps nothing of es: the caller may reuse the vectors.
func (ix *Index) AddBatch(es []Entry) error {
	sc := ix.scratch.Get().(*scratch)
	defer ix.scratch.Put(sc)
	sc.inv = slices.Grow(sc.inv[:0], len(es))
	for i, e := range es {
		err := ErrEmptyID
		if e.SubjectID != "" {
			var inv float64
			inv, err = ix.invNorm(e.Vector)
			sc.inv = append(sc.inv, inv)
		}
		if err != nil {
			if len(es) > 1 {
				return fmt.Errorf("entry %d (%q): %w", i, e.SubjectID, err)
			}
			return err
		}
	}
	n := len(es)

	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	// Only writers change these fields and we are the only writer, so
	// reading them without mu is safe; growing them copies, which readers
	// need not wait for.
	var slab []float32
	if ix.src == nil {
		slab = slices.Grow(ix.slab, n*ix.dim)
	}
	slots := slices.Grow(ix.slots, n)
	next := slices.Grow(ix.next, n)
	scales := slices.Grow(ix.scales, n)
	codes := ix.growCodes(len(slots) + n)
	subjects := ix.subjects
	if extra := n - len(ix.free); extra > 0 {
		subjects = slices.Grow(subjects, extra)
	}
	idBytes := 0
	for _, e := range es {
		idBytes += len(e.SubjectID) + binary.MaxVarintLen32
	}
	ids := ix.ids.grow(idBytes, ix.ids.count+n, ix.subjects)

	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.subjects, ix.ids = subjects, ids
	ix.slots, ix.next, ix.scales, ix.codes = slots, next, scales, codes
	ix.slab = slab
	for i, e := range es {
		ix.addLocked(e, sc.inv[i], sc.v)
	}
	return nil
}

// addLocked adds a checked entry, of inverse norm inv, into room made for
// it; tmp has the dimension's length.
func (ix *Index) addLocked(e Entry, inv float64, tmp []float32) {
	sn, ok := ix.ids.lookup(e.SubjectID, ix.subjects)
	if !ok {
		if n := len(ix.free); n > 0 {
			sn = ix.free[n-1]
			ix.free = ix.free[:n-1]
		} else {
			sn = int32(len(ix.subjects))
			ix.subjects = append(ix.subjects, subject{})
		}
		ix.subjects[sn] = subject{id: ix.ids.add(e.SubjectID, sn), first: -1}
	}
	s := &ix.subjects[sn]

	r := int32(len(ix.slots))
	ix.slots = append(ix.slots, slot{subject: sn})
	ix.next = append(ix.next, s.first)
	s.first = r
	row := tmp
	if ix.src == nil {
		ix.slab = ix.slab[:len(ix.slab)+ix.dim]
		row = ix.slab[len(ix.slab)-ix.dim:]
	}
	for i, x := range e.Vector { // as normalise does
		row[i] = float32(float64(x) * inv)
	}
	ix.codes = ix.codes[:max(len(ix.codes), blocksFor(int(r)+1)*ix.chunks*chunkBytes)]
	ix.scales = append(ix.scales, quantiseRow(ix.codes, ix.chunks, int(r), row))

	if len(e.Watchlists) > 0 {
		old := ix.sets[s.set]
		names := slices.Clone(old.names)
		for _, name := range e.Watchlists {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		if len(names) > len(old.names) {
			slices.Sort(names)
			s.set = ix.internSet(names)
			for _, l := range ix.sets[s.set].lists {
				if slices.Contains(old.lists, l) {
					continue
				}
				l.subjects++
				for sr := s.first; sr >= 0; sr = ix.next[sr] {
					l.set(sr)
				}
			}
		}
	}
	for _, l := range ix.sets[s.set].lists {
		l.set(r)
	}
}

// internSet returns the number of the set of the sorted names, making it
// if needed.
func (ix *Index) internSet(names []string) uint32 {
	key := strings.Join(names, "\x00")
	if n, ok := ix.setNums[key]; ok {
		return n
	}
	ls := listSet{names: names, lists: make([]*list, len(names))}
	for i, name := range names {
		l := ix.lists[name]
		if l == nil {
			l = &list{name: name}
			ix.lists[name] = l
		}
		ls.lists[i] = l
	}
	n := uint32(len(ix.sets))
	ix.sets = append(ix.sets, ls)
	ix.setNums[key] = n
	return n
}

// grow makes room for rows more rows of as many new subjects, so that a bulk
// load (the benchmarks' million-row galleries) does not copy the slabs over
// and over as they grow: growing by append's rule copies them some five
// times in all, a long copy also stalls the garbage collector, and the
// slack append leaves costs up to as much memory again.
func (ix *Index) grow(rows, subjects int) {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	var slab []float32
	if ix.src == nil {
		slab = slices.Grow(ix.slab, rows*ix.dim)
	}
	slots := slices.Grow(ix.slots, rows)
	next := slices.Grow(ix.next, rows)
	subs := slices.Grow(ix.subjects, subjects)
	scales := slices.Grow(ix.scales, rows)
	codes := ix.growCodes(len(ix.slots) + rows)
	ids := ix.ids.grow(0, ix.ids.count+subjects, ix.subjects)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.slab, ix.slots, ix.next, ix.subjects, ix.scales = slab, slots, next, subs, scales
	ix.codes = codes[:len(ix.codes)]
	ix.ids = ids
}

// Remove removes every vector of a subject, and the subject from its
// watchlists, and reports how many vectors there were (0 for a subject not
// in the index).
func (ix *Index) Remove(subjectID string) int {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	sn, ok := ix.ids.lookup(subjectID, ix.subjects)
	if !ok {
		return 0
	}
	s := &ix.subjects[sn]
	var buf [16]int32
	rows := buf[:0]
	for r := s.first; r >= 0; r = ix.next[r] {
		rows = append(rows, r)
	}
	// Highest row first: the last row, which fills each hole, is then never
	// one of this subject's rows still to be removed.
	slices.SortFunc(rows, func(a, b int32) int { return cmp.Compare(b, a) })
	for _, r := range rows {
		ix.removeRow(r)
	}
	for _, l := range ix.sets[s.set].lists {
		if l.subjects--; l.subjects == 0 {
			l.bits = nil
		}
	}
	ix.ids.remove(subjectID, sn, ix.subjects)
	*s = subject{first: -1}
	ix.free = append(ix.free, sn)
	if ix.ids.wasteful() {
		ix.ids.compact(ix.subjects)
	}
	return len(rows)
}

// removeRow deletes row r by moving the last row into it. It leaves the
// removed subject's own record to Remove.
func (ix *Index) removeRow(r int32) {
	last := int32(len(ix.slots) - 1)
	for _, l := range ix.sets[ix.subjects[ix.slots[r].subject].set].lists {
		l.clear(r)
	}
	if r != last {
		if ix.src == nil {
			d := ix.dim
			copy(ix.slab[int(r)*d:int(r+1)*d], ix.slab[int(last)*d:])
		}
		copyLane(ix.codes, ix.chunks, int(r), int(last))
		ix.scales[r] = ix.scales[last]
		moved := ix.slots[last]
		ix.slots[r] = moved
		ix.next[r] = ix.next[last]
		m := &ix.subjects[moved.subject]
		if m.first == last {
			m.first = r
		} else {
			p := m.first
			for ix.next[p] != last {
				p = ix.next[p]
			}
			ix.next[p] = r
		}
		for _, l := range ix.sets[m.set].lists {
			l.clear(last)
			l.set(r)
		}
	}
	ix.slots = ix.slots[:last]
	ix.next = ix.next[:last]
	if ix.src == nil {
		ix.slab = ix.slab[:int(last)*ix.dim]
	}
	ix.scales = ix.scales[:last]
	ix.codes = ix.codes[:blocksFor(int(last))*ix.chunks*chunkBytes]
}

// Len is the number of vectors.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.slots)
}

// Subjects is the number of distinct subjects.
func (ix *Index) Subjects() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.ids.count
}

// Subject reports a subject's watchlists (sorted; shared, not to be
// modified) and number of vectors; ok is false when it is not in the index.
func (ix *Index) Subject(subjectID string) (watchlists []string, vectors int, ok bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	sn, ok := ix.ids.lookup(subjectID, ix.subjects)
	if !ok {
		return nil, 0, false
	}
	s := ix.subjects[sn]
	for r := s.first; r >= 0; r = ix.next[r] {
		vectors++
	}
	return ix.sets[s.set].names, vectors, true
}

// WatchlistCounts gives the number of subjects on each watchlist that has
// any.
func (ix *Index) WatchlistCounts() map[string]int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m := make(map[string]int, len(ix.lists))
	for name, l := range ix.lists {
		if l.subjects > 0 {
			m[name] = l.subjects
		}
	}
	return m
}

// Verify scores probe against one subject's vectors (1:1) and returns the
// best score. ok is false, with no error, when the subject is not in the
// index (or, with a VectorSource, no longer in the source); err is set for
// a probe Search would refuse, or when the source fails.
func (ix *Index) Verify(probe []float32, subjectID string) (score float32, ok bool, err error) {
	sc := ix.scratch.Get().(*scratch)
	defer ix.scratch.Put(sc)
	if err := ix.normalise(sc.q, probe); err != nil {
		return 0, false, err
	}
	if ix.src != nil {
		if _, _, ok := ix.Subject(subjectID); !ok {
			return 0, false, nil
		}
		score, ok = -2, false
		err := ix.fetch(sc.v, sc.q, []string{subjectID}, func(_ int, s float32) {
			score, ok = max(score, s), true
		})
		if err != nil || !ok {
			return 0, false, err
		}
		return score, true, nil
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	sn, ok := ix.ids.lookup(subjectID, ix.subjects)
	if !ok {
		return 0, false, nil
	}
	score = -2
	d := ix.dim
	for r := ix.subjects[sn].first; r >= 0; r = ix.next[r] {
		score = max(score, dot(sc.q, ix.slab[int(r)*d:int(r+1)*d]))
	}
	return score, true, nil
}

// Cosine is the cosine similarity of two vectors of equal length, in
// [-1, 1], scored as the index scores: both normalised in float64 (unit),
// then the float32 kernel. It is 0 when the lengths differ or either vector
// is zero or not finite, which callers comparing validated templates never
// pass. Normalising first keeps the products within float32: a dot product
// of raw vectors near FLT_MAX overflows to Inf (clamped to a perfect 1) or
// NaN.
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var bufA, bufB [512]float32 // on the stack for the usual dimensions
	ua, ub := bufA[:0], bufB[:0]
	if len(a) > len(bufA) {
		ua, ub = make([]float32, 0, len(a)), make([]float32, 0, len(a))
	}
	ua, ub = ua[:len(a)], ub[:len(b)]
	if !unit(ua, a) || !unit(ub, b) {
		return 0
	}
	return max(-1, min(1, dot(ua, ub)))
}

// unit writes v/|v| into dst, the norm computed in float64, and reports
// whether v had a norm to divide by (non-zero and finite).
func unit(dst, v []float32) bool {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return false
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		dst[i] = float32(float64(x) * inv)
	}
	return true
}

// filter returns the row bitmap of the requested watchlists: nil for no
// restriction, and ok=false when none of them has anyone. A single list's
// own bitmap is used as it is; several are OR-ed into scratch. The bitmap
// may be shorter than the rows: missing words are zero.
func (ix *Index) filter(names []string, sc *scratch) (filter []uint64, ok bool) {
	if len(names) == 0 {
		return nil, true
	}
	var found []*list
	for _, name := range names {
		if l := ix.lists[name]; l != nil && l.subjects > 0 && !slices.Contains(found, l) {
			found = append(found, l)
		}
	}
	switch len(found) {
	case 0:
		return nil, false
	case 1:
		return found[0].bits, true
	}
	words := (len(ix.slots) + 63) / 64
	if cap(sc.filter) < words {
		sc.filter = make([]uint64, words)
	}
	filter = sc.filter[:words]
	clear(filter)
	for _, l := range found {
		for i, w := range l.bits[:min(len(l.bits), words)] {
			filter[i] |= w
		}
	}
	return filter, true
}

// Reserve makes room for rows more vectors of up to subjects new subjects,
// so that a bulk load does not copy the index over and over as it grows.
func (ix *Index) Reserve(rows, subjects int) { ix.grow(rows, subjects) }

// ScanBytes is the number of index bytes a search of the whole index reads:
// the codes and the row scales.
func (ix *Index) ScanBytes() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.codes) + 4*len(ix.scales)
}

// blocksFor is the number of code blocks holding rows rows.
func blocksFor(rows int) int { return (rows + blockRows - 1) / blockRows }

// growCodes returns the code slab with room for rows rows: ix.codes itself
// when it has it, else a copy in a larger aligned buffer. Called by the
// writer without mu: it only reads ix.codes, as searches do.
func (ix *Index) growCodes(rows int) []byte {
	n := blocksFor(rows) * ix.chunks * chunkBytes
	if n <= cap(ix.codes) {
		return ix.codes[:max(n, len(ix.codes))]
	}
	c := alignedCodes(n, max(n, 2*cap(ix.codes)))
	copy(c, ix.codes)
	return c
}
