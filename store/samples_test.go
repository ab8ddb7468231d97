package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/bordermatch/bordermatch/templates"
)

// keysUnder counts the keys under a prefix.
func keysUnder(t *testing.T, s *Store, prefix string) int {
	t.Helper()
	var n int
	if err := s.db.View(func(txn *badger.Txn) (err error) {
		n, err = countPrefix(txn, []byte(prefix))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func testSamples(seed uint64) []Sample {
	r := rand.New(rand.NewPCG(seed, 1))
	big := make([]byte, 3<<20/2) // over Badger's value threshold: the value log
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	return []Sample{
		{Kind: SampleFacePhoto, Data: []byte(fmt.Sprintf("jpeg bytes of %d", seed))},
		{Kind: SampleFacePhoto, Data: big},
		{Kind: SampleFingerImage, Data: []byte("wsq bytes"), Format: "wsq", DPI: 500, Position: 2},
		{Kind: SampleFingerRecord, Data: []byte("iso record"), Position: 7},
	}
}

// TestSamplesKeptWithSubject: samples are written with the subject, read
// back as given, counted by Get, deleted with it, and carried by a backup.
func TestSamplesKeptWithSubject(t *testing.T) {
	s := open(t)
	want := testSamples(1)
	got, err := s.Create(Subject{ID: "a1", Name: "A", Templates: []templates.Template{tpl(1)}, Samples: want})
	if err != nil {
		t.Fatal(err)
	}
	if got.SampleCount != 4 || got.Samples != nil {
		t.Errorf("Create returned SampleCount %d, %d samples", got.SampleCount, len(got.Samples))
	}
	mustCreate(t, s, Subject{ID: "a2", Templates: []templates.Template{tpl(2)}})
	sub, err := s.Get("a1")
	if err != nil {
		t.Fatal(err)
	}
	if sub.SampleCount != 4 || sub.Samples != nil {
		t.Errorf("Get: SampleCount %d, %d samples", sub.SampleCount, len(sub.Samples))
	}
	back, err := s.Samples("a1")
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(want) {
		t.Fatalf("%d samples back, want %d", len(back), len(want))
	}
	for i := range want {
		w, g := want[i], back[i]
		if w.Kind != g.Kind || !bytes.Equal(w.Data, g.Data) || w.Format != g.Format || w.DPI != g.DPI || w.Position != g.Position {
			t.Errorf("sample %d: got %v %d bytes %q %d %d", i, g.Kind, len(g.Data), g.Format, g.DPI, g.Position)
		}
	}
	if sm, err := s.Samples("a2"); err != nil || len(sm) != 0 {
		t.Errorf("Samples of a subject without: %v, %v", sm, err)
	}
	if _, err := s.Samples("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Samples of no subject: %v", err)
	}

	// Backup and restore carry them.
	var buf bytes.Buffer
	st, err := s.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 4 || st.Subjects != 2 {
		t.Errorf("backup stats %+v", st)
	}
	dst, err := Open(Options{Dir: t.TempDir(), EncryptionKey: testKey(3)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rst, err := dst.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rst.Samples != 4 || rst.Entries != st.Entries {
		t.Errorf("restore stats %+v", rst)
	}
	rback, err := dst.Samples("a1")
	if err != nil || len(rback) != 4 || !bytes.Equal(rback[1].Data, want[1].Data) {
		t.Fatalf("restored samples: %d, %v", len(rback), err)
	}

	// Deleted with the subject: no key left.
	if _, err := s.Delete("a1"); err != nil {
		t.Fatal(err)
	}
	if n := keysUnder(t, s, samplePrefix); n != 0 {
		t.Errorf("%d sample keys left after the delete", n)
	}
	if n := keysUnder(t, s, templatePrefix); n != 1 {
		t.Errorf("%d template keys left, want a2's", n)
	}
}

func TestSamplesRefused(t *testing.T) {
	s := open(t)
	for _, sm := range []Sample{{Kind: 9, Data: []byte("x")}, {Kind: SampleFacePhoto}, {Kind: SampleFingerImage, Data: []byte("x"), Format: "a-very-long-format-name"}} {
		if _, err := s.Create(Subject{ID: "r", Templates: []templates.Template{tpl(1)}, Samples: []Sample{sm}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("sample %+v: %v", sm, err)
		}
	}
	if n := keysUnder(t, s, ""); n != 1 { // the schema key
		t.Errorf("%d keys after refused creates", n)
	}
}

// TestRestoreVersion1: a backup of the format before kept samples still
// restores.
func TestRestoreVersion1(t *testing.T) {
	src := open(t)
	for i := range 20 {
		mustCreate(t, src, Subject{ID: fmt.Sprintf("v1-%d", i), Watchlists: []string{"w"}, Templates: []templates.Template{tpl(i)}})
	}
	var buf bytes.Buffer
	st, err := src.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	b[len(backupMagic)] = 1
	// Re-seal the trailer: 'Z', two uvarints, SHA-256 of all before 'Z'.
	tr := []byte{'Z'}
	tr = binary.AppendUvarint(tr, uint64(st.Entries))
	tr = binary.AppendUvarint(tr, uint64(st.Subjects))
	body := b[:len(b)-len(tr)-sha256.Size]
	sum := sha256.Sum256(body)
	copy(b[len(b)-sha256.Size:], sum[:])
	dst := open(t)
	if _, err := dst.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if n, _ := dst.Count(); n != 20 {
		t.Errorf("%d subjects restored", n)
	}
}

// TestSetTemplatesAndJob: templates are replaced with the job's state in
// one transaction; IDs walks the gallery.
func TestSetTemplatesAndJob(t *testing.T) {
	s := open(t)
	for i := range 5 {
		mustCreate(t, s, Subject{ID: fmt.Sprintf("s%d", i), Watchlists: []string{"w"}, Templates: []templates.Template{tpl(i), tpl(i + 10)}})
	}
	other := tpl(99)
	other.Algorithm = templates.Algorithm{ID: "other", Version: 3}
	other.Vector = other.Vector[:64]
	before, _ := s.Get("s2")
	sub, err := s.SetTemplates("s2", []templates.Template{tpl(2), other}, &Job{Name: "retemplate", State: []byte("cursor s2")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("s2")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Templates) != 2 || got.Templates[1].Algorithm != other.Algorithm || len(got.Templates[1].Vector) != 64 ||
		!got.Created.Equal(before.Created) || !got.Updated.Equal(sub.Updated) || !slices.Equal(got.Watchlists, []string{"w"}) {
		t.Errorf("after SetTemplates: %+v", got)
	}
	if st, err := s.JobState("retemplate"); err != nil || string(st) != "cursor s2" {
		t.Errorf("job state %q, %v", st, err)
	}
	if _, err := s.SetTemplates("nobody", []templates.Template{tpl(1)}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetTemplates of no subject: %v", err)
	}
	if err := s.SetJobState("retemplate", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := s.JobState("retemplate"); err != nil || st != nil {
		t.Errorf("job state after delete %q, %v", st, err)
	}
	ids, err := s.IDs("", 3)
	if err != nil || !slices.Equal(ids, []string{"s0", "s1", "s2"}) {
		t.Errorf("IDs: %v %v", ids, err)
	}
	ids, _ = s.IDs("s2", 10)
	if !slices.Equal(ids, []string{"s3", "s4"}) {
		t.Errorf("IDs after s2: %v", ids)
	}
	// Each still loads every subject (the walk sees the new templates).
	n := 0
	if err := s.Each(func(Subject) error { n++; return nil }); err != nil || n != 5 {
		t.Errorf("Each: %d, %v", n, err)
	}
}
