package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/store"
)

// Data directory layout. The Badger gallery lives in DATA/gallery and, when
// no key is configured, the generated master key in DATA/master.key, beside
// the gallery rather than in it. A DATA that is itself a Badger directory
// (made before encryption at rest) is opened as it is, unencrypted.
const (
	GalleryDirName = "gallery"
	KeyFileName    = "master.key"
	// EncryptionKeyEnv holds a master key in hex; EncryptionKeyFileEnv the
	// path of a key file (matchd --encryption-key-file).
	EncryptionKeyEnv     = "BORDERMATCH_ENCRYPTION_KEY"
	EncryptionKeyFileEnv = "BORDERMATCH_ENCRYPTION_KEY_FILE"
)

// GalleryOptions are the store options of a data directory: where the
// gallery is and its master key, from keyFile (a path), else the
// BORDERMATCH_ENCRYPTION_KEY variable, else DATA/master.key, which is
// generated when neither the key file nor the gallery exists yet. The
// returned note says where the key came from, for the log.
func GalleryOptions(dataDir, keyFile string, log zerolog.Logger) (opt store.Options, note string, err error) {
	opt = store.Options{Dir: filepath.Join(dataDir, GalleryDirName), Logger: log}
	envKey := os.Getenv(EncryptionKeyEnv)
	if keyFile != "" && envKey != "" {
		return opt, "", fmt.Errorf("give the encryption key either as a file (--encryption-key-file) or in %s, not both", EncryptionKeyEnv)
	}
	// Every question asked of the directory below must get an answer: a
	// directory that cannot be read is not an empty one, and taking it for
	// one would generate a new master key beside an existing gallery.
	if err := checkReadable(dataDir); err != nil {
		return opt, "", err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "MANIFEST")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return opt, "", fmt.Errorf("%w: data directory: %w", ErrUnavailable, err)
	} else if err == nil {
		if keyFile != "" || envKey != "" {
			return opt, "", fmt.Errorf("%s is an unencrypted gallery from before encryption at rest; it cannot be encrypted in place: "+
				"start matchd without a key on it, `watchlist backup FILE`, then restore into a new --data with the key", dataDir)
		}
		opt.Dir = dataDir
		return opt, "unencrypted gallery made before encryption at rest; to encrypt it, back it up and restore it into a new --data directory", nil
	}
	switch {
	case keyFile != "":
		k, loose, err := store.ReadKeyFile(keyFile)
		if err != nil {
			return opt, "", fmt.Errorf("--encryption-key-file: %w", err)
		}
		opt.EncryptionKey = k
		note = "key file " + keyFile
		if loose {
			note += " (WARNING: readable by other users; chmod 600 it)"
		}
		return opt, note, nil
	case envKey != "":
		k, err := store.ParseKey(envKey)
		if err != nil {
			return opt, "", fmt.Errorf("%s: %w", EncryptionKeyEnv, err)
		}
		opt.EncryptionKey = k
		return opt, "environment " + EncryptionKeyEnv, nil
	}
	def := filepath.Join(dataDir, KeyFileName)
	k, loose, err := store.ReadKeyFile(def)
	if err == nil {
		opt.EncryptionKey = k
		note = "key file " + def + " (generated at first start; in production pass --encryption-key-file from a secret store)"
		if loose {
			note += " (WARNING: readable by other users; chmod 600 it)"
		}
		return opt, note, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return opt, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	entries, err := os.ReadDir(opt.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return opt, "", fmt.Errorf("%w: gallery %s: %w", ErrUnavailable, opt.Dir, err)
	}
	if len(entries) > 0 {
		return opt, "", fmt.Errorf("gallery %s exists but has no key: %s is missing; give the key with --encryption-key-file or %s",
			opt.Dir, def, EncryptionKeyEnv)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return opt, "", err
	}
	if opt.EncryptionKey, err = store.GenerateKeyFile(def); err != nil {
		return opt, "", err
	}
	return opt, "NEW master key generated in " + def + " (mode 0600): without it the gallery cannot be read, keep a copy apart from the data; " +
		"in production pass --encryption-key-file from a secret store instead", nil
}

// checkReadable fails unless dir is missing (a first start) or a directory
// whose entries can be listed.
func checkReadable(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: data directory: %w", ErrUnavailable, err)
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("%w: data directory %s: %w", ErrUnavailable, dir, err)
	}
	return nil
}
