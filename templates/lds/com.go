package lds

import (
	"fmt"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

// EF.COM tags (ICAO 9303 part 10).
const (
	tagCOM        = 0x60
	tagLDSVersion = 0x5F01
	tagUnicode    = 0x5F36
	tagTagList    = 0x5C
)

// dgTags are the data groups' file tags, DG1 to DG16.
var dgTags = [...]byte{0x61, 0x75, 0x63, 0x76, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70}

// DataGroupTag is the tag of data group dg's file (0x61 for DG1), 0 when
// dg is not 1–16.
func DataGroupTag(dg int) byte {
	if dg < 1 || dg > len(dgTags) {
		return 0
	}
	return dgTags[dg-1]
}

func dataGroupOfTag(tag byte) int {
	for i, t := range dgTags {
		if t == tag {
			return i + 1
		}
	}
	return 0
}

// COM is EF.COM: the LDS and Unicode versions and the data groups the
// chip says it holds.
type COM struct {
	// LDSVersion is "1.7" for "0107".
	LDSVersion string
	// UnicodeVersion is "4.0.0" for "040000".
	UnicodeVersion string
	// DataGroups are the data group numbers of the tag list, in its order.
	DataGroups []int
}

// ParseCOM reads EF.COM (tag 60): LDS version (5F01, "aabb"), Unicode
// version (5F36, "aabbcc") and the tag list (5C), each tag of which must
// be a data group's. Bytes after the element are ignored.
func ParseCOM(b []byte) (*COM, error) {
	p := &parser{in: "EF.COM", b: b}
	top, err := p.top(tagCOM, "EF.COM")
	if err != nil {
		return nil, err
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	c := &COM{}
	v, ok := ber.Find(kids, tagLDSVersion)
	if !ok {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "no LDS version (tag 5F01)")
	}
	if c.LDSVersion, err = p.version(v, 2, "LDS version"); err != nil {
		return nil, err
	}
	v, ok = ber.Find(kids, tagUnicode)
	if !ok {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "no Unicode version (tag 5F36)")
	}
	if c.UnicodeVersion, err = p.version(v, 3, "Unicode version"); err != nil {
		return nil, err
	}
	l, ok := ber.Find(kids, tagTagList)
	if !ok {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "no tag list (tag 5C)")
	}
	if err := p.primitive(l, "tag list"); err != nil {
		return nil, err
	}
	for i, t := range l.Val {
		dg := dataGroupOfTag(t)
		if dg == 0 {
			return nil, p.fail(ErrFormat, l.VOff+i, l.Name(), "tag list", "%02X is not a data group's tag", t)
		}
		c.DataGroups = append(c.DataGroups, dg)
	}
	return c, nil
}

// version reads n two-digit numbers, "0107" → "1.7".
func (p *parser) version(t ber.TLV, n int, field string) (string, error) {
	if err := p.primitive(t, field); err != nil {
		return "", err
	}
	if len(t.Val) != 2*n {
		return "", p.fail(ErrFormat, t.Off, t.Name(), field, "%d bytes, want %d digits", len(t.Val), 2*n)
	}
	s := ""
	for i := 0; i < n; i++ {
		d := t.Val[2*i : 2*i+2]
		if d[0] < '0' || d[0] > '9' || d[1] < '0' || d[1] > '9' {
			return "", p.fail(ErrFormat, t.VOff+2*i, t.Name(), field, "%q is not two digits", d)
		}
		if i > 0 {
			s += "."
		}
		s += fmt.Sprint(int(d[0]-'0')*10 + int(d[1]-'0'))
	}
	return s, nil
}
