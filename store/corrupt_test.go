package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// damagedGalleryN is the number of subjects in a test gallery: enough for
// its table to have a few hundred blocks.
const damagedGalleryN = 300

// makeGallery creates a closed gallery of damagedGalleryN subjects in a
// new directory, encrypted under key if one is given (matchd's default),
// and returns its options and its table file.
func makeGallery(t *testing.T, key []byte) (Options, string) {
	t.Helper()
	opt := DefaultOptions(t.TempDir())
	opt.EncryptionKey, opt.Logger = key, zerolog.Nop()
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range damagedGalleryN {
		sub := subject(fmt.Sprintf("S%04d", i), "wanted")
		sub.Templates = append(sub.Templates, tpl(i))
		mustCreate(t, s, sub)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(opt.Dir, "*.sst"))
	if len(ssts) != 1 {
		t.Fatalf("tables %v, want one", ssts)
	}
	return opt, ssts[0]
}

// damage is one way a table file gets damaged on disk.
type damage struct {
	name string
	do   func(t *testing.T, path string)
}

// flipAt flips one bit at the fraction at of the file (negative: bytes
// from its end).
func flipAt(at float64) damage {
	return damage{fmt.Sprintf("flip at %v", at), func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := int(at * float64(len(b)))
		if at < 0 {
			i = len(b) + int(at)
		}
		b[i] ^= 0x10
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}}
}

var truncate100 = damage{"truncated by 100 bytes", func(t *testing.T, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-100); err != nil {
		t.Fatal(err)
	}
}}

// tableDamages are single-bit flips in data blocks, in the index and in
// the footer's lengths, and a truncation.
var tableDamages = []damage{
	flipAt(0.001), flipAt(0.2), flipAt(0.5), flipAt(0.8), flipAt(0.97), flipAt(-2), flipAt(-6), flipAt(-60), truncate100,
}

// TestOpenRefusesDamagedTable: Open never panics on a damaged table and
// never starts without it (Badger would drop it and start with subjects
// missing); it refuses, naming the file.
func TestOpenRefusesDamagedTable(t *testing.T) {
	for _, enc := range []bool{true, false} {
		for _, d := range tableDamages {
			t.Run(fmt.Sprintf("encrypted=%v/%s", enc, d.name), func(t *testing.T) {
				var key []byte
				if enc {
					key = testKey(7)
				}
				opt, sst := makeGallery(t, key)
				d.do(t, sst)
				s, err := Open(opt)
				if err == nil {
					n := count(t, s)
					s.Close()
					t.Fatalf("opened a gallery with a damaged table (%d subjects)", n)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(sst)) {
					t.Fatalf("open: %v; want ErrCorrupt naming %s", err, filepath.Base(sst))
				}
			})
		}
	}
}

// TestOpenRefusesDamagedValueLog: a value log whose header names a data
// key the gallery does not have is refused, naming the file; a flip in its
// IV is harmless while the log holds no values (they are all far below
// Badger's value threshold).
func TestOpenRefusesDamagedValueLog(t *testing.T) {
	for _, at := range []float64{0.001, 0.3} {
		opt, _ := makeGallery(t, testKey(7))
		vlogs, _ := filepath.Glob(filepath.Join(opt.Dir, "*.vlog"))
		if len(vlogs) != 1 {
			t.Fatalf("value logs %v", vlogs)
		}
		flipAt(at).do(t, vlogs[0])
		s, err := Open(opt)
		if err == nil {
			s.Close()
			t.Fatalf("flip at %v: opened", at)
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(vlogs[0])) {
			t.Fatalf("flip at %v: %v; want ErrCorrupt naming %s", at, err, vlogs[0])
		}
	}
}

// TestSalvage: a damaged gallery's readable subjects all come back through
// the backup format into a new gallery, each as it was; what did not read
// is listed: the file, the blocks' key ranges, the subjects in pieces.
func TestSalvage(t *testing.T) {
	for _, d := range []damage{{"clean", func(*testing.T, string) {}}, flipAt(0.3), flipAt(0.8), flipAt(-60), truncate100} {
		t.Run(d.name, func(t *testing.T) {
			opt, sst := makeGallery(t, testKey(7))
			want := map[string]Subject{}
			{
				s, err := Open(opt)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Each(func(sub Subject) error { want[sub.ID] = sub; return nil }); err != nil {
					t.Fatal(err)
				}
				s.Close()
			}
			d.do(t, sst)
			var buf bytes.Buffer
			rep, err := Salvage(opt, &buf)
			if err != nil {
				t.Fatalf("salvage: %v", err)
			}
			dst := open(t)
			st, err := dst.Restore(&buf)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			got := map[string]Subject{}
			if err := dst.Each(func(sub Subject) error { got[sub.ID] = sub; return nil }); err != nil {
				t.Fatal(err)
			}
			for id, sub := range got {
				if !reflect.DeepEqual(sub, want[id]) {
					t.Fatalf("salvaged %q differs:\n%+v\n%+v", id, sub, want[id])
				}
			}
			lost := map[string]bool{}
			for _, sd := range rep.Damage.Subjects {
				lost[sd.ID] = true
			}
			wl, _, err := dst.List(ListOptions{Watchlist: "wanted", PageSize: MaxPageSize})
			if err != nil || len(wl) != len(got) {
				t.Fatalf("watchlist holds %d, %d salvaged (%v)", len(wl), len(got), err)
			}
			t.Logf("%d of %d subjects salvaged, %d entries read back from the damaged table, lost: %d subjects, ranges %v",
				st.Subjects, len(want), rep.Recovered, len(lost), rep.LostRanges)
			if d.name == "clean" {
				if len(got) != len(want) || !rep.Damage.Empty() || len(rep.LostRanges) > 0 {
					t.Fatalf("clean gallery: %d of %d salvaged, report %+v", len(got), len(want), rep)
				}
				return
			}
			if len(rep.Damage.Files) != 1 || rep.Damage.Files[0].File != sst || len(rep.LostRanges) == 0 {
				t.Fatalf("report %+v: want %s and the lost ranges", rep, sst)
			}
			// A table whose index or footer does not read is lost whole
			// (its blocks cannot be found), and the report says so.
			whole := strings.HasPrefix(rep.LostRanges[0], "all of "+filepath.Base(sst))
			if d.name == truncate100.name && !whole {
				t.Fatalf("truncated table: lost ranges %v", rep.LostRanges)
			}
			if !whole && len(got) < len(want)*9/10 {
				t.Fatalf("only %d of %d subjects salvaged from one bad block", len(got), len(want))
			}
			// Every subject is either back or named as lost.
			for id := range want {
				if _, ok := got[id]; !ok && !lost[id] && !whole {
					t.Errorf("subject %q neither salvaged nor listed as lost", id)
				}
			}
		})
	}
}

// TestOfflineToolsRefuseOpenGallery: check and salvage never read a
// gallery a running store holds.
func TestOfflineToolsRefuseOpenGallery(t *testing.T) {
	s := open(t)
	mustCreate(t, s, subject("a"))
	opt := DefaultOptions(s.db.Opts().Dir)
	if _, err := CheckFiles(opt); !errors.Is(err, ErrLocked) {
		t.Fatalf("check files of an open gallery: %v", err)
	}
	if _, err := Salvage(opt, io.Discard); !errors.Is(err, ErrLocked) {
		t.Fatalf("salvage of an open gallery: %v", err)
	}
}
