package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rs/zerolog"
)

// FuzzRestore: any byte stream given to Restore is refused with an error or
// restores a gallery that loads; it never panics, and a refused stream
// leaves the gallery empty.
func FuzzRestore(f *testing.F) {
	src, err := Open(Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	for i, id := range []string{"A1", "A1-2", "B"} {
		sub, _ := marked(id, uint64(i))
		if i == 1 {
			sub.Templates = append(sub.Templates, tpl(3))
		}
		if _, err := src.Create(sub); err != nil {
			f.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := src.Backup(&buf); err != nil {
		f.Fatal(err)
	}
	src.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:40])
	f.Add([]byte(backupMagic + "\x01\x01\x00Z\x00\x00"))
	dir := f.TempDir()
	dst, err := Open(Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { dst.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := dst.Restore(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("not ErrBadBackup: %v", err)
			}
			if n, _ := dst.Count(); n != 0 {
				t.Fatalf("refused stream left %d subjects", n)
			}
			return
		}
		n := int64(0)
		if err := dst.Each(func(Subject) error { n++; return nil }); err != nil || n != st.Subjects {
			t.Fatalf("restored gallery: %d subjects load (%v), restore said %d", n, err, st.Subjects)
		}
		if err := dst.dropGallery(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzPageToken: a page token from a client decodes or is refused, never
// panics, and what decodes round-trips through encoding.
func FuzzPageToken(f *testing.F) {
	f.Add(encodePageToken("", "A1"))
	f.Add(encodePageToken("interpol", "P-1234"))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, tok string) {
		list, id, err := decodePageToken(tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("not ErrInvalidPageToken: %v", err)
			}
			return
		}
		// base64 decoding ignores unused trailing bits, so two tokens may
		// name one position; the position must survive a round trip.
		l2, id2, err := decodePageToken(encodePageToken(list, id))
		if err != nil || l2 != list || id2 != id {
			t.Fatalf("token %q decodes to (%q, %q), which round-trips to (%q, %q, %v)", tok, list, id, l2, id2, err)
		}
	})
}
