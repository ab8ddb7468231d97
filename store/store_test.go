package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

func openAt(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func open(t testing.TB) *Store { return openAt(t, t.TempDir()) }

// tpl is a deterministic 128-d face template.
func tpl(seed int) templates.Template {
	v := make([]float32, 128)
	for i := range v {
		v[i] = float32((seed*131+i*7)%97)/97 - 0.5
	}
	return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
}

// fingerTpl is a finger template of real minutiae (SecuGen's, of FVC2002
// DB1_B 101_1) at a finger position, as the store returns it (angles
// rounded to the record's unit).
func fingerTpl(t testing.TB, pos minutiae.Position) templates.Template {
	t.Helper()
	b, err := os.ReadFile("../templates/minutiae/testdata/fvc2002/db1_b/101_1.iso")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := minutiae.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	v := rec.Views[0]
	v.Position = pos
	enc, err := templates.NewFingerTemplate(v).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out templates.Template
	if err := out.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	return out
}

func subject(id string, lists ...string) Subject {
	return Subject{ID: id, Name: "Name of " + id, Watchlists: lists, Templates: []templates.Template{tpl(len(id))}}
}

func mustCreate(t testing.TB, s *Store, sub Subject) Subject {
	t.Helper()
	got, err := s.Create(sub)
	if err != nil {
		t.Fatalf("create %q: %v", sub.ID, err)
	}
	return got
}

func count(t testing.TB, s *Store) int {
	t.Helper()
	n, err := s.Count()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(subs []Subject) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.ID)
	}
	return out
}

func TestCreateGetDelete(t *testing.T) {
	sixteen := make([]templates.Template, MaxTemplates)
	for i := range sixteen {
		sixteen[i] = tpl(i)
	}
	meta := map[string]string{}
	for i := range MaxMetadataKeys {
		meta[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", MaxMetadataValue)
	}
	finger := templates.Template{Modality: templates.ModalityFinger, Algorithm: templates.Algorithm{ID: "minutiae", Version: 7}, Vector: []float32{1, -2, 3.5}}
	full := slices.Clone(sixteen[:16])
	for p := minutiae.RightThumb; p <= minutiae.LeftLittle; p++ {
		full = append(full, fingerTpl(t, p))
	}
	for _, tc := range []struct {
		name      string
		in        Subject
		wantLists []string
	}{
		{"sixteen faces and ten fingers", Subject{ID: "full", Templates: full}, nil},
		{"fingers only", Subject{ID: "f", Templates: []templates.Template{fingerTpl(t, minutiae.RightIndex), fingerTpl(t, minutiae.PositionUnknown)}}, nil},
		{"minimal", Subject{ID: "a", Templates: []templates.Template{tpl(1)}}, nil},
		{"all id bytes", Subject{ID: "Az09._:@-" + strings.Repeat("x", MaxIDLen-9), Name: "Ünïcödé 名前", Templates: []templates.Template{tpl(2)}}, nil},
		{"watchlists sorted and deduplicated", Subject{ID: "w1", Watchlists: []string{"wanted", "b", "wanted", "a.b_c-d"}, Templates: []templates.Template{tpl(3)}}, []string{"a.b_c-d", "b", "wanted"}},
		{"full metadata", Subject{ID: "m1", Name: strings.Repeat("n", MaxNameLen), Metadata: meta, Templates: []templates.Template{tpl(4)}}, nil},
		{"sixteen templates of two modalities", Subject{ID: "many", Templates: append(sixteen[:15:15], finger)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			before := time.Now().UTC()
			created := mustCreate(t, s, tc.in)
			if created.ID != tc.in.ID || created.Name != tc.in.Name || !reflect.DeepEqual(created.Watchlists, tc.wantLists) {
				t.Fatalf("created %+v", created)
			}
			if created.Created.Location() != time.UTC || created.Created.Before(before.Add(-time.Second)) || !created.Updated.Equal(created.Created) {
				t.Fatalf("timestamps %v %v", created.Created, created.Updated)
			}
			if !reflect.DeepEqual(created.Templates, tc.in.Templates) {
				t.Fatalf("templates changed on the way in")
			}
			if len(tc.in.Metadata) > 0 && !reflect.DeepEqual(created.Metadata, tc.in.Metadata) {
				t.Fatalf("metadata changed")
			}
			got, err := s.Get(tc.in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, created) {
				t.Fatalf("get:\n got %+v\nwant %+v", got, created)
			}
			if n := count(t, s); n != 1 {
				t.Fatalf("count %d", n)
			}
			deleted, err := s.Delete(tc.in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(deleted, created) {
				t.Fatalf("delete returned %+v", deleted)
			}
			if _, err := s.Get(tc.in.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after delete: %v", err)
			}
			if _, err := s.Delete(tc.in.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if n := count(t, s); n != 0 {
				t.Fatalf("count after delete %d", n)
			}
			// Nothing of the subject is left behind.
			s.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.DefaultIteratorOptions)
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					if k := it.Item().Key(); !bytes.Equal(k, schemaKey) {
						t.Errorf("left behind: %q", k)
					}
				}
				return nil
			})
			// The id is free again.
			mustCreate(t, s, tc.in)
		})
	}
}

