package federation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/bordermatch/bordermatch/pki"
)

// Witnesses. Every HeadInterval an agency signs its audit chain's head
// (sequence number and hash) and sends it to each partner, which keeps
// every head it receives (Ledger.KeepHead). Rewriting a whole chain from
// some record on, head included, goes unnoticed by the chain alone; it no
// longer matches the heads the partners hold (watchlist audit verify
// --witness PARTNER), and without a blockchain: each partner is a witness
// that has no reason to collude.
//
// A head is signed with the key of the partner certificate the agency
// calls that partner with. The partner already trusts the agency's CA for
// exactly that certificate (it is how the agency authenticates to it), so
// no other key needs exchanging, and the partner can show a third party a
// head the agency signed, which a head merely received over an
// authenticated channel would not prove.

// headContext starts the signed text, so the signature cannot be taken for
// one over anything else.
const headContext = "bordermatch-audit-head/v1"

// HeadMessage is the text a head's signature covers.
func HeadMessage(agency string, seq uint64, hash string, t time.Time) []byte {
	return fmt.Appendf(nil, "%s\n%s\n%d\n%s\n%s\n", headContext, agency, seq, hash, t.UTC().Format(time.RFC3339Nano))
}

// SignHead signs agency's head (seq, hex hash) at t with cert's key.
func SignHead(agency string, seq uint64, hash string, t time.Time, cert tls.Certificate) (Head, error) {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || len(cert.Certificate) == 0 {
		return Head{}, errors.New("federation: the partner certificate's key cannot sign")
	}
	t = t.UTC()
	msg := HeadMessage(agency, seq, hash, t)
	var sig []byte
	var err error
	if _, ed := signer.(ed25519.PrivateKey); ed {
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	if err != nil {
		return Head{}, fmt.Errorf("federation: signing the audit head: %w", err)
	}
	return Head{Agency: agency, Seq: seq, Hash: hash, Time: t, Cert: cert.Certificate[0], Sig: sig}, nil
}

// VerifyHead checks a head: its certificate chains to the agency's CA as a
// client certificate of role partner valid at the time at (a head arriving:
// now; a head held, checked later: the time it was signed), and its
// signature over HeadMessage verifies with that certificate's key.
func VerifyHead(h Head, ca *x509.Certificate, at time.Time) error {
	if h.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0", ErrInvalid)
	}
	if b, err := hex.DecodeString(h.Hash); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%w: hash %q is not a hex SHA-256", ErrInvalid, h.Hash)
	}
	cert, err := x509.ParseCertificate(h.Cert)
	if err != nil {
		return fmt.Errorf("%w: certificate: %v", ErrBadSignature, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: at}); err != nil {
		return fmt.Errorf("%w: certificate %q: %v", ErrBadSignature, cert.Subject.CommonName, err)
	}
	if _, role, err := pki.RoleFromCert(cert); err != nil || role != "partner" {
		return fmt.Errorf("%w: certificate %q is not a partner certificate", ErrBadSignature, cert.Subject.CommonName)
	}
	msg := HeadMessage(h.Agency, h.Seq, h.Hash, h.Time)
	d := sha256.Sum256(msg)
	ok := false
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, d[:], h.Sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], h.Sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, msg, h.Sig)
	}
	if !ok {
		return fmt.Errorf("%w: head %d of %s", ErrBadSignature, h.Seq, h.Agency)
	}
	return nil
}
