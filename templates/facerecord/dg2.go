package facerecord

// DG2 and biometric information template tags (ICAO 9303 part 10).
const (
	tagDG2      = 0x75   // EF.DG2
	tagBIGT     = 0x7F61 // biometric information group template
	tagCount    = 0x02   // number of instances
	tagBIT      = 0x7F60 // biometric information template
	tagBHT      = 0xA1   // biometric header template
	tagBDB19794 = 0x5F2E // biometric data block: ISO/IEC 19794-5
	tagBDB39794 = 0x7F2E // biometric data block: ISO/IEC 39794-5
	tagBDBEnc   = 0x7D   // enciphered biometric data block
	tagBioType  = 0x81   // biometric type, in the BHT
)

// maxInstances is the most biometric information templates ICAO 9303
// allows in one group.
const maxInstances = 9

// ParseDG2 reads the contents of EF.DG2 (tag 75): the biometric
// information group (7F61), its number of instances (02), and one
// biometric information template (7F60) per instance, each a biometric
// header template (A1) followed by an ISO/IEC 19794-5:2005 record (5F2E)
// or an ISO/IEC 39794-5 record (7F2E). It returns every face of every
// record in order.
//
// The number of instances must equal the number of templates found, the
// header's biometric type, when present, must be face (02), and every
// image must be a JPEG or JPEG 2000 image whose size can be read. Bytes
// after the DG2 element (padding of a file read from a chip) are ignored.
// Face.Image aliases b.
func ParseDG2(b []byte) ([]Face, error) {
	p := &parser{in: "DG2", b: b}
	top, err := p.next(0, len(b), "the input")
	if err != nil {
		return nil, err
	}
	if top.tag != tagDG2 {
		return nil, p.fail(ErrFormat, 0, top.name(), "", "not EF.DG2 (tag 75)")
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 || kids[0].tag != tagBIGT {
		return nil, p.fail(ErrFormat, top.off, top.name(), "", "holds %d elements, want one biometric information group template (7F61)", len(kids))
	}
	group := kids[0]
	kids, err = p.children(group)
	if err != nil {
		return nil, err
	}
	if len(kids) == 0 || kids[0].tag != tagCount {
		return nil, p.fail(ErrFormat, group.off, group.name(), "", "does not start with the number of instances (tag 02)")
	}
	n, err := p.integer(kids[0], 1, maxInstances, "number of instances")
	if err != nil {
		return nil, err
	}
	bits := kids[1:]
	if int64(len(bits)) != n {
		return nil, p.fail(ErrFormat, kids[0].off, kids[0].name(), "number of instances", "%d declared, %d templates found", n, len(bits))
	}
	var faces []Face
	for i, bit := range bits {
		if bit.tag != tagBIT {
			return nil, p.fail(ErrFormat, bit.off, bit.name(), "", "element %d of the group is not a biometric information template (7F60)", i+2)
		}
		f, err := p.bit(bit)
		if err != nil {
			return nil, err
		}
		faces = append(faces, f...)
	}
	return faces, nil
}

// bit reads one biometric information template.
func (p *parser) bit(bit tlv) ([]Face, error) {
	kids, err := p.children(bit)
	if err != nil {
		return nil, err
	}
	if len(kids) != 2 || kids[0].tag != tagBHT {
		return nil, p.fail(ErrFormat, bit.off, bit.name(), "", "want a biometric header template (A1) and a biometric data block, found %s", tagList(kids))
	}
	if err := p.bht(kids[0]); err != nil {
		return nil, err
	}
	bdb := kids[1]
	switch bdb.tag {
	case tagBDB19794:
		if bdb.constructed {
			return nil, p.fail(ErrFormat, bdb.off, bdb.name(), "", "constructed; the 19794-5 record is a primitive value")
		}
		return p.iso19794(bdb.voff, bdb.voff+len(bdb.val))
	case tagBDB39794:
		if !bdb.constructed {
			return nil, p.fail(ErrFormat, bdb.off, bdb.name(), "", "primitive; the 39794-5 record is constructed")
		}
		return p.iso39794(bdb.voff, bdb.voff+len(bdb.val))
	case tagBDBEnc:
		return nil, p.fail(ErrUnsupported, bdb.off, bdb.name(), "", "enciphered biometric data block")
	}
	return nil, p.fail(ErrFormat, bdb.off, bdb.name(), "", "not a biometric data block (5F2E or 7F2E)")
}

// bht checks the biometric header template: primitive elements, and the
// biometric type, when present, is face.
func (p *parser) bht(h tlv) error {
	kids, err := p.children(h)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if k.constructed {
			return p.fail(ErrFormat, k.off, k.name(), "biometric header template", "constructed element")
		}
		if k.tag == tagBioType && (len(k.val) != 1 || k.val[0] != 0x02) {
			return p.fail(ErrFormat, k.off, k.name(), "biometric type", "% X, want 02 (face)", k.val)
		}
	}
	return nil
}

func tagList(kids []tlv) string {
	if len(kids) == 0 {
		return "nothing"
	}
	s := ""
	for i, k := range kids {
		if i > 0 {
			s += " "
		}
		s += k.name()
	}
	return s
}

// ParseRecord reads a bare face record: ISO/IEC 19794-5:2005 when it
// starts with "FAC\0", ISO/IEC 39794-5 when it starts with tag A1 (the
// ICAO profile's wrapper, as DG2 tag 7F2E holds it) or 65 (the
// FaceImageDataBlock itself). Bytes after the record are ignored.
// Face.Image aliases b.
func ParseRecord(b []byte) ([]Face, error) {
	p := &parser{in: "record", b: b}
	switch {
	case len(b) >= 4 && string(b[:4]) == magic19794:
		return p.iso19794(0, len(b))
	case len(b) > 0 && (b[0] == tagAP39794 || b[0] == tagFIDB):
		return p.iso39794(0, len(b))
	}
	return nil, p.fail(ErrFormat, 0, "", "format", "% X… is neither a 19794-5 record (\"FAC\\x00\") nor a 39794-5 one (A1 or 65)", b[:min(len(b), 4)])
}

// Parse reads either form a reference photo arrives in: the contents of
// EF.DG2 (ParseDG2) when b starts with tag 75, else a bare face record
// (ParseRecord). A gate controller can pass what it read from the chip
// without unwrapping it.
func Parse(b []byte) ([]Face, error) {
	if len(b) > 0 && b[0] == tagDG2 {
		return ParseDG2(b)
	}
	return ParseRecord(b)
}