func TestExistsAndNotFound(t *testing.T) {
	s := open(t)
	first := mustCreate(t, s, subject("dup", "x"))
	if _, err := s.Create(subject("dup", "y")); !errors.Is(err, ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
	if got, _ := s.Get("dup"); !reflect.DeepEqual(got, first) {
		t.Fatal("failed create changed the subject")
	}
	if l, _ := s.Watchlists(); !reflect.DeepEqual(l, []WatchlistInfo{{"x", 1}}) {
		t.Fatalf("failed create touched watchlists: %v", l)
	}
	for _, id := range []string{"nobody", "", "a/b", "dup\x00", strings.Repeat("a", MaxIDLen+1)} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %q: %v", id, err)
		}
		if _, err := s.Delete(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete %q: %v", id, err)
		}
	}
}

func TestValidationStoresNothing(t *testing.T) {
	good := tpl(1)
	with := func(f func(*Subject)) Subject {
		sub := Subject{ID: "v1", Name: "ok", Metadata: map[string]string{"k": "v"}, Watchlists: []string{"ok"}, Templates: []templates.Template{good}}
		f(&sub)
		return sub
	}
	tooManyMeta := map[string]string{}
	for i := range MaxMetadataKeys + 1 {
		tooManyMeta[fmt.Sprint(i)] = ""
	}
	tooManyLists := make([]string, MaxWatchlists+1)
	for i := range tooManyLists {
		tooManyLists[i] = fmt.Sprint("l", i)
	}
	nan := tpl(2)
	nan.Vector[5] = float32(nanValue())
	for _, tc := range []struct {
		name  string
		sub   Subject
		field string // the message must name it
	}{
		{"empty id", with(func(s *Subject) { s.ID = "" }), "id"},
		{"long id", with(func(s *Subject) { s.ID = strings.Repeat("a", MaxIDLen+1) }), "id"},
		{"slash in id", with(func(s *Subject) { s.ID = "a/b" }), "id"},
		{"space in id", with(func(s *Subject) { s.ID = "a b" }), "id"},
		{"control in id", with(func(s *Subject) { s.ID = "a\x00" }), "id"},
		{"non-ascii id", with(func(s *Subject) { s.ID = "é" }), "id"},
		{"long name", with(func(s *Subject) { s.Name = strings.Repeat("n", MaxNameLen+1) }), "name"},
		{"invalid utf8 name", with(func(s *Subject) { s.Name = "\xff" }), "name"},
		{"too many metadata keys", with(func(s *Subject) { s.Metadata = tooManyMeta }), "metadata"},
		{"long metadata key", with(func(s *Subject) { s.Metadata = map[string]string{strings.Repeat("k", MaxMetadataKey+1): ""} }), "metadata key"},
		{"empty metadata key", with(func(s *Subject) { s.Metadata = map[string]string{"": "v"} }), "metadata key"},
		{"long metadata value", with(func(s *Subject) { s.Metadata = map[string]string{"k": strings.Repeat("v", MaxMetadataValue+1)} }), "metadata value"},
		{"invalid utf8 metadata value", with(func(s *Subject) { s.Metadata = map[string]string{"k": "\xc3"} }), "metadata value"},
		{"empty watchlist", with(func(s *Subject) { s.Watchlists = []string{""} }), "watchlist"},
		{"watchlist with space", with(func(s *Subject) { s.Watchlists = []string{"ok", "no spaces"} }), "watchlist"},
		{"watchlist with colon", with(func(s *Subject) { s.Watchlists = []string{"a:b"} }), "watchlist"},
		{"long watchlist", with(func(s *Subject) { s.Watchlists = []string{strings.Repeat("w", MaxWatchlistName+1)} }), "watchlist"},
		{"too many watchlists", with(func(s *Subject) { s.Watchlists = tooManyLists }), "watchlists"},
		{"no templates", with(func(s *Subject) { s.Templates = nil }), "templates"},
		{"too many templates", with(func(s *Subject) { s.Templates = slices.Repeat([]templates.Template{good}, MaxTemplates+1) }), "templates"},
		{"template without algorithm", with(func(s *Subject) {
			s.Templates = []templates.Template{{Modality: templates.ModalityFace, Vector: []float32{1}}}
		}), "templates[0]"},
		{"empty vector", with(func(s *Subject) { s.Templates = []templates.Template{good, {Algorithm: templates.FaceAlgorithm}} }), "templates[1]"},
		{"NaN in vector", with(func(s *Subject) { s.Templates = []templates.Template{good, good, nan} }), "templates[2]"},
		{"finger without minutiae view", with(func(s *Subject) {
			s.Templates = []templates.Template{good, {Modality: templates.ModalityFinger, Algorithm: templates.FingerAlgorithm}}
		}), "templates[1]"},
		{"finger with 256 minutiae", with(func(s *Subject) {
			f := fingerTpl(t, minutiae.LeftThumb)
			v := *f.Finger
			v.Minutiae = make([]minutiae.Minutia, 256)
			s.Templates = []templates.Template{good, templates.NewFingerTemplate(v)}
		}), "templates[1]"},
		{"finger with a vector", with(func(s *Subject) {
			f := fingerTpl(t, minutiae.LeftThumb)
			f.Vector = []float32{1}
			s.Templates = []templates.Template{f}
		}), "templates[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			mustCreate(t, s, subject("other", "ok"))
			_, err := s.Create(tc.sub)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%q does not name %q", err, tc.field)
			}
			if n := count(t, s); n != 1 {
				t.Errorf("count %d", n)
			}
			if validID(tc.sub.ID) == nil {
				if _, err := s.Get(tc.sub.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("get: %v", err)
				}
			}
			if l, _ := s.Watchlists(); !reflect.DeepEqual(l, []WatchlistInfo{{"ok", 1}}) {
				t.Errorf("watchlists %v", l)
			}
		})
	}
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var want []Subject
	for i, id := range trickyIDs {
		sub := subject(id, "l"+fmt.Sprint(i%2))
		sub.Metadata = map[string]string{"i": fmt.Sprint(i)}
		sub.Templates = append(sub.Templates, tpl(100+i))
		if i%3 == 0 {
			sub.Templates = append(sub.Templates, fingerTpl(t, minutiae.Position(1+i%10)))
		}
		want = append(want, mustCreate(t, s, sub))
	}
	if _, err := s.Delete("B"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(s Subject) bool { return s.ID == "B" })
	slices.SortFunc(want, func(a, b Subject) int { return strings.Compare(a.ID, b.ID) })
	lists, _ := s.Watchlists()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	s = openAt(t, dir)
	for _, w := range want {
		got, err := s.Get(w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("after reopen:\n got %+v\nwant %+v", got, w)
		}
	}
	if _, err := s.Get("B"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted subject back after reopen: %v", err)
	}
	var got []Subject
	if err := s.Each(func(sub Subject) error { got = append(got, sub); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("each after reopen: %v, want %v", ids(got), ids(want))
	}
	if l, _ := s.Watchlists(); !reflect.DeepEqual(l, lists) {
		t.Fatalf("watchlists %v, before %v", l, lists)
	}
}

