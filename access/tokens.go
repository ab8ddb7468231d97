package access

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/bordermatch/bordermatch/pki"
)

// MinTokenLength is the shortest plain token a token file may hold: bearer
// tokens are passwords that never expire, so short ones are refused.
const MinTokenLength = 16

// Tokens maps bearer tokens to callers. Only the SHA-256 of each token is
// kept in memory.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash           [sha256.Size]byte
	identity, role string
}

// ReadTokens reads a token file (see ParseTokens).
func ReadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	t, err := ParseTokens(b)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads a token file: one "TOKEN IDENTITY ROLE" per line,
// separated by spaces or tabs; blank lines and lines starting with # are
// skipped. TOKEN is the token itself (at least MinTokenLength characters)
// or "sha256:" and the hex SHA-256 of it, so the file need not hold the
// secret. ROLE is gate, officer or admin.
func ParseTokens(b []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want TOKEN IDENTITY ROLE, found %d fields", n, len(f))
		}
		var e tokenEntry
		if h, ok := strings.CutPrefix(f[0], "sha256:"); ok {
			d, err := hex.DecodeString(h)
			if err != nil || len(d) != sha256.Size {
				return nil, fmt.Errorf("line %d: sha256: wants 64 hex digits", n)
			}
			copy(e.hash[:], d)
		} else {
			if len(f[0]) < MinTokenLength {
				return nil, fmt.Errorf("line %d: token shorter than %d characters", n, MinTokenLength)
			}
			e.hash = sha256.Sum256([]byte(f[0]))
		}
		for _, r := range f[1] {
			if !unicode.IsPrint(r) || len(f[1]) > 128 {
				return nil, fmt.Errorf("line %d: identity must be up to 128 printable characters", n)
			}
		}
		e.identity = f[1]
		if !pki.ValidRole(f[2]) || f[2] == Partner {
			// A partner is only ever a certificate of its own agency's CA.
			return nil, fmt.Errorf("line %d: unknown role %q (want gate, officer or admin)", n, f[2])
		}
		e.role = f[2]
		if prev, dup := seen[e.hash]; dup {
			return nil, fmt.Errorf("line %d: same token as line %d", n, prev)
		}
		seen[e.hash] = n
		t.entries = append(t.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens in it")
	}
	return t, nil
}

// Lookup returns the identity and role of a token. It compares the token's
// hash with every entry, in constant time and without stopping at a match,
// so the time it takes says nothing about which entry, if any, matched.
func (t *Tokens) Lookup(token string) (identity, role string, ok bool) {
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(h[:], t.entries[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", "", false
	}
	return t.entries[found].identity, t.entries[found].role, true
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.entries) }
