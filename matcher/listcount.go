package matcher

import (
	"math/bits"
	"slices"
)

// What a search restricted to watchlists covers: an identification reports
// the templates it searched, and a search on one small list must not claim
// the whole gallery's (issue 18). Names are the engine's to check; here a
// list nobody is on counts nothing.

// Searched is the number of vectors a search with these watchlists scans:
// every vector for none, else those of the subjects on any of them.
func (ix *Index) Searched(watchlists []string) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if len(watchlists) == 0 {
		return len(ix.slots)
	}
	var found []*list
	for _, name := range watchlists {
		if l := ix.lists[name]; l != nil && l.subjects > 0 && !slices.Contains(found, l) {
			found = append(found, l)
		}
	}
	words := (len(ix.slots) + 63) / 64
	n := 0
	for w := range words {
		var or uint64
		for _, l := range found {
			if w < len(l.bits) {
				or |= l.bits[w]
			}
		}
		n += bits.OnesCount64(or)
	}
	return n
}

// Searched is the number of templates a search with these watchlists
// compares: every one for none, else those of the subjects on any of them.
func (x *FingerIndex) Searched(watchlists []string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(watchlists) == 0 {
		return len(x.entries)
	}
	var found []*fingerList
	for _, name := range watchlists {
		if l := x.lists[name]; l != nil && l.subjects > 0 && !slices.Contains(found, l) {
			found = append(found, l)
		}
	}
	n := 0
	for s := range x.subjects {
		for _, l := range found {
			if s/64 < len(l.bits) && l.bits[s/64]&(1<<(s%64)) != 0 {
				n += int(x.count[s])
				break
			}
		}
	}
	return n
}

// WatchlistCounts gives the number of subjects on each watchlist that has
// any.
func (x *FingerIndex) WatchlistCounts() map[string]int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	m := make(map[string]int, len(x.lists))
	for name, l := range x.lists {
		if l.subjects > 0 {
			m[name] = l.subjects
		}
	}
	return m
}
