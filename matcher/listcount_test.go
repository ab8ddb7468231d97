package matcher

import (
	"testing"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// TestSearchedCountsLists: what a search restricted to watchlists covers
// is the templates of the subjects on any of them, each once; no list is
// the whole index; a list nobody is on covers nothing.
func TestSearchedCountsLists(t *testing.T) {
	ix := NewIndex(4)
	add := func(id string, lists ...string) {
		if err := ix.Add(Entry{SubjectID: id, Vector: []float32{1, 2, 3, float32(len(id))}, Watchlists: lists}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "red")
	add("a", "red") // a second photo of a
	add("b", "red", "blue")
	add("c", "blue")
	add("d")
	fs, _ := fingerGallery(t, 4)
	x := NewFingerIndex()
	for i, id := range []string{"a", "b", "c", "d"} {
		for range i + 1 { // a has one finger, d four
			if err := x.Add(id, minutiae.PositionUnknown, fs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	x.SetWatchlists("a", []string{"red"})
	x.SetWatchlists("b", []string{"red", "blue"})
	x.SetWatchlists("c", []string{"blue"})
	for _, tc := range []struct {
		lists         []string
		faces, finger int
	}{
		{nil, 5, 10},
		{[]string{"red"}, 3, 3},
		{[]string{"blue"}, 2, 5},
		{[]string{"red", "blue", "red"}, 4, 6},
		{[]string{"nobody"}, 0, 0},
	} {
		if got := ix.Searched(tc.lists); got != tc.faces {
			t.Errorf("faces %v: %d searched, want %d", tc.lists, got, tc.faces)
		}
		if got := x.Searched(tc.lists); got != tc.finger {
			t.Errorf("fingers %v: %d searched, want %d", tc.lists, got, tc.finger)
		}
	}
	if got := x.WatchlistCounts(); len(got) != 2 || got["red"] != 2 || got["blue"] != 2 {
		t.Errorf("finger watchlists %v", got)
	}
	ix.Remove("b")
	x.Remove("b")
	if got, want := ix.Searched([]string{"blue"}), 1; got != want {
		t.Errorf("faces blue after b left: %d, want %d", got, want)
	}
	if got, want := x.Searched([]string{"blue"}), 3; got != want {
		t.Errorf("fingers blue after b left: %d, want %d", got, want)
	}
}
