package matcher

import (
	"fmt"
	"time"
)

// VectorSource gives the exact vectors of an index's subjects, so that the
// index can keep only their int8 codes in memory (NewIndexWithSource): 140
// bytes a 128-d row instead of 652. The index reads it only for the few
// subjects a search re-scores and for Verify.
//
// The server's source is the Badger store, the source of truth: a subject
// deleted from the store and not yet from the index has no vectors there,
// so it drops out of the results rather than coming back as a ghost.
type VectorSource interface {
	// Vectors calls fn(i, v) with every vector of subject ids[i], for each
	// i, the vectors as they were given to Add (the index normalises them
	// itself). v need only be valid during the call. A subject the source
	// no longer has gets no call. It is called with the index's read lock
	// held, so it must not call the index.
	Vectors(ids []string, fn func(i int, v []float32)) error
}

// A search re-scores its probes on several goroutines, so a VectorSource
// must be safe for concurrent use.

// fetch scores the normalised probe q against the vectors src gives for
// ids, calling fn(i, score) for each of ids[i]'s vectors. The vector is
// normalised into buf (ix.dim long) exactly as Add normalises it into the
// in-memory slab, so the score is the same float32 an index without a
// source computes.
func (ix *Index) fetch(buf, q []float32, ids []string, fn func(i int, score float32)) error {
	var bad error
	err := ix.src.Vectors(ids, func(i int, v []float32) {
		if err := ix.normalise(buf, v); err != nil {
			if bad == nil {
				bad = fmt.Errorf("matcher: vector source: subject %q: %w", ids[i], err)
			}
			return
		}
		fn(i, dot(q, buf))
	})
	if err != nil {
		return fmt.Errorf("matcher: vector source: %w", err)
	}
	return bad
}

// sourceRetries is how many times a search is run again when its source
// lacked some re-scored subjects: with the pauses doubling from 100µs, up
// to some 25ms in all, ample for the server's removal to follow the store's.
const sourceRetries = 8

// searchSourced is search, run again when the source lacked a re-scored
// subject. Such a ghost — deleted from the store, not yet from the index —
// is dropped from the hits, but its lower bound may have set the K-th best
// and kept others off the shortlist, so the hits could be too few or miss
// someone. The server removes it from the index right after the store, so
// the search releases the lock, lets that writer in, and runs again; after
// sourceRetries it returns what it found (never the ghost).
func (ix *Index) searchSourced(sc *scratch, probes [][]float32, opt SearchOptions, out [][]Hit) error {
	for attempt := 0; ; attempt++ {
		sc.missing = 0
		err := ix.search(sc, probes, opt, out)
		if err != nil || sc.missing == 0 || attempt == sourceRetries {
			return err
		}
		time.Sleep(time.Duration(100<<attempt) * time.Microsecond)
	}
}
