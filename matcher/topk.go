package matcher

import (
	"container/heap"
	"math"
)

type scored struct {
	score   float32
	subject int32
}

// topK keeps the K best distinct subjects seen: a min-heap on score whose
// root is the score to beat. A subject that appears again with a better
// score (another of its templates) is updated in place; K is small (at most
// a hundred), so finding it by a linear scan is cheaper than a map, and it
// only happens for rows that beat the floor.
type topK struct {
	k int
	h []scored
}

func newTopK(k int) *topK { return &topK{k: k, h: make([]scored, 0, k)} }

func (t *topK) Len() int           { return len(t.h) }
func (t *topK) Less(i, j int) bool { return t.h[i].score < t.h[j].score }
func (t *topK) Swap(i, j int)      { t.h[i], t.h[j] = t.h[j], t.h[i] }
func (t *topK) Push(x any)         { t.h = append(t.h, x.(scored)) }
func (t *topK) Pop() any           { x := t.h[len(t.h)-1]; t.h = t.h[:len(t.h)-1]; return x }

// floor is the score a new subject must beat to enter.
func (t *topK) floor() float32 {
	if len(t.h) < t.k {
		return float32(math.Inf(-1))
	}
	return t.h[0].score
}

func (t *topK) push(score float32, subject int32) {
	for i := range t.h {
		if t.h[i].subject == subject {
			if score > t.h[i].score {
				t.h[i].score = score
				heap.Fix(t, i)
			}
			return
		}
	}
	if len(t.h) < t.k {
		heap.Push(t, scored{score, subject})
		return
	}
	if score > t.h[0].score {
		t.h[0] = scored{score, subject}
		heap.Fix(t, 0)
	}
}
