// Package federation is the state and the rules of Prüm II-style
// hit/no-hit searches between agencies (README "Searching partner agencies
// (hit/no-hit)"), without gRPC services of its own (server/federation.go
// serves them):
//
//   - the configuration (Config: this agency's name, its partners with
//     their addresses, CAs and the certificate to call them with, what core
//     data is released, the deadlines);
//   - reference ids (refs.go): HMAC-SHA256 under a per-server secret of the
//     partner, the request, the subject and a random nonce, so a reference
//     names nothing and two searches for one subject get unrelated ones;
//   - the ledger (ledger.go): references issued (reference → subject,
//     partner, request, scores, expiry), their review (pending, confirmed,
//     rejected) and release, the release deadline, the references this
//     agency was given by partners, and the audit-chain heads partners
//     sent — kept in the gallery's Badger store (store.FederationKV)
//     through the small KV interface, so they survive a restart;
//   - signed audit heads (witness.go) and the outbound client (client.go).
package federation

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults.
const (
	DefaultReleaseDeadline = 48 * time.Hour
	DefaultReferenceTTL    = 30 * 24 * time.Hour
	DefaultHeadInterval    = 10 * time.Minute
	DefaultSweepInterval   = time.Minute
	DefaultCallTimeout     = 30 * time.Second
	DefaultMaxCandidates   = 5
	MaxCandidates          = 20
)

// Core data fields a configuration may release.
const (
	FieldName        = "name"
	FieldDateOfBirth = "date_of_birth"
	FieldNationality = "nationality"
	FieldReason      = "reason" // the subject's watchlists
)

// DefaultRelease: every field.
var DefaultRelease = []string{FieldName, FieldDateOfBirth, FieldNationality, FieldReason}

// Config is a matchd's federation configuration (matchd --federation FILE).
type Config struct {
	// Agency is this agency's name, as its partners call it (they write it
	// as the name of their partner entry).
	Agency string `yaml:"agency"`
	// Partners are the agencies that may search this one, and that this
	// one may search.
	Partners []Partner `yaml:"partners"`
	// Release are the core data fields released for a confirmed
	// reference: name, date_of_birth, nationality, reason.
	Release []string `yaml:"release"`
	// DateOfBirthKeys and NationalityKeys are the subject metadata keys
	// the date of birth and the nationality are read from, first found.
	DateOfBirthKeys []string `yaml:"date_of_birth_keys"`
	NationalityKeys []string `yaml:"nationality_keys"`
	// ReleaseDeadline: a partner's request for the core data of a
	// reference must be answered (confirmed or rejected by an officer)
	// within it; past it, a metric and an audit record say so.
	ReleaseDeadline time.Duration `yaml:"release_deadline"`
	// ReferenceTTL: a reference issued is forgotten after it (the partner
	// gets NOT_FOUND).
	ReferenceTTL time.Duration `yaml:"reference_ttl"`
	// HeadInterval: how often this agency's signed audit head goes to every
	// partner.
	HeadInterval time.Duration `yaml:"head_interval"`
	// SweepInterval: how often missed deadlines and expired references are
	// looked for.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// CallTimeout bounds a call to a partner.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// MaxCandidates: references in an answer when the partner asks for 0.
	MaxCandidates int `yaml:"max_candidates"`
	// SecretFile holds the reference ids' HMAC key (created at first start
	// when missing); empty: DATA/federation.key.
	SecretFile string `yaml:"secret_file"`
}

