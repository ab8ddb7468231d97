package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
)

// TestGalleryOptionsUnreadable: a data or gallery directory that cannot be
// listed is an error of kind ErrUnavailable, never taken for an empty one,
// and no master key is generated beside it.
func TestGalleryOptionsUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, data string)
	}{
		{"data is not a directory", func(t *testing.T, data string) {
			if err := os.WriteFile(data, []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"gallery is not a directory", func(t *testing.T, data string) {
			if err := os.MkdirAll(data, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(data, GalleryDirName), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EncryptionKeyEnv, "")
			data := filepath.Join(t.TempDir(), "data")
			tc.make(t, data)
			_, _, err := GalleryOptions(data, "", zerolog.Nop())
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("GalleryOptions: %v, want ErrUnavailable", err)
			}
			if _, err := os.Stat(filepath.Join(data, KeyFileName)); err == nil {
				t.Fatalf("a master key was generated beside an unreadable gallery")
			}
		})
	}
}

// TestGalleryOptionsFirstStart: a missing data directory is a first start:
// the key is generated there.
func TestGalleryOptionsFirstStart(t *testing.T) {
	t.Setenv(EncryptionKeyEnv, "")
	data := filepath.Join(t.TempDir(), "data")
	opt, note, err := GalleryOptions(data, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(opt.EncryptionKey) == 0 || note == "" {
		t.Fatalf("no key generated: %+v %q", opt, note)
	}
	if _, err := os.Stat(filepath.Join(data, KeyFileName)); err != nil {
		t.Fatal(err)
	}
}
