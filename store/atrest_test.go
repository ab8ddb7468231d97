package store

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/templates"
)

// marked is a subject whose name and template bytes are easy to find in a
// file: a name nothing else contains and a random (so incompressible)
// vector.
func marked(id string, seed uint64) (Subject, [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, 128)
	for i := range v {
		v[i] = r.Float32() - 0.5
	}
	sub := Subject{
		ID:         id,
		Name:       "Zebulon Quixotic-Marmaduke " + id,
		Metadata:   map[string]string{"passport": "X9Q7W3-" + id},
		Watchlists: []string{"interpol"},
		Templates:  []templates.Template{{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}},
		// A kept photo, its bytes as distinctive as a real one's.
		Samples: []Sample{{Kind: SampleFacePhoto, Data: bytes.Repeat([]byte("JPEG-PHOTO-BYTES-OF-"+id+"-"), 64)}},
	}
	enc, err := sub.Templates[0].MarshalBinary()
	if err != nil {
		panic(err)
	}
	// Needles: the name, the metadata value, and 48-byte windows of the
	// template encoding (a window rather than all of it, so a block
	// boundary in a table does not hide it).
	needles := [][]byte{[]byte(sub.Name), []byte(sub.Metadata["passport"]), []byte("JPEG-PHOTO-BYTES-OF-" + id + "-")}
	for off := 16; off+48 <= len(enc); off += 160 {
		needles = append(needles, enc[off:off+48])
	}
	return sub, needles
}

// findInDir returns, for the files under dir that contain any needle, which
// one.
func findInDir(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	var hits []string
	for i, found := range foundInDir(t, dir, needles) {
		if found != "" {
			hits = append(hits, found+" has "+printable(needles[i]))
		}
	}
	return hits
}

// foundInDir says for each needle the first file under dir holding it ("":
// none). Every file is read once.
func foundInDir(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	found := make([]string, len(needles))
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Badger preallocates its logs; the zeros cannot hold a needle.
		b = bytes.TrimRight(b, "\x00")
		for i, n := range needles {
			if found[i] == "" && bytes.Contains(b, n) {
				found[i] = filepath.Base(path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func printable(b []byte) string {
	if s := string(b); strings.ToValidUTF8(s, "") == s && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' }) {
		return `"` + s + `"`
	}
	return "template bytes"
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestEncryptedAtRest enrols recognisable subjects into an encrypted
// gallery, deletes one, closes, and greps every file of the directory: no
// name, metadata or template bytes in the clear. The same run without a key
// finds them, so the grep can see what it looks for.
func TestEncryptedAtRest(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		dir := t.TempDir()
		opt := Options{Dir: dir, Logger: zerolog.Nop(), uncompressed: true}
		if encrypted {
			opt.EncryptionKey = testKey(0x42)
		}
		s, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		var needles [][]byte
		for i := range 20 {
			sub, n := marked("M"+string(rune('A'+i)), uint64(i))
			needles = append(needles, n...)
			mustCreate(t, s, sub)
		}
		if _, err := s.Delete("MA"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		hits := findInDir(t, dir, needles)
		switch {
		case encrypted && len(hits) > 0:
			t.Errorf("encrypted gallery has plaintext: %v", hits)
		case !encrypted && len(hits) == 0:
			t.Fatalf("the unencrypted control run finds nothing: the grep is blind")
		}
		if encrypted {
			// It opens again with the key and holds what was written.
			s, err := Open(opt)
			if err != nil {
				t.Fatal(err)
			}
			if n := count(t, s); n != 19 {
				t.Errorf("reopened: %d subjects, want 19", n)
			}
			got, err := s.Get("MB")
			if err != nil || got.Name != "Zebulon Quixotic-Marmaduke MB" {
				t.Errorf("reopened Get: %+v %v", got.Name, err)
			}
			s.Close()
			// Without the key, or with another, it does not.
			for _, k := range [][]byte{nil, testKey(0x43)} {
				_, err := Open(Options{Dir: dir, EncryptionKey: k})
				if !errors.Is(err, ErrKeyMismatch) {
					t.Errorf("open with key %x: %v, want ErrKeyMismatch", k, err)
				}
			}
		}
	}
}

func TestKeyParsingAndFiles(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{strings.Repeat("ab", 16), true},
		{strings.Repeat("ab", 24) + "\n", true},
		{"  " + strings.Repeat("0f", 32) + "\r\n", true},
		{strings.Repeat("ab", 15), false},
		{strings.Repeat("zz", 16), false},
		{strings.Repeat("a", 32), true}, // hex of 16 bytes, not 32 raw bytes
		{"", false},
	} {
		_, err := ParseKey(tc.text)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q): %v", tc.text, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKey(%q): %v does not wrap ErrInvalid", tc.text, err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	k, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v, want 0600", fi.Mode(), err)
	}
	if _, err := GenerateKeyFile(path); err == nil {
		t.Error("GenerateKeyFile overwrote an existing key")
	}
	got, loose, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, k) || loose {
		t.Fatalf("ReadKeyFile: %x %v %v", got, loose, err)
	}
	os.Chmod(path, 0o644)
	if _, loose, _ := ReadKeyFile(path); !loose {
		t.Error("a 0644 key file is not reported as readable by others")
	}
	if _, err := Open(Options{Dir: t.TempDir(), EncryptionKey: []byte("short")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 5-byte key: %v", err)
	}
}

// TestRotateKey changes the master key of a gallery: afterwards only the new
// key opens it, with everything in it, and a running store blocks rotation.
func TestRotateKey(t *testing.T) {
	dir := t.TempDir()
	oldK, newK := testKey(1), testKey(2)
	s, err := Open(Options{Dir: dir, EncryptionKey: oldK})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		sub, _ := marked("R"+string(rune('A'+i%26))+string(rune('a'+i/26)), uint64(i))
		mustCreate(t, s, sub)
	}
	if err := RotateKey(dir, oldK, newK); !errors.Is(err, ErrLocked) {
		t.Errorf("rotation of an open gallery: %v, want ErrLocked", err)
	}
	s.Close()
	if err := RotateKey(dir, testKey(3), newK); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("rotation with a wrong old key: %v", err)
	}
	if err := RotateKey(dir, oldK, newK); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir, EncryptionKey: oldK}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("the old key still opens: %v", err)
	}
	s, err = Open(Options{Dir: dir, EncryptionKey: newK})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := count(t, s); n != 50 {
		t.Errorf("%d subjects after rotation, want 50", n)
	}
	if err := s.Each(func(Subject) error { return nil }); err != nil {
		t.Errorf("reading every template after rotation: %v", err)
	}
}

