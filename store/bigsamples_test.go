package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bordermatch/bordermatch/templates"
)

// TestLargeSamples: samples up to MaxKeptBytes a subject, each over
// Badger's 1 MiB value threshold, are stored whole in one transaction, in
// chunks; more are refused, and nothing is written.
func TestLargeSamples(t *testing.T) {
	s := open(t)
	sub := Subject{ID: "big", Templates: []templates.Template{tpl(1)}}
	for i := range 4 {
		sub.Samples = append(sub.Samples, Sample{Kind: SampleFacePhoto, Data: bytes.Repeat([]byte{byte(i + 1)}, 1500<<10)})
	}
	got, err := s.Create(sub)
	if err != nil || got.SampleCount != 4 {
		t.Fatalf("create: %d samples, %v", got.SampleCount, err)
	}
	back, err := s.Samples("big")
	if err != nil || len(back) != 4 || len(back[3].Data) != 1500<<10 || back[3].Data[0] != 4 || back[0].Data[1500<<10-1] != 1 {
		t.Fatalf("%d samples back, %v", len(back), err)
	}
	if g, _ := s.Get("big"); g.SampleCount != 4 {
		t.Errorf("Get counts %d samples", g.SampleCount)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dst := open(t)
	if st, err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil || st.Samples != 4 {
		t.Fatalf("restore: %+v, %v", st, err)
	}
	if back, err := dst.Samples("big"); err != nil || len(back) != 4 || !bytes.Equal(back[2].Data, sub.Samples[2].Data) {
		t.Fatalf("restored: %d, %v", len(back), err)
	}
	sub.ID = "bigger"
	sub.Samples = append(sub.Samples, sub.Samples[0])
	if _, err := s.Create(sub); !errors.Is(err, ErrInvalid) {
		t.Errorf("samples over MaxKeptBytes: %v", err)
	}
	if _, err := s.Get("bigger"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused create left %v", err)
	}
}

// TestPurgeRemovesDeletedSamples: a deleted subject's kept photo, large
// enough to live in the value log, is gone from the files after a Purge,
// and a live subject's is still there.
func TestPurgeRemovesDeletedSamples(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	photo := func(marker string) []byte {
		b := bytes.Repeat([]byte("-"), 200<<10)
		for i := 0; i+len(marker) < len(b); i += 16 << 10 {
			copy(b[i:], marker)
		}
		return b
	}
	for i, m := range []string{"GONE-PHOTO-MARKER", "KEPT-PHOTO-MARKER"} {
		for k := range 3 {
			sub := Subject{ID: m[:4] + string(rune('a'+k)), Templates: []templates.Template{tpl(i*10 + k)},
				Samples: []Sample{{Kind: SampleFacePhoto, Data: photo(m)}}}
			if _, err := s.Create(sub); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := range 3 {
		if _, err := s.Delete("GONE" + string(rune('a'+k))); err != nil {
			t.Fatal(err)
		}
	}
	gone, kept := [][]byte{[]byte("GONE-PHOTO-MARKER")}, [][]byte{[]byte("KEPT-PHOTO-MARKER")}
	if hits := findInDir(t, dir, gone); len(hits) == 0 {
		t.Fatal("the deleted photos are not in the files before the purge: the grep is blind")
	}
	if _, err := s.Purge(); err != nil {
		t.Fatal(err)
	}
	if hits := findInDir(t, dir, gone); len(hits) > 0 {
		t.Errorf("deleted photos still on disk after the purge: %v", hits)
	}
	for i, f := range foundInDir(t, dir, kept) {
		if f == "" {
			t.Errorf("a live subject's photo %s is gone from the files", kept[i])
		}
	}
}
