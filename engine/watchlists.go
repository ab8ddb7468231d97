package engine

// Which watchlists exist. A request naming a watchlist restricts its
// search or listing to that list's subjects; a name nobody is on (a typo,
// "interpl" for "interpol") would search nothing and answer "no hit", which
// at a border reads as "not wanted". So the engine fails closed: a request
// naming a list the gallery does not have is ErrNotFound, naming the lists
// that exist (issue 18). A list exists while a subject is on it: the store
// keeps no list without members. A list whose members hold no template the
// probe is compared with is a list that exists; searching it is no error.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bordermatch/bordermatch/store"
)

// UnknownWatchlistsError is a request's naming of watchlists the gallery
// does not have. It is of kind ErrNotFound.
type UnknownWatchlistsError struct {
	// Unknown are the names given that no subject is on, in the request's
	// order; Known the watchlists that exist, sorted.
	Unknown []string
	Known   []string
}

// maxNamedLists bounds the existing lists an error names: a message, not a
// listing (ListWatchlists is).
const maxNamedLists = 20

func (e *UnknownWatchlistsError) Error() string {
	what := "no watchlist"
	if len(e.Unknown) > 1 {
		what = "no watchlists"
	}
	var known string
	switch {
	case len(e.Known) == 0:
		known = "the gallery has no watchlists"
	case len(e.Known) > maxNamedLists:
		known = fmt.Sprintf("the watchlists are %s and %d more", quoteAll(e.Known[:maxNamedLists]), len(e.Known)-maxNamedLists)
	default:
		known = "the watchlists are " + quoteAll(e.Known)
	}
	return fmt.Sprintf("%s: %s %s; %s", ErrNotFound, what, quoteAll(e.Unknown), known)
}

// Is makes the error of kind ErrNotFound.
func (e *UnknownWatchlistsError) Is(target error) bool { return target == ErrNotFound }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// CheckWatchlists refuses watchlists no subject is on, with an
// *UnknownWatchlistsError; none named is every subject and no error.
// Identify and List check their own; the gate calls check before they
// spend seconds watching a camera.
func (s *Engine) CheckWatchlists(lists []string) error {
	unknown, err := s.UnknownWatchlists(lists)
	if err != nil || len(unknown) == 0 {
		return err
	}
	return &UnknownWatchlistsError{Unknown: unknown, Known: s.KnownWatchlists()}
}

// UnknownWatchlists returns the names among lists that no subject of this
// gallery is on, each once, in order. A cluster partition reports them
// rather than refusing: a list may be another partition's.
func (s *Engine) UnknownWatchlists(lists []string) ([]string, error) {
	if len(lists) == 0 {
		return nil, nil
	}
	indexed := s.indexedWatchlists()
	var unknown []string
	for _, l := range lists {
		if indexed[l] || slices.Contains(unknown, l) {
			continue
		}
		// Not in the indexes, the common case of a typo; a list whose
		// members have no searchable template (of an algorithm no longer
		// indexed) is still a list: the store has the last word. One seek.
		if err := store.ValidWatchlist(l); err != nil {
			return nil, kindOf("watchlists", err)
		}
		subs, _, err := s.store.List(store.ListOptions{Watchlist: l, PageSize: 1})
		if err != nil {
			return nil, kindOf("watchlists", err)
		}
		if len(subs) == 0 {
			unknown = append(unknown, l)
		}
	}
	return unknown, nil
}

// KnownWatchlists names the watchlists of the indexed subjects, sorted:
// those an error about an unknown one offers. It reads the indexes, not
// the store, so that a caller repeating a typo does not make every call
// scan the gallery's memberships.
func (s *Engine) KnownWatchlists() []string {
	return slices.Sorted(maps.Keys(s.indexedWatchlists()))
}

// indexedWatchlists is the set of watchlists some indexed subject is on.
func (s *Engine) indexedWatchlists() map[string]bool {
	known := map[string]bool{}
	for _, fa := range s.algos.all() {
		for name := range fa.index.WatchlistCounts() {
			known[name] = true
		}
	}
	for name := range s.fingers.WatchlistCounts() {
		known[name] = true
	}
	return known
}

// searchedTemplates counts the templates a search of lists covers: each
// probe face's algorithm's on the lists, and the finger index's when the
// probe has fingers.
func (s *Engine) searchedTemplates(faces []faceProbe, fingers bool, lists []string) int64 {
	var n int64
	for _, fp := range faces {
		n += int64(fp.fa.index.Searched(lists))
	}
	if fingers {
		n += int64(s.fingers.Searched(lists))
	}
	return n
}
