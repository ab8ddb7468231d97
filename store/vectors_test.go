package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// TestImportScanTemplates: imported subjects read back as created ones do
// (Get, Each), Scan gives what Each gives of them (ids, watchlists,
// templates) in the same order, and Templates reads the templates of the
// subjects asked for, none of a deleted one.
func TestImportScanTemplates(t *testing.T) {
	s := open(t)
	mustCreate(t, s, subject("A5", "red"))
	var subs []Subject
	for i := range 300 {
		sub := subject(fmt.Sprintf("B%03d", i))
		switch i % 4 {
		case 1:
			sub.Watchlists = []string{"red", "blue", "red"}
		case 2:
			sub.Templates = append(sub.Templates, tpl(i+1000), fingerTpl(t, minutiae.RightThumb))
			sub.Metadata = map[string]string{"k": "v"}
		}
		subs = append(subs, sub)
	}
	if err := s.Import(subs); err != nil {
		t.Fatal(err)
	}
	err := s.Import([]Subject{subject("C1"), subject("B007")})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("import over an existing id: %v", err)
	}
	if _, err := s.Get("C1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed import wrote C1: %v", err)
	}
	if err := s.Import([]Subject{subject("C1"), subject("C1")}); !errors.Is(err, ErrExists) {
		t.Fatalf("import of a repeated id: %v", err)
	}
	got, err := s.Get("B002")
	if err != nil || len(got.Templates) != 3 || got.Metadata["k"] != "v" || got.Created.IsZero() {
		t.Fatalf("get imported: %+v %v", got, err)
	}
	if got, _ := s.Get("B001"); !slices.Equal(got.Watchlists, []string{"blue", "red"}) {
		t.Fatalf("imported watchlists %v", got.Watchlists)
	}
	if ls, _ := s.Watchlists(); len(ls) != 2 {
		t.Fatalf("watchlists after import: %v", ls)
	}

	var each []Subject
	if err := s.Each(func(sub Subject) error { each = append(each, sub); return nil }); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = s.Scan(func(v *IndexSubject) error {
		want := each[i]
		i++
		if string(v.ID) != want.ID || !slices.Equal(v.Watchlists, want.Watchlists) || len(v.Templates) != len(want.Templates) {
			return fmt.Errorf("scan %s %v %d, each %s %v %d", v.ID, v.Watchlists, len(v.Templates), want.ID, want.Watchlists, len(want.Templates))
		}
		for j, raw := range v.Templates {
			var tp templates.Template
			if err := tp.UnmarshalBinary(raw); err != nil || !reflect.DeepEqual(tp, want.Templates[j]) {
				return fmt.Errorf("%s template %d differs: %v", want.ID, j, err)
			}
		}
		return nil
	})
	if err != nil || i != len(each) || i != 301 {
		t.Fatalf("scan: %v after %d of %d", err, i, len(each))
	}

	if _, err := s.Delete("B005"); err != nil {
		t.Fatal(err)
	}
	ids := []string{"B002", "B005", "A5", "nobody", "B299"}
	var n [5]int
	err = s.Templates(ids, func(i int, tp templates.Template) {
		sub, _ := s.Get(ids[i])
		if !reflect.DeepEqual(tp, sub.Templates[n[i]]) {
			t.Errorf("%s template %d differs", ids[i], n[i])
		}
		n[i]++
	})
	if err != nil || n != [5]int{3, 0, 1, 0, 1} {
		t.Fatalf("templates: %v %v", n, err)
	}
}
