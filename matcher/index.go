// Package matcher is the in-memory 1:N index: every template vector of one
// modality in one contiguous slab, searched exactly (every vector scored) on
// all cores. Badger, through package store, is the source of truth; the
// server rebuilds an Index from it at start and keeps the two in step.
package matcher

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"sync"
)

var (
	// ErrDimension: a vector's length differs from the index's.
	ErrDimension = errors.New("matcher: wrong vector dimension")
	// ErrBadVector: a vector is zero or holds NaN or Inf.
	ErrBadVector = errors.New("matcher: vector is zero or not finite")
	// ErrEmptyID: an entry has no subject id.
	ErrEmptyID = errors.New("matcher: empty subject id")
)

// Entry is one template vector of a subject. A subject enrolled with several
// photos has several entries.
type Entry struct {
	SubjectID  string
	Vector     []float32
	Watchlists []string
}

// Hit is a search result: a subject and its best score.
type Hit struct {
	SubjectID string
	Score     float32 // cosine similarity, -1..1
}

// SearchOptions configure Search.
type SearchOptions struct {
	// K is how many subjects to return; <= 0 means 10.
	K int
	// Watchlists restricts the search to subjects on at least one of these
	// lists. A list nobody is on matches nothing. Empty: search everyone.
	Watchlists []string
}

// parallelRows is the index size from which a search is split across cores:
// below it, starting goroutines costs more than scoring.
const parallelRows = 16 << 10

// Index is an exact cosine-similarity index. Vectors are stored L2-normalised
// in one slab, row i at slab[i*dim:(i+1)*dim], so a score is a dot product
// and a scan streams memory in order.
//
// Concurrency: Search holds a read lock for its scan; Add and Remove hold the
// write lock only for an O(dim) copy. A search therefore never sees a
// half-written row, and a writer waits at most one scan (milliseconds at a
// million rows) — a price paid so the scan needs no per-row synchronisation.
type Index struct {
	dim int

	mu       sync.RWMutex
	slab     []float32
	rows     []int32           // row -> subject number
	subjects []string          // subject number -> id ("" when free)
	byID     map[string]int32  // id -> subject number
	rowsOf   map[int32][]int32 // subject number -> its rows
	free     []int32           // reusable subject numbers
	lists    map[string]*listBits
}

// listBits is a watchlist's membership: a bitmap over rows, and a count of
// its subjects.
type listBits struct {
	rows     []uint64
	subjects map[int32]struct{}
}

// NewIndex returns an empty index of dim-dimensional vectors.
func NewIndex(dim int) *Index {
	if dim <= 0 {
		panic("matcher: dimension must be positive")
	}
	return &Index{dim: dim, byID: map[string]int32{}, rowsOf: map[int32][]int32{}, lists: map[string]*listBits{}}
}

// Dim is the vector dimension.
func (ix *Index) Dim() int { return ix.dim }

// normalise returns v / |v|, checking dimension and finiteness.
func (ix *Index) normalise(v []float32, dst []float32) error {
	if len(v) != ix.dim {
		return fmt.Errorf("%w: %d, index has %d", ErrDimension, len(v), ix.dim)
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return ErrBadVector
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		dst[i] = float32(float64(x) * inv)
	}
	return nil
}

// Add adds one vector of a subject.
func (ix *Index) Add(e Entry) error {
	if e.SubjectID == "" {
		return ErrEmptyID
	}
	row := make([]float32, ix.dim)
	if err := ix.normalise(e.Vector, row); err != nil {
		return err
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	sn, ok := ix.byID[e.SubjectID]
	if !ok {
		if n := len(ix.free); n > 0 {
			sn = ix.free[n-1]
			ix.free = ix.free[:n-1]
			ix.subjects[sn] = e.SubjectID
		} else {
			sn = int32(len(ix.subjects))
			ix.subjects = append(ix.subjects, e.SubjectID)
		}
		ix.byID[e.SubjectID] = sn
	}
	r := int32(len(ix.rows))
	ix.slab = append(ix.slab, row...)
	ix.rows = append(ix.rows, sn)
	ix.rowsOf[sn] = append(ix.rowsOf[sn], r)
	for _, name := range e.Watchlists {
		l := ix.lists[name]
		if l == nil {
			l = &listBits{subjects: map[int32]struct{}{}}
			ix.lists[name] = l
		}
		l.set(r)
		l.subjects[sn] = struct{}{}
	}
	return nil
}

func (l *listBits) set(r int32) {
	w := int(r) >> 6
	for len(l.rows) <= w {
		l.rows = append(l.rows, 0)
	}
	l.rows[w] |= 1 << (uint(r) & 63)
}

func (l *listBits) clear(r int32) {
	if w := int(r) >> 6; w < len(l.rows) {
		l.rows[w] &^= 1 << (uint(r) & 63)
	}
}

func (l *listBits) has(r int32) bool {
	w := int(r) >> 6
	return w < len(l.rows) && l.rows[w]&(1<<(uint(r)&63)) != 0
}

// Remove removes every vector of a subject and reports how many there were.
// The last rows move into the holes, so the slab stays dense.
func (ix *Index) Remove(subjectID string) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	sn, ok := ix.byID[subjectID]
	if !ok {
		return 0
	}
	mine := ix.rowsOf[sn]
	n := len(mine)
	// Remove from the highest row down, so moving the last row never moves
	// one of this subject's rows that is still to be removed into a hole
	// already visited.
	for len(mine) > 0 {
		hi := 0
		for i, r := range mine {
			if r > mine[hi] {
				hi = i
			}
		}
		ix.removeRow(mine[hi])
		mine = ix.rowsOf[sn]
	}
	delete(ix.rowsOf, sn)
	delete(ix.byID, subjectID)
	ix.subjects[sn] = ""
	ix.free = append(ix.free, sn)
	for name, l := range ix.lists {
		delete(l.subjects, sn)
		if len(l.subjects) == 0 {
			delete(ix.lists, name)
		}
	}
	return n
}

