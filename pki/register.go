package pki

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KeyID names a certificate's key: the first 8 bytes, in hex, of the
// SHA-256 of its SubjectPublicKeyInfo. Unlike the common name, a caller
// cannot choose it without holding the private key; unlike issuer and
// serial, it stays the same when a certificate is re-issued for the same
// key, so a renewed client keeps its identity in the audit trail.
func KeyID(c *x509.Certificate) string {
	d := KeyDigest(c)
	return hex.EncodeToString(d[:8])
}

// KeyDigest is the whole SHA-256 of a certificate's SubjectPublicKeyInfo;
// KeyID is its first 8 bytes.
func KeyDigest(c *x509.Certificate) [sha256.Size]byte {
	return sha256.Sum256(c.RawSubjectPublicKeyInfo)
}

// RegisterFile, in a local CA's directory, lists the names the CA issued
// certificates to, one JSON object a line, oldest first. matchd certs
// refuses a name already in it unless the request is a renewal.
const RegisterFile = "issued.jsonl"

// Issued is one line of the register.
type Issued struct {
	Name string `json:"name"`
	// Role: gate, officer, admin, partner; node for a cluster node's
	// certificate, server for matchd's own.
	Role     string    `json:"role"`
	Serial   string    `json:"serial"`
	KeyID    string    `json:"key_id"`
	IssuedAt time.Time `json:"issued_at"`
	NotAfter time.Time `json:"not_after"`
	Renewal  bool      `json:"renewal,omitempty"`
}

// IssuedFrom describes a PEM certificate for the register.
func IssuedFrom(certPEM []byte, role string, renewal bool) (Issued, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return Issued{}, errors.New("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return Issued{}, err
	}
	return Issued{
		Name: c.Subject.CommonName, Role: role, Serial: c.SerialNumber.Text(16), KeyID: KeyID(c),
		IssuedAt: time.Now().UTC().Truncate(time.Second), NotAfter: c.NotAfter.UTC(), Renewal: renewal,
	}, nil
}

// Register is a local CA's register of issued names.
type Register struct {
	path    string
	entries []Issued
	// seeded: the file did not exist and entries were read from the
	// certificates EnsureLocal leaves in the directory; the next Add
	// writes them first.
	seeded bool
}

// OpenRegister reads dir's register. A directory made before the register
// existed has none: its server and admin certificates (EnsureLocal's, if
// still there) are then taken as its first entries; names issued from it
// since are unknown to it.
func OpenRegister(dir string) (*Register, error) {
	r := &Register{path: filepath.Join(dir, RegisterFile)}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		r.seeded = true
		for _, f := range []struct{ file, role string }{{ServerFile, "server"}, {AdminFile, ""}} {
			pemBytes, err := os.ReadFile(filepath.Join(dir, f.file))
			if err != nil {
				continue
			}
			role := f.role
			if role == "" {
				if blk, _ := pem.Decode(pemBytes); blk != nil {
					if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
						_, role, _ = RoleFromCert(c)
					}
				}
			}
			if e, err := IssuedFrom(pemBytes, role, false); err == nil {
				r.entries = append(r.entries, e)
			}
		}
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("register of issued names: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Issued
		if err := json.Unmarshal(line, &e); err != nil || e.Name == "" {
			return nil, fmt.Errorf("register of issued names %s: line %d is not an entry", r.path, n)
		}
		r.entries = append(r.entries, e)
	}
	return r, sc.Err()
}

// Lookup returns the last entry of name, compared without regard to case
// (gate-07 and Gate-07 read alike in an audit table).
func (r *Register) Lookup(name string) (Issued, bool) {
	for i := len(r.entries) - 1; i >= 0; i-- {
		if strings.EqualFold(r.entries[i].Name, name) {
			return r.entries[i], true
		}
	}
	return Issued{}, false
}

// ErrNameIssued is wrapped by Check's refusal of a name already issued.
var ErrNameIssued = errors.New("name already issued")

// Check says whether a certificate for name and role may be issued: a new
// name may; a name in the register only as a renewal, and a renewal keeps
// the role (a holder who needs another role is another caller, with a
// name of its own).
func (r *Register) Check(name, role string, renewal bool) error {
	prev, ok := r.Lookup(name)
	switch {
	case !ok && renewal:
		return fmt.Errorf("%q is not in the register of issued names, so there is nothing to renew: issue it without renewing", name)
	case !ok:
		return nil
	case !renewal:
		return fmt.Errorf("%w: %q was issued on %s (role %s, key id %s); another certificate with this name would be a second caller under one name: choose another name, or renew it (same role)",
			ErrNameIssued, prev.Name, prev.IssuedAt.Format(time.DateOnly), prev.Role, prev.KeyID)
	case prev.Role != role:
		return fmt.Errorf("%w: %q is a %s certificate; a renewal keeps the role: give the %s certificate a name of its own",
			ErrNameIssued, prev.Name, prev.Role, role)
	}
	return nil
}

// Add appends e to the register and syncs it.
func (r *Register) Add(e Issued) error {
	pending := []Issued{e}
	if r.seeded {
		pending = append(append([]Issued(nil), r.entries...), e)
	}
	var buf bytes.Buffer
	for _, p := range pending {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		buf.Write(append(b, '\n'))
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("register of issued names: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("register of issued names: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("register of issued names: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("register of issued names: %w", err)
	}
	r.entries = append(r.entries, e)
	r.seeded = false
	return nil
}
