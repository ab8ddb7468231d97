package matcher

import "bytes"

// candidate is a subject and the best score seen for it so far.
type candidate struct {
	score   float32
	subject int32
}

// topK keeps the K best distinct subjects seen: a min-heap whose root is
// the worst kept. It dedupes as it goes, so a subject with many vectors
// close to the probe takes one place, not K: a subject seen again with a
// better score is updated in place. K is small (the server caps it at 100)
// and offers are rare once the heap is full (only rows reaching the floor
// are offered), so finding the subject by a linear scan beats a map.
//
// Why this is exact: a subject leaves the heap only as its worst member,
// and the floor never falls afterwards, so a later row of the subject gets
// back in only with a higher score than the one it left with.
type topK struct {
	k     int
	min   float32     // SearchOptions.MinScore, or -Inf
	floor float32     // score a row must reach to be offered: min, or the root's once full
	h     []candidate // the heap
	// subjects breaks ties by subject id, so which of several equal scores
	// takes the K-th place does not depend on row order.
	subjects *Index
}

func (t *topK) reset(k int, min float32, subjects *Index) {
	t.k, t.min, t.floor, t.subjects = k, min, min, subjects
	if cap(t.h) < k {
		t.h = make([]candidate, 0, k)
	}
	t.h = t.h[:0]
}

// worse reports whether a ranks below b: a lower score, or an equal score
// and a later subject id.
func (t *topK) worse(a, b candidate) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return bytes.Compare(t.subjects.idOf(a.subject), t.subjects.idOf(b.subject)) > 0
}

// offer considers a score of a subject. Callers skip scores below t.floor.
func (t *topK) offer(score float32, subject int32) {
	c := candidate{score, subject}
	switch i := t.find(subject); {
	case i >= 0:
		if score <= t.h[i].score {
			return
		}
		t.h[i].score = score
		t.down(i)
	case len(t.h) < t.k:
		t.h = append(t.h, c)
		t.up(len(t.h) - 1)
	case t.worse(t.h[0], c):
		t.h[0] = c
		t.down(0)
	default:
		return
	}
	if len(t.h) == t.k {
		t.floor = max(t.min, t.h[0].score)
	}
}

func (t *topK) find(subject int32) int {
	for i := range t.h {
		if t.h[i].subject == subject {
			return i
		}
	}
	return -1
}

func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.worse(t.h[i], t.h[p]) {
			return
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

func (t *topK) down(i int) {
	n := len(t.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.worse(t.h[r], t.h[l]) {
			m = r
		}
		if !t.worse(t.h[m], t.h[i]) {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}
