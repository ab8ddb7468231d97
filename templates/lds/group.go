package lds

import (
	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

// Biometric information template tags (ICAO 9303 part 10), as in DG2.
const (
	tagBIGT     = 0x7F61 // biometric information group template
	tagCount    = 0x02   // number of instances
	tagBIT      = 0x7F60 // biometric information template
	tagBHT      = 0xA1   // biometric header template
	tagBDB      = 0x5F2E // biometric data block
	tagBDBEnc   = 0x7D   // enciphered biometric data block
	tagBioType  = 0x81   // biometric type, in the BHT
	maxTemplate = 255    // the number of instances is one byte
)

// group reads a biometric data group (DG3, DG4: tag dgTag / 7F61 / 02 /
// 7F60…) and returns the value of each template's biometric data block
// (5F2E); the header's biometric type, when present, must be bioType.
func (p *parser) group(dgTag uint32, what string, bioType byte, bioName string) ([]ber.TLV, error) {
	top, err := p.top(dgTag, what)
	if err != nil {
		return nil, err
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 || kids[0].Tag != tagBIGT {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "holds %s, want one biometric information group template (7F61)", tagList(kids))
	}
	g := kids[0]
	if kids, err = p.children(g); err != nil {
		return nil, err
	}
	if len(kids) == 0 || kids[0].Tag != tagCount {
		return nil, p.fail(ErrFormat, g.Off, g.Name(), "", "does not start with the number of instances (tag 02)")
	}
	c := kids[0]
	if c.Constructed || len(c.Val) != 1 || c.Val[0] == 0 {
		return nil, p.fail(ErrFormat, c.Off, c.Name(), "number of instances", "% X, want one byte 1–%d", c.Val, maxTemplate)
	}
	bits := kids[1:]
	if int(c.Val[0]) != len(bits) {
		return nil, p.fail(ErrFormat, c.Off, c.Name(), "number of instances", "%d declared, %d templates found", c.Val[0], len(bits))
	}
	var out []ber.TLV
	for i, bit := range bits {
		if bit.Tag != tagBIT {
			return nil, p.fail(ErrFormat, bit.Off, bit.Name(), "", "element %d of the group is not a biometric information template (7F60)", i+2)
		}
		kids, err := p.children(bit)
		if err != nil {
			return nil, err
		}
		if len(kids) != 2 || kids[0].Tag != tagBHT {
			return nil, p.fail(ErrFormat, bit.Off, bit.Name(), "", "want a biometric header template (A1) and a biometric data block, found %s", tagList(kids))
		}
		hdr, err := p.children(kids[0])
		if err != nil {
			return nil, err
		}
		for _, k := range hdr {
			if k.Constructed {
				return nil, p.fail(ErrFormat, k.Off, k.Name(), "biometric header template", "constructed element")
			}
			if k.Tag == tagBioType && (len(k.Val) != 1 || k.Val[0] != bioType) {
				return nil, p.fail(ErrFormat, k.Off, k.Name(), "biometric type", "% X, want %02X (%s)", k.Val, bioType, bioName)
			}
		}
		bdb := kids[1]
		switch {
		case bdb.Tag == tagBDBEnc:
			return nil, p.fail(ErrUnsupported, bdb.Off, bdb.Name(), "", "enciphered biometric data block")
		case bdb.Tag != tagBDB:
			return nil, p.fail(ErrFormat, bdb.Off, bdb.Name(), "", "not a biometric data block (5F2E)")
		case bdb.Constructed:
			return nil, p.fail(ErrFormat, bdb.Off, bdb.Name(), "", "constructed; the record is a primitive value")
		}
		out = append(out, bdb)
	}
	return out, nil
}
