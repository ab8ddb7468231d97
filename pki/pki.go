// Package pki makes and loads the TLS material of matchd and its clients:
// a local certificate authority for a development or single-site install
// (matchd creates one under <data>/tls on first start), client certificates
// that carry a Bordermatch role, and the server and client tls.Configs.
//
// # Roles in certificates
//
// A client certificate names its role in a URI subject alternative name
//
//	bordermatch:role=gate        (or officer, admin, partner)
//
// or, for CAs that cannot issue URI SANs, in an organisational unit of the
// subject with the same text ("OU=bordermatch:role=gate"). URI SANs win over
// OUs; two different roles in one certificate are refused as ambiguous. The
// caller's identity is the certificate's common name (its serial number if
// it has none), and its key id (KeyID: a digest of its public key) tells
// two certificates with one name apart.
//
// # The register of issued names
//
// A local CA directory keeps a register of the names it issued
// (RegisterFile): matchd certs refuses a name already in it, unless the
// request is a renewal (--renew) for the same role.
//
// The partner role is for another agency's matchd calling this one's
// Federation service (hit/no-hit searches): an agency issues it from its
// own CA to itself (matchd certs --role partner --name <agency>) and its
// partners trust that CA for partner certificates only. A receiving server
// maps any certificate of a partner's CA to role partner whatever the
// certificate claims (package access), so a foreign CA cannot issue its
// partners' admins.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RolePrefix starts a role claim in a URI SAN or an OU.
const RolePrefix = "bordermatch:role="

// Roles a certificate or token may carry.
var Roles = []string{"gate", "officer", "admin", "partner"}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool {
	for _, v := range Roles {
		if r == v {
			return true
		}
	}
	return false
}

// ParseRoleClaim reads "bordermatch:role=ROLE". ok is false when s is not a
// role claim at all; err is set when it is one with an unknown role.
func ParseRoleClaim(s string) (role string, ok bool, err error) {
	rest, found := strings.CutPrefix(s, RolePrefix)
	if !found {
		return "", false, nil
	}
	if !ValidRole(rest) {
		return "", true, fmt.Errorf("unknown role %q in %q (want gate, officer, admin or partner)", rest, s)
	}
	return rest, true, nil
}

// RoleFromCert returns the identity and role a verified client certificate
// carries (see the package comment).
func RoleFromCert(c *x509.Certificate) (identity, role string, err error) {
	identity = c.Subject.CommonName
	if identity == "" {
		identity = "serial:" + c.SerialNumber.Text(16)
	}
	pick := func(claims []string) (string, error) {
		found := ""
		for _, s := range claims {
			r, ok, err := ParseRoleClaim(s)
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			if found != "" && found != r {
				return "", fmt.Errorf("certificate %q claims two roles, %s and %s", identity, found, r)
			}
			found = r
		}
		return found, nil
	}
	uris := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		uris[i] = u.String()
	}
	if role, err = pick(uris); err != nil || role != "" {
		return identity, role, err
	}
	if role, err = pick(c.Subject.OrganizationalUnit); err != nil {
		return identity, "", err
	}
	if role == "" {
		return identity, "", fmt.Errorf("certificate %q carries no role (a URI SAN or OU %sgate|officer|admin|partner)", identity, RolePrefix)
	}
	return identity, role, nil
}

// Files of a local CA directory (<data>/tls).
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
	AdminFile     = "admin.pem"
	AdminKeyFile  = "admin-key.pem"
)

