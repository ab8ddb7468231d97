package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// ListOptions selects a page of List.
type ListOptions struct {
	// Watchlist, if set, lists only that watchlist's members.
	Watchlist string
	// PageSize is the most subjects returned: 0 means DefaultPageSize,
	// larger than MaxPageSize means MaxPageSize; negative is invalid.
	PageSize int
	// PageToken continues a listing where the previous page ended; it must
	// come from a List call with the same Watchlist.
	PageToken string
	// WithTemplates fills Subject.Templates; by default List returns the
	// metadata only.
	WithTemplates bool
}

// WatchlistInfo is one watchlist and its number of members.
type WatchlistInfo struct {
	Name     string
	Subjects int
}

// List returns a page of subjects in id order and the token of the next page
// ("" after the last page). A malformed token, or one from a listing of
// another watchlist, is ErrInvalidPageToken.
func (s *Store) List(opt ListOptions) ([]Subject, string, error) {
	size := opt.PageSize
	switch {
	case size < 0:
		return nil, "", invalid("page size %d is negative", size)
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	if opt.Watchlist != "" {
		if err := ValidWatchlist(opt.Watchlist); err != nil {
			return nil, "", err
		}
	}
	var after string
	if opt.PageToken != "" {
		list, id, err := decodePageToken(opt.PageToken)
		if err != nil {
			return nil, "", err
		}
		if list != opt.Watchlist {
			return nil, "", fmt.Errorf("%w: it continues a listing of another watchlist", ErrInvalidPageToken)
		}
		after = id
	}

	var out []Subject
	more := false
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte(subjectPrefix)
		if opt.Watchlist != "" {
			prefix = watchlistKeyPrefix(opt.Watchlist)
		}
		it := txn.NewIterator(iterOpts(prefix))
		defer it.Close()
		if after == "" {
			it.Rewind()
		} else {
			// The first key after prefix+after: append the lowest byte.
			it.Seek(append(append(slices.Clip(prefix), after...), 0))
		}
		for ; it.Valid(); it.Next() {
			if len(out) == size {
				more = true
				break
			}
			item := it.Item()
			id := string(item.Key()[len(prefix):])
			var sub Subject
			if opt.Watchlist == "" {
				sub = Subject{ID: id}
				var n int
				if err := item.Value(func(v []byte) error {
					var err error
					n, err = decodeRecord(v, &sub, nil)
					return err
				}); err != nil {
					return fmt.Errorf("store: subject %q: %w", id, err)
				}
				if opt.WithTemplates {
					var err error
					if sub.Templates, err = loadTemplates(txn, id, n); err != nil {
						return err
					}
				}
			} else {
				var err error
				sub, err = getSubject(txn, id, opt.WithTemplates)
				if errors.Is(err, ErrNotFound) {
					// Cannot happen with transactional writes; don't let
					// a stray index entry break listing.
					s.log.Warn().Str("watchlist", opt.Watchlist).Str("subject", id).
						Msg("watchlist entry without a subject record skipped")
					continue
				}
				if err != nil {
					return err
				}
			}
			out = append(out, sub)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = encodePageToken(opt.Watchlist, out[len(out)-1].ID)
	}
	return out, next, nil
}

// Page tokens: URL-safe base64 of
//
//	version 1  1 byte
//	len(list)  1 byte, then the watchlist name ("" for all subjects)
//	last id    the rest: the id of the last subject of the previous page
const pageTokenVersion = 1

func encodePageToken(list, lastID string) string {
	b := make([]byte, 0, 2+len(list)+len(lastID))
	b = append(b, pageTokenVersion, byte(len(list)))
	b = append(b, list...)
	b = append(b, lastID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok string) (list, lastID string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %s", ErrInvalidPageToken, why)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return bad("not base64url")
	}
	if len(b) < 2 || b[0] != pageTokenVersion {
		return bad("unknown format")
	}
	n := int(b[1])
	if len(b) < 2+n {
		return bad("truncated")
	}
	list, lastID = string(b[2:2+n]), string(b[2+n:])
	if list != "" && ValidWatchlist(list) != nil {
		return bad("bad watchlist name")
	}
	if validID(lastID) != nil {
		return bad("bad subject id")
	}
	return list, lastID, nil
}

// Watchlists returns every watchlist with at least one member, and its
// number of members, sorted by name.
func (s *Store) Watchlists() ([]WatchlistInfo, error) {
	counts := map[string]int{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iterOpts([]byte(watchlistPrefix)))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(watchlistPrefix):]
			i := bytes.IndexByte(k, '/')
			if i <= 0 {
				return fmt.Errorf("store: malformed watchlist key %q", it.Item().Key())
			}
			counts[string(k[:i])]++ // no allocation once the name is in the map
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]WatchlistInfo, 0, len(counts))
	for name, n := range counts {
		out = append(out, WatchlistInfo{Name: name, Subjects: n})
	}
	slices.SortFunc(out, func(a, b WatchlistInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// PageToken is the page token that continues a listing of list (empty: all
// subjects) after the subject lastID: a partitioned gallery's coordinator
// merges the pages of its partitions and continues them all from one id.
func PageToken(list, lastID string) string { return encodePageToken(list, lastID) }