// Partner is another agency's matchd.
type Partner struct {
	// Name is how this agency calls the partner (audit records, metrics,
	// watchlist search --partner NAME).
	Name string `yaml:"name"`
	// Address is the partner matchd's gRPC host:port.
	Address string `yaml:"address"`
	// ServerName, if set, is the name its server certificate is checked
	// for (default: Address's host).
	ServerName string `yaml:"server_name,omitempty"`
	// CA is the partner agency's CA certificate (PEM file): client
	// certificates it issued are role partner here (never anything
	// else), and the partner's server certificate must chain to it.
	CA string `yaml:"ca"`
	// Cert and Key are the certificate this agency calls the partner with:
	// issued by this agency's own CA with role partner (matchd certs
	// --role partner --name AGENCY), which the partner trusts as its
	// partner CA. Its key also signs the audit heads sent to the partner.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DefaultConfig has the defaults and no partners.
func DefaultConfig() Config {
	return Config{
		Release:         slices.Clone(DefaultRelease),
		DateOfBirthKeys: []string{"date_of_birth", "dob", "birth_date"},
		NationalityKeys: []string{"nationality", "citizenship"},
		ReleaseDeadline: DefaultReleaseDeadline,
		ReferenceTTL:    DefaultReferenceTTL,
		HeadInterval:    DefaultHeadInterval,
		SweepInterval:   DefaultSweepInterval,
		CallTimeout:     DefaultCallTimeout,
		MaxCandidates:   DefaultMaxCandidates,
	}
}

var agencyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate names the first unusable field. Files are read by Load.
func (c *Config) Validate() error {
	switch {
	case !agencyName.MatchString(c.Agency):
		return fmt.Errorf("federation: agency %q: want 1..64 letters, digits, '.', '_', '-'", c.Agency)
	case c.ReleaseDeadline <= 0:
		return fmt.Errorf("federation: release_deadline %v: want a positive duration such as 48h", c.ReleaseDeadline)
	case c.ReferenceTTL <= 0:
		return fmt.Errorf("federation: reference_ttl %v: want a positive duration such as 720h", c.ReferenceTTL)
	case c.ReferenceTTL < c.ReleaseDeadline:
		return fmt.Errorf("federation: reference_ttl %v: want at least release_deadline (%v)", c.ReferenceTTL, c.ReleaseDeadline)
	case c.HeadInterval <= 0:
		return fmt.Errorf("federation: head_interval %v: want a positive duration such as 10m", c.HeadInterval)
	case c.SweepInterval <= 0:
		return fmt.Errorf("federation: sweep_interval %v: want a positive duration such as 1m", c.SweepInterval)
	case c.CallTimeout <= 0:
		return fmt.Errorf("federation: call_timeout %v: want a positive duration such as 30s", c.CallTimeout)
	case c.MaxCandidates < 1 || c.MaxCandidates > MaxCandidates:
		return fmt.Errorf("federation: max_candidates %d: want 1..%d", c.MaxCandidates, MaxCandidates)
	}
	for _, f := range c.Release {
		if !slices.Contains(DefaultRelease, f) {
			return fmt.Errorf("federation: release: unknown field %q (want some of %v)", f, DefaultRelease)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Partners {
		at := fmt.Sprintf("federation: partners[%d]", i)
		switch {
		case !agencyName.MatchString(p.Name):
			return fmt.Errorf("%s: name %q: want 1..64 letters, digits, '.', '_', '-'", at, p.Name)
		case p.Name == c.Agency:
			return fmt.Errorf("%s: name %q is this agency's own", at, p.Name)
		case seen[p.Name]:
			return fmt.Errorf("%s: name %q: given twice", at, p.Name)
		case p.CA == "":
			return fmt.Errorf("%s (%s): ca: want the partner agency's CA certificate file (PEM)", at, p.Name)
		case p.Cert == "" || p.Key == "":
			return fmt.Errorf("%s (%s): cert and key: want this agency's partner certificate and key (matchd certs --role partner --name %s)", at, p.Name, c.Agency)
		}
		if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" || port == "" {
			return fmt.Errorf("%s (%s): address %q: want host:port of the partner's matchd", at, p.Name, p.Address)
		}
		seen[p.Name] = true
	}
	return nil
}

// Partner returns the partner named name.
func (c *Config) Partner(name string) (Partner, bool) {
	for _, p := range c.Partners {
		if p.Name == name {
			return p, true
		}
	}
	return Partner{}, false
}

// ReadConfig reads a YAML configuration over the defaults (unknown keys
// are refused) and validates it. Relative file names in it are taken from
// the file's directory.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("federation config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("federation config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	abs := func(f *string) {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(dir, *f)
		}
	}
	abs(&c.SecretFile)
	for i := range c.Partners {
		p := &c.Partners[i]
		abs(&p.CA)
		abs(&p.Cert)
		abs(&p.Key)
	}
	return c, nil
}

// ParseConfig reads a YAML configuration over the defaults and validates
// it.
func ParseConfig(b []byte) (Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	c := DefaultConfig()
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Loaded is a partner with its files read.
type Loaded struct {
	Partner
	// CACert is the partner agency's CA.
	CACert *x509.Certificate
	// Client is this agency's certificate for calling the partner (and
	// signing heads sent to it).
	Client tls.Certificate
}

// Load reads every partner's CA, certificate and key.
func (c *Config) Load() ([]Loaded, error) {
	var out []Loaded
	for _, p := range c.Partners {
		ca, err := ReadCACert(p.CA)
		if err != nil {
			return nil, fmt.Errorf("federation: partner %s: %w", p.Name, err)
		}
		pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("federation: partner %s: cert/key: %w", p.Name, err)
		}
		if pair.Leaf == nil {
			if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, fmt.Errorf("federation: partner %s: cert: %w", p.Name, err)
			}
		}
		for _, o := range out {
			if bytes.Equal(o.CACert.Raw, ca.Raw) {
				// A certificate of it could not be told apart.
				return nil, fmt.Errorf("federation: partners %s and %s have the same CA (%q): give each agency its own", o.Name, p.Name, ca.Subject.CommonName)
			}
		}
		out = append(out, Loaded{Partner: p, CACert: ca, Client: pair})
	}
	return out, nil
}

// CheckNotOwn refuses partners whose CA is among the certificates of
// ownCAFile, this agency's client CA: every certificate of this agency
// would be taken for that partner's.
func CheckNotOwn(partners []Loaded, ownCAFile string) error {
	b, err := os.ReadFile(ownCAFile)
	if err != nil {
		return fmt.Errorf("federation: this agency's CA: %w", err)
	}
	for len(b) > 0 {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		for _, p := range partners {
			if bytes.Equal(blk.Bytes, p.CACert.Raw) {
				return fmt.Errorf("federation: partner %s: its CA %s is this agency's own client CA (%s): a partner's CA must be the partner's", p.Name, p.CA, ownCAFile)
			}
		}
	}
	return nil
}

// ReadCACert reads the one CA certificate of a PEM file.
func ReadCACert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", file)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", file, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA certificate %s: %q is not a CA certificate", file, cert.Subject.CommonName)
	}
	return cert, nil
}