func TestEach(t *testing.T) {
	s := open(t)
	if err := s.Each(func(Subject) error { t.Fatal("called on an empty store"); return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]Subject{}
	for i := range 300 {
		id := fmt.Sprintf("x%d", i) // x1 < x10 < x100 < x101 ...
		sub := subject(id, "l"+fmt.Sprint(i%4))
		for j := range i % 4 {
			sub.Templates = append(sub.Templates, tpl(i*10+j))
		}
		want[id] = mustCreate(t, s, sub)
	}
	for _, id := range trickyIDs {
		want[id] = mustCreate(t, s, subject(id))
	}
	var order []string
	err := s.Each(func(sub Subject) error {
		order = append(order, sub.ID)
		if !reflect.DeepEqual(sub, want[sub.ID]) {
			return fmt.Errorf("%s: got %+v, want %+v", sub.ID, sub, want[sub.ID])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != len(want) || !slices.IsSorted(order) {
		t.Fatalf("each visited %d of %d, sorted %v", len(order), len(want), slices.IsSorted(order))
	}

	stop := errors.New("stop")
	n := 0
	if err := s.Each(func(Subject) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop: %v after %d", err, n)
	}
}

func TestEachSkipsAndReportsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(txn *badger.Txn) error
		want   string
	}{
		{"template bytes", func(txn *badger.Txn) error {
			b, _ := tpl(1).MarshalBinary()
			b[20] ^= 0xff
			return txn.Set(templateKey("victim", 0), b)
		}, `subject "victim": template 0: templates: corrupt template`},
		{"template missing", func(txn *badger.Txn) error {
			return txn.Delete(templateKey("victim", 1))
		}, `subject "victim": record names 2 templates, 1 stored`},
		{"extra template", func(txn *badger.Txn) error {
			b, _ := tpl(1).MarshalBinary()
			return txn.Set(templateKey("victim", 2), b)
		}, `subject "victim": record names 2 templates, 3 stored`},
		{"record", func(txn *badger.Txn) error {
			return txn.Set(subjectKey("victim"), []byte{1, 2, 3, 4, 5, 6, 7})
		}, `subject "victim": corrupt subject record`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			mustCreate(t, s, subject("before"))
			v := subject("victim")
			v.Templates = append(v.Templates, tpl(9))
			mustCreate(t, s, v)
			mustCreate(t, s, subject("victim2"))
			if err := s.db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			// The damaged subject is skipped and reported; its neighbours
			// load (issue 19: one bad subject must not stop a start).
			var seen []string
			if err := s.Each(func(sub Subject) error { seen = append(seen, sub.ID); return nil }); err != nil {
				t.Fatalf("each: %v", err)
			}
			if !slices.Equal(seen, []string{"before", "victim2"}) {
				t.Fatalf("visited %v", seen)
			}
			d := s.Damage()
			if len(d.Subjects) != 1 || d.Subjects[0].ID != "victim" || !strings.Contains(d.Subjects[0].Err.Error(), tc.want) {
				t.Fatalf("damage %+v, want victim: %q", d, tc.want)
			}
			if _, err := s.Get("victim"); err == nil || !strings.Contains(err.Error(), "victim") {
				t.Fatalf("get: %v", err)
			}
			if _, err := s.Get("victim2"); err != nil {
				t.Fatalf("neighbour: %v", err)
			}
		})
	}
}

func TestOrphanTemplatesSkipped(t *testing.T) {
	var logs bytes.Buffer
	s, err := Open(Options{Dir: t.TempDir(), Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCreate(t, s, subject("b"))
	b, _ := tpl(1).MarshalBinary()
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, id := range []string{"a", "b-", "c"} {
			if err := txn.Set(templateKey(id, 0), b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := s.Each(func(sub Subject) error { seen = append(seen, sub.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"b"}) || !strings.Contains(logs.String(), `"templates":3`) {
		t.Fatalf("seen %v, logs %s", seen, logs.String())
	}
}

func TestConcurrentCreateSameID(t *testing.T) {
	s := open(t)
	for round := range 5 {
		id := fmt.Sprint("same", round)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		start := make(chan struct{})
		for g := range errs {
			wg.Go(func() {
				<-start
				sub := subject(id, fmt.Sprint("g", g))
				_, errs[g] = s.Create(sub)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrExists):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d successes", round, ok)
		}
		// The loser's watchlist entries were not written.
		sub, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		lists, _ := s.Watchlists()
		for _, l := range lists {
			if l.Subjects != 1 {
				t.Fatalf("watchlists %v", lists)
			}
		}
		if _, err := s.Delete(sub.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("count %d", n)
	}
}

func TestConcurrentCreateDelete(t *testing.T) {
	s := open(t)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("g%d-%02d", g, i)
				if _, err := s.Create(subject(id, "shared", fmt.Sprint("own", g))); err != nil {
					errc <- err
					return
				}
				if i%2 == 1 {
					if _, err := s.Delete(id); err != nil {
						errc <- err
						return
					}
				}
				if _, _, err := s.List(ListOptions{Watchlist: "shared", PageSize: 7}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	// Readers alongside the writers.
	done := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := s.Each(func(Subject) error { return nil }); err != nil {
				errc <- err
				return
			}
			if _, err := s.Watchlists(); err != nil {
				errc <- err
				return
			}
		}
	})
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if n := count(t, s); n != workers*each/2 {
		t.Fatalf("count %d, want %d", n, workers*each/2)
	}
	lists, err := s.Watchlists()
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != workers+1 || lists[len(lists)-1] != (WatchlistInfo{"shared", workers * each / 2}) {
		t.Fatalf("watchlists %v", lists)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir)
	mustCreate(t, s, subject("after"))
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(schemaKey, []byte("2")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(Options{Dir: dir, Logger: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "schema version 2 is newer") {
		t.Fatalf("open: %v", err)
	}
	if _, err := Open(Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("open without dir: %v", err)
	}
}

func TestInMemory(t *testing.T) {
	s, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := mustCreate(t, s, subject("m"))
	if got, err := s.Get("m"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatal(got, err)
	}
}

func TestRecordNeverPanics(t *testing.T) {
	sub := Subject{Name: "n", Metadata: map[string]string{"a": "b", "c": "d"}, Watchlists: []string{"x", "y"},
		Created: time.Unix(0, 12345).UTC(), Updated: time.Unix(0, 67890).UTC()}
	rec := encodeRecord(&sub, 3)
	var got Subject
	if n, err := decodeRecord(rec, &got, interner{}); err != nil || n != 3 || !reflect.DeepEqual(got, sub) {
		t.Fatalf("round trip: %+v %d %v", got, n, err)
	}
	for i := range len(rec) {
		if _, err := decodeRecord(rec[:i], &Subject{}, nil); err == nil {
			t.Fatalf("truncated to %d decoded", i)
		}
		for bit := range 8 {
			b := slices.Clone(rec)
			b[i] ^= 1 << bit
			if _, err := decodeRecord(b, &Subject{}, nil); err == nil {
				t.Fatalf("flipped bit %d of byte %d decoded", bit, i)
			}
		}
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{zerolog.New(&buf)}
	l.Debugf("debug %d", 1)
	l.Infof("info %d\n", 2)
	l.Warningf("warn %d\n", 3)
	l.Errorf("error %d", 4)
	got := buf.String()
	if strings.Contains(got, "debug") || strings.Contains(got, "info") ||
		!strings.Contains(got, `{"level":"warn","message":"warn 3"}`) || !strings.Contains(got, `{"level":"error","message":"error 4"}`) {
		t.Fatalf("logged %s", got)
	}
}
