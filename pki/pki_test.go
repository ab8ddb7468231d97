package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certWith makes a certificate with the given URIs and OUs, signed by ca.
func certWith(t *testing.T, ca *CA, cn string, uris []string, ous []string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tpl.URIs = append(tpl.URIs, p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestRoleFromCert(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(Request{CommonName: "gate-07", Role: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, certPEM)
	if err := c.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatal(err)
	}
	if id, role, err := RoleFromCert(c); id != "gate-07" || role != "gate" || err != nil {
		t.Fatalf("issued gate cert: %q %q %v", id, role, err)
	}
	for _, tc := range []struct {
		name      string
		cn        string
		uris, ous []string
		id, role  string
		err       string
	}{
		{"OU", "off-1", nil, []string{"Border Force", "bordermatch:role=officer"}, "off-1", "officer", ""},
		{"URI wins over OU", "a", []string{"bordermatch:role=admin"}, []string{"bordermatch:role=gate"}, "a", "admin", ""},
		{"other URIs ignored", "a", []string{"spiffe://agency/gate", "bordermatch:role=gate"}, nil, "a", "gate", ""},
		{"two roles", "a", []string{"bordermatch:role=gate", "bordermatch:role=admin"}, nil, "a", "", "two roles"},
		{"unknown role", "a", []string{"bordermatch:role=root"}, nil, "a", "", "unknown role"},
		{"no role", "b", nil, []string{"Border Force"}, "b", "", "no role"},
		{"no CN", "", []string{"bordermatch:role=gate"}, nil, "serial:2a", "gate", ""},
	} {
		id, role, err := RoleFromCert(certWith(t, ca, tc.cn, tc.uris, tc.ous))
		if id != tc.id || role != tc.role || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q %q %v, want %q %q %q", tc.name, id, role, err, tc.id, tc.role, tc.err)
		}
	}
	if _, _, err := ca.Issue(Request{CommonName: "x", Role: "root"}); err == nil {
		t.Error("issued a certificate for an unknown role")
	}
}

func TestEnsureLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	created, err := EnsureLocal(dir, []string{"localhost", "127.0.0.1", "gate.example"})
	if err != nil || !created {
		t.Fatalf("EnsureLocal: %v %v", created, err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	srvPEM, _ := os.ReadFile(filepath.Join(dir, ServerFile))
	srv := parse(t, srvPEM)
	if err := srv.CheckSignatureFrom(parse(t, caPEM)); err != nil || srv.VerifyHostname("gate.example") != nil || srv.VerifyHostname("127.0.0.1") != nil {
		t.Fatalf("server certificate: %v %v", err, srv.DNSNames)
	}
	admin, _ := os.ReadFile(filepath.Join(dir, AdminFile))
	if _, role, err := RoleFromCert(parse(t, admin)); role != "admin" || err != nil {
		t.Fatalf("admin certificate role %q %v", role, err)
	}
	for _, f := range []string{CAKeyFile, ServerKeyFile, AdminKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	// A second start keeps what is there.
	if created, err := EnsureLocal(dir, nil); created || err != nil {
		t.Fatalf("second EnsureLocal: %v %v", created, err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, CAFile)); string(again) != string(caPEM) {
		t.Fatal("the CA was replaced")
	}
	_, err = LoadCA(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile), true); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientConfig(filepath.Join(dir, ServerFile), "", ""); err != nil {
		t.Fatal(err) // any PEM certificate is a root to the pool
	}
	if _, err := ClientConfig(filepath.Join(dir, ServerKeyFile), "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as CA: %v", err)
	}
}

func FuzzParseRoleClaim(f *testing.F) {
	for _, s := range []string{"bordermatch:role=gate", "bordermatch:role=", "bordermatch:role=admin ", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		role, ok, err := ParseRoleClaim(s)
		if ok != strings.HasPrefix(s, RolePrefix) {
			t.Fatalf("%q: ok %v", s, ok)
		}
		if err == nil && ok && (!ValidRole(role) || RolePrefix+role != s) {
			t.Fatalf("%q accepted as role %q", s, role)
		}
		if err != nil && role != "" {
			t.Fatalf("%q: role %q with error %v", s, role, err)
		}
	})
}