// removeRow deletes row r by moving the last row into it.
func (ix *Index) removeRow(r int32) {
	last := int32(len(ix.rows) - 1)
	sn := ix.rows[r]
	ix.rowsOf[sn] = without(ix.rowsOf[sn], r)
	if r != last {
		moved := ix.rows[last]
		copy(ix.slab[int(r)*ix.dim:], ix.slab[int(last)*ix.dim:int(last+1)*ix.dim])
		ix.rows[r] = moved
		rs := ix.rowsOf[moved]
		for i, x := range rs {
			if x == last {
				rs[i] = r
			}
		}
		for _, l := range ix.lists {
			if l.has(last) {
				l.set(r)
			} else {
				l.clear(r)
			}
		}
	}
	for _, l := range ix.lists {
		l.clear(last)
	}
	ix.rows = ix.rows[:last]
	ix.slab = ix.slab[:int(last)*ix.dim]
}

func without(s []int32, x int32) []int32 {
	for i, v := range s {
		if v == x {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}

// Len is the number of vectors.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.rows)
}

// Subjects is the number of distinct subjects.
func (ix *Index) Subjects() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byID)
}

// WatchlistCounts gives the number of subjects on each watchlist.
func (ix *Index) WatchlistCounts() map[string]int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m := make(map[string]int, len(ix.lists))
	for name, l := range ix.lists {
		m[name] = len(l.subjects)
	}
	return m
}

// Verify scores probe against a subject's vectors (1:1) and returns the best
// score. ok is false when the subject is not in the index.
func (ix *Index) Verify(probe []float32, subjectID string) (score float32, ok bool, err error) {
	q := make([]float32, ix.dim)
	if err := ix.normalise(probe, q); err != nil {
		return 0, false, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	sn, ok := ix.byID[subjectID]
	if !ok {
		return 0, false, nil
	}
	score = -2
	for _, r := range ix.rowsOf[sn] {
		score = max(score, dot(q, ix.slab[int(r)*ix.dim:int(r+1)*ix.dim]))
	}
	return score, true, nil
}

// Cosine is the cosine similarity of two vectors of equal length; 0 when
// either is zero.
func Cosine(a, b []float32) float32 {
	if len(a) != len(b) {
		return 0
	}
	var na, nb float64
	for i := range a {
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(float64(dot(a, b)) / math.Sqrt(na*nb))
}

// Search returns the K subjects most similar to probe, best first (ties by
// subject id), each with its best score over its vectors.
func (ix *Index) Search(probe []float32, opt SearchOptions) ([]Hit, error) {
	k := opt.K
	if k <= 0 {
		k = 10
	}
	q := make([]float32, ix.dim)
	if err := ix.normalise(probe, q); err != nil {
		return nil, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()

	var filter []uint64
	if len(opt.Watchlists) > 0 {
		filter = make([]uint64, (len(ix.rows)+63)/64)
		for _, name := range opt.Watchlists {
			if l := ix.lists[name]; l != nil {
				for i, w := range l.rows {
					if i < len(filter) {
						filter[i] |= w
					}
				}
			}
		}
	}

	n := len(ix.rows)
	workers := 1
	if n >= parallelRows {
		workers = min(runtime.GOMAXPROCS(0), n/(parallelRows/4))
	}
	tops := make([]*topK, workers)
	if workers == 1 {
		tops[0] = ix.scan(q, 0, n, k, filter)
	} else {
		var wg sync.WaitGroup
		chunk := (n + workers - 1) / workers
		chunk = (chunk + 63) &^ 63 // whole filter words per worker
		for w := range workers {
			lo, hi := w*chunk, min((w+1)*chunk, n)
			if lo >= hi {
				tops[w] = newTopK(k)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tops[w] = ix.scan(q, lo, hi, k, filter)
			}()
		}
		wg.Wait()
	}
	merged := tops[0]
	for _, t := range tops[1:] {
		for _, h := range t.h {
			merged.push(h.score, h.subject)
		}
	}
	hits := make([]Hit, len(merged.h))
	for i, h := range merged.h {
		hits[i] = Hit{SubjectID: ix.subjects[h.subject], Score: h.score}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].SubjectID < hits[j].SubjectID
	})
	return hits, nil
}

// scan scores rows lo..hi and keeps the best K subjects.
func (ix *Index) scan(q []float32, lo, hi, k int, filter []uint64) *topK {
	t := newTopK(k)
	d := ix.dim
	if filter == nil {
		for r := lo; r < hi; r++ {
			s := dot(q, ix.slab[r*d:(r+1)*d])
			if s > t.floor() {
				t.push(s, ix.rows[r])
			}
		}
		return t
	}
	for w := lo >> 6; w<<6 < hi; w++ {
		word := filter[w]
		for word != 0 {
			r := w<<6 + bits.TrailingZeros64(word)
			word &= word - 1
			if r < lo || r >= hi {
				continue
			}
			s := dot(q, ix.slab[r*d:(r+1)*d])
			if s > t.floor() {
				t.push(s, ix.rows[r])
			}
		}
	}
	return t
}
