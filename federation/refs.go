package federation

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bordermatch/bordermatch/pki"
)

// SecretFile is the default name of the reference ids' key in the data
// directory.
const SecretFile = "federation.key"

// LoadOrCreateSecret reads the reference ids' HMAC key (32 bytes, hex),
// creating it (mode 0600) when the file does not exist.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("federation: writing the reference key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("federation: reference key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("federation: reference key %s: want at least 16 bytes as hex", path)
	}
	return key, nil
}

// RefPrefix starts every reference id.
const RefPrefix = "ref-"

var refEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewReferenceID returns a reference id for subject found by partner's
// request: HMAC-SHA256 under key of the partner, the request id, the
// subject and a fresh random nonce, cut to 160 bits. Without the key and
// the ledger it names nothing; with the nonce, the same subject found by
// the same request twice still gets two unrelated ids, so references
// cannot be linked across requests.
func NewReferenceID(key []byte, partner, requestID, subject string) (string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	for _, part := range []string{"bordermatch-reference/v1", partner, requestID, subject} {
		fmt.Fprintf(m, "%d:%s", len(part), part)
	}
	m.Write(nonce)
	sum := m.Sum(nil)
	return RefPrefix + strings.ToLower(refEncoding.EncodeToString(sum[:20])), nil
}

// ValidReferenceID reports whether id has the form NewReferenceID gives.
func ValidReferenceID(id string) bool {
	rest, ok := strings.CutPrefix(id, RefPrefix)
	if !ok || len(rest) != 32 {
		return false
	}
	_, err := refEncoding.DecodeString(strings.ToUpper(rest))
	return err == nil
}
