package lds

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // the hash algorithms an SOD names
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

const tagSOD = 0x77

var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	// id-icao-mrtd-security-ldsSecurityObject
	oidLDSSecurityObject = asn1.ObjectIdentifier{2, 23, 136, 1, 1, 1}
)

// hashAlgorithms are the hash algorithms ICAO 9303 allows in an SOD.
var hashAlgorithms = []struct {
	oid  asn1.ObjectIdentifier
	name string
	hash crypto.Hash
}{
	{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, "SHA-1", crypto.SHA1},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, "SHA-224", crypto.SHA224},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, "SHA-256", crypto.SHA256},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, "SHA-384", crypto.SHA384},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, "SHA-512", crypto.SHA512},
}

// CMS (RFC 5652) structures, as far as the SOD needs them.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue `asn1:"set"`
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue `asn1:"set"`
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     []byte `asn1:"explicit,tag:0"`
}

// ICAO 9303 part 10's LDSSecurityObject.
type ldsSecurityObject struct {
	Version        int
	HashAlgorithm  algorithmIdentifier
	DataGroupHash  []dataGroupHash
	LDSVersionInfo ldsVersionInfo `asn1:"optional"`
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type dataGroupHash struct {
	DataGroupNumber int
	Hash            []byte
}

type ldsVersionInfo struct {
	LDSVersion     string `asn1:"printable"`
	UnicodeVersion string `asn1:"printable"`
}

// SOD is EF.SOD: the LDSSecurityObject the document signer signed, and
// the document signer's certificate. The signature itself is not checked
// here (see the package documentation).
type SOD struct {
	// Version is the LDSSecurityObject's version (0, or 1 with LDS and
	// Unicode versions).
	Version int
	// HashAlgorithm is the hash algorithm's OID ("1.3.14.3.2.26"),
	// HashName its name ("SHA-1").
	HashAlgorithm, HashName string
	hash                    crypto.Hash
	// Hashes maps a data group number to its hash.
	Hashes map[int][]byte
	// LDSVersion and UnicodeVersion are the version 1 object's ("0108",
	// "040000"), "" in version 0.
	LDSVersion, UnicodeVersion string
	// Content is the DER of the LDSSecurityObject (the signed content);
	// it aliases the input.
	Content []byte
	// DocumentSigner is the first certificate of the SignedData; nil when
	// the SignedData carries none.
	DocumentSigner *Certificate
}

// Certificate is a document signer certificate: its names, serial number
// and validity read by hand from the DER, and what crypto/x509 makes of
// it. crypto/x509 refuses some document signer certificates that are in
// use: the BSI 2008 test passport's has an ECDSA key with explicit
// (brainpool) curve parameters.
type Certificate struct {
	// DER is the certificate; it aliases the input.
	DER []byte
	// Subject and Issuer are the distinguished names in RFC 2253 form.
	Subject, Issuer     string
	SerialNumber        *big.Int
	NotBefore, NotAfter time.Time
	// X509 is the certificate parsed by crypto/x509, nil when it refused
	// it, saying why in X509Error.
	X509      *x509.Certificate
	X509Error string
}

type certificateDER struct {
	TBS                tbsCertificate
	SignatureAlgorithm asn1.RawValue
	Signature          asn1.BitString
}

type tbsCertificate struct {
	Version            int `asn1:"optional,explicit,default:0,tag:0"`
	SerialNumber       *big.Int
	SignatureAlgorithm asn1.RawValue
	Issuer             pkix.RDNSequence
	Validity           struct{ NotBefore, NotAfter time.Time }
	Subject            pkix.RDNSequence
	PublicKey          asn1.RawValue
	IssuerUniqueID     asn1.BitString `asn1:"optional,tag:1"`
	SubjectUniqueID    asn1.BitString `asn1:"optional,tag:2"`
	Extensions         asn1.RawValue  `asn1:"optional,explicit,tag:3"`
}

// certificate reads the first certificate of der (the SignedData's
// certificates field's value), at offset off.
func (p *parser) certificate(der []byte, off int) (*Certificate, error) {
	var c certificateDER
	rest, err := asn1.Unmarshal(der, &c)
	if err != nil {
		return nil, p.fail(ErrFormat, off, "", "document signer certificate", "%v", err)
	}
	var issuer, subject pkix.Name
	issuer.FillFromRDNSequence(&c.TBS.Issuer)
	subject.FillFromRDNSequence(&c.TBS.Subject)
	cert := &Certificate{
		DER: der[:len(der)-len(rest)], Subject: subject.String(), Issuer: issuer.String(),
		SerialNumber: c.TBS.SerialNumber, NotBefore: c.TBS.Validity.NotBefore, NotAfter: c.TBS.Validity.NotAfter,
	}
	if cert.X509, err = x509.ParseCertificate(cert.DER); err != nil {
		cert.X509Error = err.Error()
	}
	return cert, nil
}

// ParseSOD reads EF.SOD (tag 77): a CMS ContentInfo holding SignedData
// (RFC 5652) whose encapsulated content is an ICAO LDSSecurityObject:
// version, hash algorithm (SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512)
// and a hash per data group (1–16, each at most once, of the algorithm's
// size). The document signer certificate, when the SignedData carries
// one, must be a certificate (crypto/x509 may still refuse it: see
// Certificate). Bytes after the element are ignored.
// The DER is read with encoding/asn1, whose errors carry no offset: such
// an error gives the offset of the element being read.
func ParseSOD(b []byte) (*SOD, error) {
	p := &parser{in: "SOD", b: b}
	top, err := p.top(tagSOD, "EF.SOD")
	if err != nil {
		return nil, err
	}
	if !top.Constructed {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "primitive; EF.SOD holds a ContentInfo")
	}
	if err := p.walk([]ber.TLV{top}); err != nil {
		return nil, err
	}
	var ci contentInfo
	if err := p.der(top.Val, top.VOff, &ci, "ContentInfo"); err != nil {
		return nil, err
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, p.fail(ErrFormat, top.VOff, top.Name(), "ContentInfo content type", "%v, want signedData (%v)", ci.ContentType, oidSignedData)
	}
	var sd signedData
	if err := p.der(ci.Content.Bytes, p.offset(ci.Content.Bytes), &sd, "SignedData"); err != nil {
		return nil, err
	}
	eci := sd.EncapContentInfo
	if !eci.EContentType.Equal(oidLDSSecurityObject) {
		return nil, p.fail(ErrFormat, p.offset(ci.Content.Bytes), "", "SignedData content type", "%v, want ldsSecurityObject (%v)", eci.EContentType, oidLDSSecurityObject)
	}
	off := p.offset(eci.EContent)
	var lso ldsSecurityObject
	if err := p.der(eci.EContent, off, &lso, "LDSSecurityObject"); err != nil {
		return nil, err
	}
	s := &SOD{Version: lso.Version, Content: eci.EContent, Hashes: map[int][]byte{},
		LDSVersion: lso.LDSVersionInfo.LDSVersion, UnicodeVersion: lso.LDSVersionInfo.UnicodeVersion}
	for _, a := range hashAlgorithms {
		if a.oid.Equal(lso.HashAlgorithm.Algorithm) {
			s.HashAlgorithm, s.HashName, s.hash = a.oid.String(), a.name, a.hash
		}
	}
	if s.HashName == "" {
		return nil, p.fail(ErrUnsupported, off, "", "LDSSecurityObject hash algorithm", "%v is not SHA-1 or SHA-2", lso.HashAlgorithm.Algorithm)
	}
	for _, h := range lso.DataGroupHash {
		if h.DataGroupNumber < 1 || h.DataGroupNumber > 16 {
			return nil, p.fail(ErrFormat, off, "", "LDSSecurityObject data group number", "%d is not 1–16", h.DataGroupNumber)
		}
		if _, dup := s.Hashes[h.DataGroupNumber]; dup {
			return nil, p.fail(ErrFormat, off, "", "LDSSecurityObject data group number", "DG%d hashed twice", h.DataGroupNumber)
		}
		if len(h.Hash) != s.hash.Size() {
			return nil, p.fail(ErrFormat, p.offset(h.Hash), "", fmt.Sprintf("DG%d hash", h.DataGroupNumber), "%d bytes, %s gives %d", len(h.Hash), s.HashName, s.hash.Size())
		}
		s.Hashes[h.DataGroupNumber] = h.Hash
	}
	if len(s.Hashes) == 0 {
		return nil, p.fail(ErrFormat, off, "", "LDSSecurityObject", "no data group hash")
	}
	if len(sd.Certificates.Bytes) > 0 {
		if s.DocumentSigner, err = p.certificate(sd.Certificates.Bytes, p.offset(sd.Certificates.Bytes)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// der unmarshals b, at offset off of the input, into v; nothing may
// follow.
func (p *parser) der(b []byte, off int, v any, what string) error {
	rest, err := asn1.Unmarshal(b, v)
	if err != nil {
		return p.fail(ErrFormat, off, "", what, "%v", err)
	}
	if len(rest) != 0 {
		return p.fail(ErrFormat, off+len(b)-len(rest), "", what, "%d bytes after it", len(rest))
	}
	return nil
}

// offset is the offset of sub in the input, when sub is a slice of it
// (encoding/asn1 returns slices of its input), else 0.
func (p *parser) offset(sub []byte) int {
	if len(sub) == 0 || cap(sub) > cap(p.b) {
		return 0
	}
	off := cap(p.b) - cap(sub)
	if off+len(sub) <= len(p.b) && bytes.Equal(p.b[off:off+len(sub)], sub) && &p.b[off] == &sub[0] {
		return off
	}
	return 0
}

// HashOf is the hash of a data group's file, tag and length included, with
// the SOD's algorithm.
func (s *SOD) HashOf(contents []byte) []byte {
	h := s.hash.New()
	h.Write(contents)
	return h.Sum(nil)
}

// CheckHash compares the hash of a data group's file as read (tag and
// length included; pass exactly the element, or the file with its padding
// if that is what was hashed) with the SOD's hash for data group dg: the
// hash half of passive authentication. A difference, or no hash for dg,
// is an *Error with Input "DG<n>" wrapping ErrHashMismatch.
func (s *SOD) CheckHash(dg int, contents []byte) error {
	in := fmt.Sprintf("DG%d", dg)
	want, ok := s.Hashes[dg]
	if !ok {
		return &Error{Input: in, Field: s.HashName + " hash", Err: ErrHashMismatch, Detail: "the SOD holds no hash for " + in}
	}
	if got := s.HashOf(contents); !bytes.Equal(got, want) {
		return &Error{Input: in, Field: s.HashName + " hash", Err: ErrHashMismatch, Detail: fmt.Sprintf("%X, the SOD has %X", got, want)}
	}
	return nil
}
