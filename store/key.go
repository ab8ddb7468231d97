package store

// Encryption at rest.
//
// Badger encrypts every table, write-ahead log and value log block with AES
// in CTR mode under a data key; the data keys live in the KEYREGISTRY file of
// the database directory, encrypted with the master key given to Open.
// Badger starts a new data key every Options.DataKeyRotation (10 days by
// default) and keeps every old one, since older files still need them. The
// master key itself changes offline with RotateKey, which rewrites only
// KEYREGISTRY: the data keys, and so every other file, stay as they are.
//
// Master keys are written as hexadecimal text (32, 48 or 64 hex digits for
// AES-128, -192 or -256; `openssl rand -hex 32` makes one), so a key file
// and an environment variable hold the same form.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

func checkKeyLen(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: encryption key is %d bytes; want 16, 24 or 32 (AES-128, -192, -256)", ErrInvalid, len(k))
}

// ParseKey decodes a master key written as hex text (surrounding white space
// ignored).
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	k, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: encryption key is not hex text (want 32, 48 or 64 hex digits, e.g. from `openssl rand -hex 32`)", ErrInvalid)
	}
	if err := checkKeyLen(k); err != nil {
		return nil, err
	}
	return k, nil
}

// ReadKeyFile reads a master key file (hex text). It also reports whether
// the file can be read by other users than its owner, which the caller
// should warn about.
func ReadKeyFile(path string) (key []byte, groupOrWorldReadable bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("store: reading key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	return k, fi.Mode().Perm()&0o077 != 0, nil
}

// GenerateKeyFile writes a new random 256-bit master key to path (mode 0600,
// synced), failing if the file exists.
func GenerateKeyFile(path string) ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: creating key file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(k) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("store: writing key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}

// RotateKey re-encrypts the data keys of the gallery in dir under newKey:
// what `badger rotate` does, with the directory locked so that no running
// matchd has it open. oldKey must be the current master key; nil for a
// gallery that is not encrypted is refused, because Badger wrote its files
// in the clear and a new registry key would not encrypt them. After
// RotateKey only newKey opens the gallery; the old key file can be
// destroyed.
func RotateKey(dir string, oldKey, newKey []byte) error {
	if err := checkKeyLen(oldKey); err != nil {
		return fmt.Errorf("old key: %w", err)
	}
	if err := checkKeyLen(newKey); err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, badger.KeyRegistryFileName)); err != nil {
		return fmt.Errorf("store: %s is not a Badger gallery: %w", dir, err)
	}
	// Badger holds an exclusive flock on the directory itself while open.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("%w: %s (stop matchd before rotating the key)", ErrLocked, dir)
	}
	defer unix.Flock(int(d.Fd()), unix.LOCK_UN)

	reg, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: oldKey})
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return fmt.Errorf("%w: the old key does not open %s", ErrKeyMismatch, dir)
		}
		return fmt.Errorf("store: reading key registry: %w", err)
	}
	if err := badger.WriteKeyRegistry(reg, badger.KeyRegistryOptions{Dir: dir, EncryptionKey: newKey}); err != nil {
		return fmt.Errorf("store: writing key registry: %w", err)
	}
	// Prove it: the new key must open the registry.
	if _, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true, EncryptionKey: newKey}); err != nil {
		return fmt.Errorf("store: key registry does not open with the new key after rotation: %w", err)
	}
	return nil
}
