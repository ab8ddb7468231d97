package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// Ids chosen so that one is a prefix of another followed by bytes that sort
// below '/', which is what the template key layout has to get right.
var trickyIDs = []string{"A1", "A1-2", "A1.3", "A1:4", "A10", "A1@5", "A1_6", "B", "a", "a-", "a.", "z"}

func TestList(t *testing.T) {
	s := open(t)
	var all, three []string
	for i := range 23 {
		id := fmt.Sprintf("s%03d", i)
		lists := []string{"all"}
		if i%3 == 0 {
			lists = append(lists, "three")
			three = append(three, id)
		}
		mustCreate(t, s, subject(id, lists...))
		all = append(all, id)
	}
	for _, id := range trickyIDs {
		mustCreate(t, s, subject(id, "all", "tricky"))
		all = append(all, id)
	}
	slices.Sort(all)

	pages := func(t *testing.T, opt ListOptions) ([]string, int) {
		t.Helper()
		var got []string
		n := 0
		for {
			subs, next, err := s.List(opt)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if opt.PageSize > 0 && len(subs) > opt.PageSize {
				t.Fatalf("page of %d, size %d", len(subs), opt.PageSize)
			}
			for _, sub := range subs {
				if (len(sub.Templates) > 0) != opt.WithTemplates {
					t.Fatalf("%s: %d templates, WithTemplates %v", sub.ID, len(sub.Templates), opt.WithTemplates)
				}
				if sub.Name != "Name of "+sub.ID || sub.Created.IsZero() {
					t.Fatalf("subject %+v", sub)
				}
			}
			got = append(got, ids(subs)...)
			if next == "" {
				return got, n
			}
			opt.PageToken = next
		}
	}
	for _, tc := range []struct {
		name      string
		opt       ListOptions
		want      []string
		wantPages int
	}{
		{"default page size", ListOptions{}, all, 1},
		{"pages of 5", ListOptions{PageSize: 5}, all, 7},
		{"pages of 1", ListOptions{PageSize: 1}, all, len(all)},
		{"exact fit", ListOptions{PageSize: len(all)}, all, 1},
		{"over max clamps", ListOptions{PageSize: 5000}, all, 1},
		{"with templates", ListOptions{PageSize: 4, WithTemplates: true}, all, 9},
		{"watchlist", ListOptions{Watchlist: "three", PageSize: 3}, three, 3},
		{"tricky watchlist with templates", ListOptions{Watchlist: "tricky", PageSize: 5, WithTemplates: true}, slices.Sorted(slices.Values(trickyIDs)), 3},
		{"all watchlist", ListOptions{Watchlist: "all", PageSize: 10}, all, 4},
		{"unknown watchlist", ListOptions{Watchlist: "nobody"}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := pages(t, tc.opt)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
			if n != tc.wantPages {
				t.Errorf("%d pages, want %d", n, tc.wantPages)
			}
		})
	}

	_, tok, err := s.List(ListOptions{PageSize: 2})
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	_, wtok, err := s.List(ListOptions{Watchlist: "all", PageSize: 2})
	if err != nil || wtok == "" {
		t.Fatal(wtok, err)
	}
	for _, tc := range []struct {
		name string
		opt  ListOptions
		want error
	}{
		{"garbage token", ListOptions{PageToken: "garbage!"}, ErrInvalidPageToken},
		{"truncated token", ListOptions{PageToken: tok[:1]}, ErrInvalidPageToken},
		{"bad id in token", ListOptions{PageToken: encodePageToken("", "a/b")}, ErrInvalidPageToken},
		{"token of another listing", ListOptions{PageToken: wtok}, ErrInvalidPageToken},
		{"token of all subjects for a watchlist", ListOptions{Watchlist: "all", PageToken: tok}, ErrInvalidPageToken},
		{"negative page size", ListOptions{PageSize: -1}, ErrInvalid},
		{"bad watchlist", ListOptions{Watchlist: "no spaces"}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := s.List(tc.opt); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}

	// A token stays valid when the subject it ends at is deleted.
	page, tok, err := s.List(ListOptions{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(page[2].ID); err != nil {
		t.Fatal(err)
	}
	rest, _, err := s.List(ListOptions{PageSize: 3, PageToken: tok})
	if err != nil || rest[0].ID != all[3] {
		t.Fatalf("after deleting the last of the page: %v %v", ids(rest), err)
	}
}

func TestWatchlists(t *testing.T) {
	s := open(t)
	want := func(step string, w ...WatchlistInfo) {
		t.Helper()
		got, err := s.Watchlists()
		if err != nil {
			t.Fatal(err)
		}
		if len(w) == 0 {
			w = []WatchlistInfo{}
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: watchlists %v, want %v", step, got, w)
		}
	}
	want("empty")
	mustCreate(t, s, subject("a", "wanted", "vip"))
	mustCreate(t, s, subject("b", "wanted"))
	mustCreate(t, s, subject("c"))
	// "w" and "w.x" and "w-x": names that are prefixes of each other.
	mustCreate(t, s, subject("d", "w", "w.x", "w-x", "wanted", "wanted"))
	want("after create", WatchlistInfo{"vip", 1}, WatchlistInfo{"w", 1}, WatchlistInfo{"w-x", 1}, WatchlistInfo{"w.x", 1}, WatchlistInfo{"wanted", 3})
	if _, err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete("d"); err != nil {
		t.Fatal(err)
	}
	want("after delete", WatchlistInfo{"wanted", 1})
	if _, err := s.Delete("b"); err != nil {
		t.Fatal(err)
	}
	want("after deleting all members")
}
