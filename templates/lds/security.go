package lds

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"math/big"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

const (
	tagDG14 = 0x6E
	tagDG15 = 0x6F
	tagSET  = 0x31
	tagSEQ  = 0x30
)

// DG14 is EF.DG14: the SecurityInfos of chip authentication, PACE and
// terminal authentication, not interpreted here.
type DG14 struct {
	// SecurityInfos is the DER of the SecurityInfos SET (tag 31, length
	// and value); it aliases the input.
	SecurityInfos []byte
	// Protocols are the protocol OIDs of its SecurityInfo elements, in
	// order ("0.4.0.127.0.7.2.2.1.2").
	Protocols []string
}

// ParseDG14 reads EF.DG14 (tag 6E): one SecurityInfos SET of SEQUENCEs,
// each starting with its protocol OID, walked to its end. Bytes after the
// element are ignored.
func ParseDG14(b []byte) (*DG14, error) {
	p := &parser{in: "DG14", b: b}
	top, err := p.top(tagDG14, "EF.DG14")
	if err != nil {
		return nil, err
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 || kids[0].Tag != tagSET {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "holds %s, want one SecurityInfos SET (31)", tagList(kids))
	}
	set := kids[0]
	infos, err := p.children(set)
	if err != nil {
		return nil, err
	}
	d := &DG14{SecurityInfos: b[set.Off:set.End()]}
	for i, info := range infos {
		if info.Tag != tagSEQ {
			return nil, p.fail(ErrFormat, info.Off, info.Name(), "SecurityInfo", "element %d of the SET is not a SEQUENCE", i+1)
		}
		fields, err := p.children(info)
		if err != nil {
			return nil, err
		}
		if err := p.walk(fields); err != nil {
			return nil, err
		}
		oid, err := p.oid(fields, info, "SecurityInfo protocol")
		if err != nil {
			return nil, err
		}
		d.Protocols = append(d.Protocols, oid)
	}
	return d, nil
}

// walk reads every constructed element below kids to its end.
func (p *parser) walk(kids []ber.TLV) error {
	for _, k := range kids {
		if !k.Constructed {
			continue
		}
		sub, err := p.children(k)
		if err != nil {
			return err
		}
		if err := p.walk(sub); err != nil {
			return err
		}
	}
	return nil
}

// oid reads the OBJECT IDENTIFIER that must open parent's fields.
func (p *parser) oid(fields []ber.TLV, parent ber.TLV, field string) (string, error) {
	if len(fields) == 0 || fields[0].Tag != 0x06 {
		return "", p.fail(ErrFormat, parent.Off, parent.Name(), field, "does not start with an OBJECT IDENTIFIER (06)")
	}
	var id asn1.ObjectIdentifier
	f := fields[0]
	if rest, err := asn1.Unmarshal(p.b[f.Off:f.End()], &id); err != nil || len(rest) != 0 {
		return "", p.fail(ErrFormat, f.Off, f.Name(), field, "not an OBJECT IDENTIFIER: %v", err)
	}
	return id.String(), nil
}

// DG15 is EF.DG15: the chip's active authentication public key.
type DG15 struct {
	// SubjectPublicKeyInfo is its DER (tag 30, length and value); it
	// aliases the input.
	SubjectPublicKeyInfo []byte
	// PublicKey is what crypto/x509.ParsePKIXPublicKey makes of it: an
	// *rsa.PublicKey, *ecdsa.PublicKey…
	PublicKey any
	// Quirk says what was read leniently, "" when nothing was: an RSA
	// modulus written as a negative INTEGER (no leading zero byte), as
	// in the BSI 2008 test passport, which crypto/x509 refuses, is read
	// as the unsigned number it is meant to be.
	Quirk string
}

// ParseDG15 reads EF.DG15 (tag 6F): a SubjectPublicKeyInfo, parsed with
// crypto/x509.ParsePKIXPublicKey (a key it cannot read, such as an EC key
// with explicit curve parameters, gives ErrUnsupported). Bytes after the
// element are ignored.
func ParseDG15(b []byte) (*DG15, error) {
	p := &parser{in: "DG15", b: b}
	top, err := p.top(tagDG15, "EF.DG15")
	if err != nil {
		return nil, err
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 || kids[0].Tag != tagSEQ {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "holds %s, want one SubjectPublicKeyInfo (30)", tagList(kids))
	}
	k := kids[0]
	if err := p.walk(kids); err != nil {
		return nil, err
	}
	d := &DG15{SubjectPublicKeyInfo: b[k.Off:k.End()]}
	if d.PublicKey, err = x509.ParsePKIXPublicKey(d.SubjectPublicKeyInfo); err != nil {
		key, ok := lenientRSA(d.SubjectPublicKeyInfo)
		if !ok {
			return nil, p.fail(ErrUnsupported, k.Off, k.Name(), "SubjectPublicKeyInfo", "crypto/x509: %v", err)
		}
		d.PublicKey, d.Quirk = key, "RSA modulus written as a negative INTEGER, read as unsigned"
	}
	return d, nil
}

var oidRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

// lenientRSA reads an RSA SubjectPublicKeyInfo whose modulus lacks the
// leading zero byte DER needs for a positive INTEGER.
func lenientRSA(spki []byte) (*rsa.PublicKey, bool) {
	var info struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue `asn1:"optional"`
		}
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(spki, &info); err != nil || len(rest) != 0 || !info.Algorithm.Algorithm.Equal(oidRSA) {
		return nil, false
	}
	var key struct{ N, E asn1.RawValue }
	if rest, err := asn1.Unmarshal(info.PublicKey.RightAlign(), &key); err != nil || len(rest) != 0 ||
		key.N.Tag != asn1.TagInteger || key.E.Tag != asn1.TagInteger || len(key.N.Bytes) == 0 || key.N.Bytes[0]&0x80 == 0 {
		return nil, false
	}
	var e big.Int
	e.SetBytes(key.E.Bytes)
	if len(key.E.Bytes) == 0 || key.E.Bytes[0]&0x80 != 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, false
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(key.N.Bytes), E: int(e.Int64())}, true
}
