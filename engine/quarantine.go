package engine

// Quarantine: stored subjects whose records cannot be indexed.
//
// A template that does not decode, or decodes to values no extractor makes
// (a zero or non-finite vector, an absurd norm, implausible minutiae), can
// reach the store only from a damaged disk, an older version that did not
// validate, or a backup of either. Loading never fails the whole index on
// such a subject: the subject is left out of every index (none of its
// templates is searched, so a search never reads its bad bytes through the
// vector source), logged, counted and listed (Quarantined), and an
// administrator removes it while the server runs (RemoveQuarantined) and
// re-enrols the person. The list is rebuilt at every load, from the store.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// Quarantined is a stored subject left out of the indexes, and why.
type Quarantined struct {
	SubjectID string
	Reason    string
	Since     time.Time
}

type quarantine struct {
	mu sync.Mutex
	by map[string]Quarantined
}

// quarantine records a subject load could not index and says so in the
// log. The caller leaves it out of the indexes.
func (s *Engine) quarantine(id string, reason error) {
	s.quarantined.mu.Lock()
	if s.quarantined.by == nil {
		s.quarantined.by = map[string]Quarantined{}
	}
	s.quarantined.by[id] = Quarantined{SubjectID: id, Reason: reason.Error(), Since: time.Now()}
	s.quarantined.mu.Unlock()
	s.log.Error().Str("subject", id).Err(reason).
		Str("hint", "the subject is stored but not searched; list it with watchlist quarantine list, remove it with watchlist quarantine remove, and re-enrol it").
		Msg("subject quarantined")
}

// Quarantined lists the quarantined subjects in id order.
func (s *Engine) Quarantined() []Quarantined {
	s.quarantined.mu.Lock()
	defer s.quarantined.mu.Unlock()
	out := make([]Quarantined, 0, len(s.quarantined.by))
	for _, q := range s.quarantined.by {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b Quarantined) int { return strings.Compare(a.SubjectID, b.SubjectID) })
	return out
}

// QuarantinedCount is how many subjects are quarantined (the metric).
func (s *Engine) QuarantinedCount() int {
	s.quarantined.mu.Lock()
	defer s.quarantined.mu.Unlock()
	return len(s.quarantined.by)
}

// RemoveQuarantined deletes a quarantined subject from the store, without
// decoding its templates, and from the list. A subject that is not
// quarantined is ErrNotFound: Delete removes healthy ones.
func (s *Engine) RemoveQuarantined(ctx context.Context, id string) (store.Subject, error) {
	if id == "" {
		return store.Subject{}, invalid("subject_id is required")
	}
	if err := ctx.Err(); err != nil {
		return store.Subject{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	s.quarantined.mu.Lock()
	_, ok := s.quarantined.by[id]
	s.quarantined.mu.Unlock()
	if !ok {
		return store.Subject{}, fmt.Errorf("%w: subject %q is not quarantined", ErrNotFound, id)
	}
	sub, err := s.store.DeleteDamaged(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Subject{}, kindOf("remove quarantined", err)
	}
	s.quarantined.mu.Lock()
	delete(s.quarantined.by, id)
	s.quarantined.mu.Unlock()
	s.log.Warn().Str("subject", id).Msg("quarantined subject removed")
	if err != nil {
		sub = store.Subject{ID: id} // gone already: the list was all that held it
	}
	return sub, nil
}

// loadable decodes and checks a stored template for load. A template of
// an algorithm or version this build does not compare is stale (kept,
// not searched, counted); one that does not decode or holds values no
// extractor makes quarantines its subject (bad is set).
func loadable(raw []byte) (t templates.Template, stale bool, bad error) {
	if err := t.UnmarshalBinary(raw); err != nil {
		return t, false, err
	}
	if err := t.Comparable(); err != nil {
		if errors.Is(err, templates.ErrInvalidTemplate) {
			return t, false, err
		}
		return t, true, nil
	}
	return t, false, nil
}