// TestPurgeRemovesDeletedBytes: after Delete and Purge, the deleted
// subject's name, metadata and template bytes are in no file of the
// directory, and the others' still are. Unencrypted, so the grep can see
// them; the control before the purge proves it does.
func TestPurgeRemovesDeletedBytes(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Dir: dir, Logger: zerolog.Nop(), uncompressed: true}
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	var gone, kept [][]byte
	id := func(i int) string { return "P" + string(rune('A'+i%26)) + string(rune('a'+i/26)) }
	for i := range 200 {
		sub, n := marked(id(i), uint64(i))
		if i == 77 {
			// Some of it in tables, some in the memtable's log.
			s.Close()
			if s, err = Open(opt); err != nil {
				t.Fatal(err)
			}
		}
		mustCreate(t, s, sub)
		if i == 20 || i == 150 {
			gone = append(gone, n...)
		} else if i%50 == 3 {
			kept = append(kept, n...)
		}
	}
	defer s.Close()
	for _, i := range []int{20, 150} {
		if _, err := s.Delete(id(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.DeletesSincePurge() != 2 {
		t.Errorf("DeletesSincePurge %d, want 2", s.DeletesSincePurge())
	}
	if hits := findInDir(t, dir, gone); len(hits) == 0 {
		t.Fatal("deleted subjects' bytes not found before the purge: the grep is blind")
	}
	start := time.Now()
	st, err := s.Purge()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purge: %+v in %v", st, time.Since(start))
	if hits := findInDir(t, dir, gone); len(hits) > 0 {
		t.Errorf("deleted subjects' bytes still on disk after purge: %v", hits)
	}
	for i, f := range foundInDir(t, dir, kept) {
		if f == "" {
			t.Errorf("a live subject's %s is gone from the files", printable(kept[i]))
		}
	}
	if s.DeletesSincePurge() != 0 {
		t.Errorf("DeletesSincePurge %d after purge", s.DeletesSincePurge())
	}
	if n := count(t, s); n != 198 {
		t.Errorf("%d subjects after purge, want 198", n)
	}
	// Writes go on after a purge, and a purge with nothing deleted is fine.
	sub, _ := marked("after", 999)
	mustCreate(t, s, sub)
	if _, err := s.Purge(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("after"); err != nil {
		t.Fatal(err)
	}
}

// TestPurgeWithConcurrentWrites: a purge while enrolments and deletions go
// on loses nothing acknowledged.
func TestPurgeWithConcurrentWrites(t *testing.T) {
	s := openAt(t, t.TempDir())
	var wg sync.WaitGroup
	created := make(chan string, 1000)
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				id := "W" + string(rune('a'+w)) + string(rune('A'+i%26)) + string(rune('A'+i/26))
				sub, _ := marked(id, uint64(w*1000+i))
				if _, err := s.Create(sub); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := s.Delete(id); err != nil {
						t.Error(err)
					}
					continue
				}
				created <- id
			}
		})
	}
	for range 3 {
		if _, err := s.Purge(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(created)
	n := 0
	for id := range created {
		n++
		if _, err := s.Get(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if c := count(t, s); c != n {
		t.Errorf("%d subjects, want %d", c, n)
	}
}

func fillBackup(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := range n {
		sub, _ := marked("B"+string(rune('A'+i%26))+string(rune('A'+i/26%26))+string(rune('a'+i/676)), uint64(i))
		if i%3 == 0 {
			sub.Watchlists = append(sub.Watchlists, "wanted")
		}
		if i%5 == 0 {
			sub.Templates = append(sub.Templates, tpl(i))
		}
		mustCreate(t, s, sub)
	}
}

func snapshot(t *testing.T, s *Store) []Subject {
	t.Helper()
	var out []Subject
	if err := s.Each(func(sub Subject) error { out = append(out, sub); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackupRestore: a backup restores into an empty encrypted gallery
// with every subject, template and membership as it was.
func TestBackupRestore(t *testing.T) {
	src := openAt(t, t.TempDir())
	fillBackup(t, src, 300)
	var buf bytes.Buffer
	st, err := src.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Subjects != 300 || st.Templates != 360 || st.Bytes != int64(buf.Len()) {
		t.Errorf("backup stats %+v", st)
	}
	if bytes.Contains(buf.Bytes(), []byte("meta/schema")) {
		t.Error("the backup holds the schema key, which a restore target has already")
	}
	dst, err := Open(Options{Dir: t.TempDir(), EncryptionKey: testKey(9)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rst, err := dst.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rst.Entries != st.Entries || rst.Subjects != 300 {
		t.Errorf("restore stats %+v, backup %+v", rst, st)
	}
	a, b := snapshot(t, src), snapshot(t, dst)
	if len(a) != len(b) {
		t.Fatalf("%d subjects restored of %d", len(b), len(a))
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Name != b[i].Name || !a[i].Created.Equal(b[i].Created) ||
			strings.Join(a[i].Watchlists, ",") != strings.Join(b[i].Watchlists, ",") || len(a[i].Templates) != len(b[i].Templates) ||
			a[i].Templates[0].Vector[5] != b[i].Templates[0].Vector[5] {
			t.Fatalf("subject %d differs:\n%+v\n%+v", i, a[i], b[i])
		}
	}
	wl, _ := dst.Watchlists()
	if len(wl) != 2 || wl[1].Name != "wanted" || wl[1].Subjects != 100 {
		t.Errorf("watchlists after restore: %+v", wl)
	}
	// Not into a gallery with subjects.
	if _, err := dst.Restore(bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into a full gallery: %v", err)
	}
	// The restored gallery takes new subjects, and the ids of restored ones
	// are taken.
	sub, _ := marked("new", 1)
	mustCreate(t, dst, sub)
	if _, err := dst.Create(a[0]); !errors.Is(err, ErrExists) {
		t.Errorf("re-creating a restored id: %v", err)
	}
}

// TestRestoreRefusesDamage: every truncation, a flipped byte anywhere, and
// foreign streams are refused with ErrBadBackup and leave the gallery empty.
func TestRestoreRefusesDamage(t *testing.T) {
	src := openAt(t, t.TempDir())
	fillBackup(t, src, 40)
	var buf bytes.Buffer
	if _, err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	dst := openAt(t, t.TempDir())
	try := func(what string, b []byte) {
		t.Helper()
		_, err := dst.Restore(bytes.NewReader(b))
		if !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", what, err)
		}
		if n := count(t, dst); n != 0 {
			t.Fatalf("%s: %d subjects stored", what, n)
		}
		if wl, _ := dst.Watchlists(); len(wl) != 0 {
			t.Fatalf("%s: watchlists stored: %+v", what, wl)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		n := r.IntN(len(good))
		try("truncated", good[:n])
	}
	try("truncated before the last byte", good[:len(good)-1])
	for range 40 {
		b := bytes.Clone(good)
		i := r.IntN(len(b))
		b[i] ^= 1 << r.IntN(8)
		try("flipped byte", b)
	}
	try("empty", nil)
	try("foreign", []byte("PK\x03\x04 not a backup at all, a zip file perhaps"))
	try("trailing data", append(bytes.Clone(good), 0))
	// After all that, the good one restores.
	if _, err := dst.Restore(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dst); n != 40 {
		t.Errorf("%d subjects, want 40", n)
	}
}

// TestBackupConsistentUnderWrites: a backup taken while subjects are created
// and deleted restores to a gallery where every subject is whole.
func TestBackupConsistentUnderWrites(t *testing.T) {
	src := openAt(t, t.TempDir())
	fillBackup(t, src, 200)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sub, _ := marked("C"+string(rune('A'+i%26))+string(rune('A'+i/26%26))+string(rune('a'+i/676%26)), uint64(i))
			sub.Templates = append(sub.Templates, tpl(i), tpl(i+1))
			if _, err := src.Create(sub); err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				src.Delete(sub.ID)
			}
		}
	})
	for range 5 {
		pr, pw := io.Pipe()
		dst := openAt(t, t.TempDir())
		go func() { _, err := src.Backup(pw); pw.CloseWithError(err) }()
		if _, err := dst.Restore(pr); err != nil {
			t.Fatal(err)
		}
		for _, sub := range snapshot(t, dst) {
			if strings.HasPrefix(sub.ID, "C") && len(sub.Templates) != 3 {
				t.Fatalf("%s restored with %d templates", sub.ID, len(sub.Templates))
			}
		}
	}
	close(stop)
	wg.Wait()
}