// CA is a certificate authority that can issue certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// EnsureLocal creates, if dir has no CA yet, a local CA and with it a server
// certificate for hosts and an admin client certificate, and returns whether
// it did. Existing files are left alone, so an operator can replace any of
// them with certificates from the agency's CA.
func EnsureLocal(dir string, hosts []string) (created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	ca, err := NewCA("Bordermatch local CA")
	if err != nil {
		return false, err
	}
	cert, key, err := ca.Issue(Request{CommonName: "matchd", Hosts: hosts, Server: true, Validity: 2 * 365 * 24 * time.Hour})
	if err != nil {
		return false, err
	}
	acert, akey, err := ca.Issue(Request{CommonName: "local-admin", Role: "admin", Validity: 2 * 365 * 24 * time.Hour})
	if err != nil {
		return false, err
	}
	caKey, err := keyPEM(ca.Key)
	if err != nil {
		return false, err
	}
	var register []byte
	for _, c := range []struct {
		pem  []byte
		role string
	}{{cert, "server"}, {acert, "admin"}} {
		e, err := IssuedFrom(c.pem, c.role, false)
		if err != nil {
			return false, err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return false, err
		}
		register = append(append(register, b...), '\n')
	}
	// The CA certificate last: its presence is what marks the directory as
	// complete, and a client polling for it never reads a partial set.
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{
		{CAKeyFile, caKey, 0o600}, {ServerFile, cert, 0o644}, {ServerKeyFile, key, 0o600},
		{AdminFile, acert, 0o644}, {AdminKeyFile, akey, 0o600}, {RegisterFile, register, 0o644},
		{CAFile, ca.PEM, 0o644},
	} {
		if err := WriteFileAtomic(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return false, err
		}
	}
	return true, nil
}

// NewCA makes a self-signed ECDSA P-256 CA valid for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Bordermatch"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadCA reads a CA certificate and its key from PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, fmt.Errorf("%s is not an ECDSA CA certificate", certFile)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: b}, nil
}

// Request describes a certificate to issue.
type Request struct {
	CommonName string
	// Role, for a client certificate: put in a URI SAN bordermatch:role=ROLE.
	Role string
	// Hosts, for a server certificate: DNS names and IP addresses.
	Hosts  []string
	Server bool
	// Node, for a cluster node's certificate (NATS with mutual TLS): a
	// server certificate for Hosts that authenticates as a client too,
	// since every NATS server also dials its peers' routes.
	Node     bool
	Validity time.Duration
}

// Issue makes a new key and a certificate for it signed by the CA, both PEM.
func (ca *CA) Issue(r Request) (certOut, keyOut []byte, err error) {
	if r.Role != "" && !ValidRole(r.Role) {
		return nil, nil, fmt.Errorf("unknown role %q (want gate, officer, admin or partner)", r.Role)
	}
	if r.Validity <= 0 {
		r.Validity = 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.CommonName, Organization: []string{"Bordermatch"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(r.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if r.Server || r.Node {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if r.Node {
			tpl.ExtKeyUsage = append(tpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		}
		for _, h := range r.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tpl.IPAddresses = append(tpl.IPAddresses, ip)
			} else if h != "" {
				tpl.DNSNames = append(tpl.DNSNames, h)
			}
		}
	}
	if r.Role != "" {
		u, err := url.Parse(RolePrefix + r.Role)
		if err != nil {
			return nil, nil, err
		}
		tpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	k, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k, nil
}

// LocalHosts are the names a locally generated server certificate covers:
// localhost, the loopback addresses, this machine's name and addresses, and
// the host of the listen address.
func LocalHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		hosts = append(hosts, h)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	return hosts
}

// ServerConfig is the TLS configuration of matchd: its certificate, and the
// CA whose client certificates it accepts. requireCert refuses, during the
// handshake, a client without a certificate; without it (bearer tokens are
// enabled) a client may come without one and must then present a token.
func ServerConfig(certFile, keyFile, clientCAFile string, requireCert bool) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	auth := tls.VerifyClientCertIfGiven
	if requireCert {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   auth,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig is the TLS configuration of a client: the CA that signed the
// server's certificate and, if certFile is set, the client's certificate.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", file)
	}
	return pool, nil
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// WriteFileAtomic writes b to a temporary file, syncs it and renames it to
// name, so a reader sees either nothing or the whole file.
func WriteFileAtomic(name string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
