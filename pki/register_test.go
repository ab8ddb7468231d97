package pki

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestRegisterOfOldDirectory: a CA directory made before the register
// existed still knows its own server and admin names, and the first Add
// writes them to the file with the new entry.
func TestRegisterOfOldDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := EnsureLocal(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, RegisterFile)); err != nil {
		t.Fatalf("EnsureLocal wrote no register: %v", err)
	}
	r, err := OpenRegister(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check("local-admin", "gate", false); !errors.Is(err, ErrNameIssued) {
		t.Errorf("local-admin in an old directory: %v, want ErrNameIssued", err)
	}
	ca, err := LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Issue(Request{CommonName: "gate-01", Role: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := IssuedFrom(cert, "gate", false)
	if err != nil {
		t.Fatal(err)
	}
	if e.KeyID != KeyID(parse(t, cert)) || len(e.KeyID) != 16 {
		t.Errorf("entry's key id %q, certificate's %q", e.KeyID, KeyID(parse(t, cert)))
	}
	if err := r.Add(e); err != nil {
		t.Fatal(err)
	}
	again, err := OpenRegister(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]string{"matchd": "server", "local-admin": "admin", "gate-01": "gate"} {
		if got, ok := again.Lookup(name); !ok || got.Role != role {
			t.Errorf("reopened register: %s is %+v (found %v), want role %s", name, got, ok, role)
		}
	}
}
