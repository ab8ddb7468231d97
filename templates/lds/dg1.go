package lds

import (
	"strings"

	"github.com/bordermatch/bordermatch/templates/internal/ber"
)

const (
	tagDG1 = 0x61
	tagMRZ = 0x5F1F
)

// MRZ layouts (ICAO 9303 parts 4–6), by their length in DG1.
const (
	TD1 = "TD1" // 3 lines of 30: identity cards
	TD2 = "TD2" // 2 lines of 36 (and MRV-B visas)
	TD3 = "TD3" // 2 lines of 44: passports (and MRV-A visas)
)

// MRZ is the machine readable zone as DG1 holds it. Text fields have the
// filler '<' removed at their ends (and turned into spaces inside names);
// dates are YYMMDD as written. Every check digit has been verified.
type MRZ struct {
	// Format is TD1, TD2 or TD3.
	Format string
	// Lines is the zone as written, one string per line.
	Lines []string
	// DocumentCode is "P" for a passport, "I", "ID", "V"…
	DocumentCode string
	// IssuingState and Nationality are ICAO 9303 codes ("D" for Germany,
	// "UTO"…).
	IssuingState, Nationality string
	// PrimaryIdentifier is the surname(s), SecondaryIdentifier the given
	// names, spaces between name parts.
	PrimaryIdentifier, SecondaryIdentifier string
	// DocumentNumber is the whole number, also when a TD1 number longer
	// than 9 characters continues in the optional data.
	DocumentNumber string
	// DateOfBirth and DateOfExpiry are YYMMDD.
	DateOfBirth, DateOfExpiry string
	// Sex is "F", "M" or "X" (the MRZ's '<').
	Sex string
	// OptionalData is the optional data (TD3's personal number; TD1's
	// first optional field, less a long document number's tail), and
	// OptionalData2 TD1's second optional field.
	OptionalData, OptionalData2 string
}

// ParseDG1 reads EF.DG1 (tag 61) and the MRZ in it (5F1F): TD1 (90
// characters), TD2 (72) or TD3 (88); visas (document code V) have no
// composite check digit. Every check digit is verified: a wrong one is an
// error wrapping ErrFormat whose Field names the check digit. Bytes after
// the element are ignored.
func ParseDG1(b []byte) (*MRZ, error) {
	p := &parser{in: "DG1", b: b}
	top, err := p.top(tagDG1, "EF.DG1")
	if err != nil {
		return nil, err
	}
	kids, err := p.children(top)
	if err != nil {
		return nil, err
	}
	if len(kids) != 1 || kids[0].Tag != tagMRZ {
		return nil, p.fail(ErrFormat, top.Off, top.Name(), "", "holds %s, want the MRZ (5F1F)", tagList(kids))
	}
	t := kids[0]
	if err := p.primitive(t, "MRZ"); err != nil {
		return nil, err
	}
	for i, c := range t.Val {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '<') {
			return nil, p.fail(ErrFormat, t.VOff+i, t.Name(), "MRZ", "character %q: only 0–9, A–Z and '<' are allowed", c)
		}
	}
	m := &mrzReader{p: p, t: t}
	switch len(t.Val) {
	case 90:
		return m.td1()
	case 72:
		return m.td23(TD2, 36)
	case 88:
		return m.td23(TD3, 44)
	}
	return nil, p.fail(ErrFormat, t.Off, t.Name(), "MRZ", "%d characters: want 90 (TD1), 72 (TD2) or 88 (TD3)", len(t.Val))
}

type mrzReader struct {
	p *parser
	t ber.TLV
}

// s is the MRZ's characters [i, j).
func (m *mrzReader) s(i, j int) string { return string(m.t.Val[i:j]) }

// field is s with the filler trimmed.
func (m *mrzReader) field(i, j int) string { return strings.Trim(m.s(i, j), "<") }

// check verifies the check digit at c over the characters of spans.
func (m *mrzReader) check(c int, field string, spans ...[2]int) error {
	sum, n := 0, 0
	weights := [3]int{7, 3, 1}
	allFiller := true
	for _, sp := range spans {
		for _, ch := range m.t.Val[sp[0]:sp[1]] {
			sum += charValue(ch) * weights[n%3]
			n++
			allFiller = allFiller && ch == '<'
		}
	}
	want := byte('0' + sum%10)
	got := m.t.Val[c]
	if got == want || got == '<' && allFiller {
		return nil
	}
	return m.p.fail(ErrFormat, m.t.VOff+c, m.t.Name(), field+" check digit", "%q, computed %q", got, want)
}

func charValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 0 // '<'
}

func names(s string) (primary, secondary string) {
	s = strings.TrimRight(s, "<")
	primary, secondary, _ = strings.Cut(s, "<<")
	clean := func(x string) string {
		return strings.Join(strings.FieldsFunc(x, func(r rune) bool { return r == '<' }), " ")
	}
	return clean(primary), clean(secondary)
}

func sex(c byte) string {
	if c == '<' {
		return "X"
	}
	return string(c)
}

// td23 reads a 2-line MRZ of lines of n characters (TD2: 36, TD3: 44).
func (m *mrzReader) td23(format string, n int) (*MRZ, error) {
	z := &MRZ{Format: format, Lines: []string{m.s(0, n), m.s(n, 2*n)}}
	z.DocumentCode = m.field(0, 2)
	z.IssuingState = m.field(2, 5)
	z.PrimaryIdentifier, z.SecondaryIdentifier = names(m.s(5, n))
	l2 := n
	z.DocumentNumber = m.field(l2, l2+9)
	z.Nationality = m.field(l2+10, l2+13)
	z.DateOfBirth = m.s(l2+13, l2+19)
	z.Sex = sex(m.t.Val[l2+20])
	z.DateOfExpiry = m.s(l2+21, l2+27)
	checks := []struct {
		at    int
		field string
		span  [2]int
	}{
		{l2 + 9, "document number", [2]int{l2, l2 + 9}},
		{l2 + 19, "date of birth", [2]int{l2 + 13, l2 + 19}},
		{l2 + 27, "date of expiry", [2]int{l2 + 21, l2 + 27}},
	}
	visa := z.DocumentCode != "" && z.DocumentCode[0] == 'V'
	switch {
	case visa:
		z.OptionalData = m.field(l2+28, 2*n)
	case format == TD3:
		z.OptionalData = m.field(l2+28, l2+42)
		checks = append(checks, struct {
			at    int
			field string
			span  [2]int
		}{l2 + 42, "optional data", [2]int{l2 + 28, l2 + 42}})
	default:
		z.OptionalData = m.field(l2+28, 2*n-1)
	}
	for _, c := range checks {
		if err := m.check(c.at, c.field, c.span); err != nil {
			return nil, err
		}
	}
	if !visa {
		last := 2*n - 1
		if err := m.check(last, "composite", [2]int{l2, l2 + 10}, [2]int{l2 + 13, l2 + 20}, [2]int{l2 + 21, last}); err != nil {
			return nil, err
		}
	}
	return z, nil
}

// td1 reads a 3-line MRZ of 30 characters a line.
func (m *mrzReader) td1() (*MRZ, error) {
	z := &MRZ{Format: TD1, Lines: []string{m.s(0, 30), m.s(30, 60), m.s(60, 90)}}
	z.DocumentCode = m.field(0, 2)
	z.IssuingState = m.field(2, 5)
	z.DocumentNumber = m.field(5, 14)
	z.OptionalData = m.field(15, 30)
	if m.t.Val[14] == '<' && z.OptionalData != "" {
		// A long document number: its tail and check digit open the
		// optional data, up to the first filler.
		opt := m.s(15, 30)
		end := strings.IndexByte(opt, '<')
		if end < 0 {
			end = len(opt)
		}
		if end < 2 {
			return nil, m.p.fail(ErrFormat, m.t.VOff+15, m.t.Name(), "document number", "a long number's tail in the optional data is %d characters", end)
		}
		num := m.s(5, 14) + opt[:end-1]
		sum := 0
		for i := range len(num) {
			sum += charValue(num[i]) * [3]int{7, 3, 1}[i%3]
		}
		if want := byte('0' + sum%10); opt[end-1] != want {
			return nil, m.p.fail(ErrFormat, m.t.VOff+15+end-1, m.t.Name(), "document number check digit", "%q, computed %q", opt[end-1], want)
		}
		z.DocumentNumber = strings.Trim(num, "<")
		z.OptionalData = strings.Trim(opt[end:], "<")
	} else if err := m.check(14, "document number", [2]int{5, 14}); err != nil {
		return nil, err
	}
	z.DateOfBirth = m.s(30, 36)
	z.Sex = sex(m.t.Val[37])
	z.DateOfExpiry = m.s(38, 44)
	z.Nationality = m.field(45, 48)
	z.OptionalData2 = m.field(48, 59)
	z.PrimaryIdentifier, z.SecondaryIdentifier = names(m.s(60, 90))
	if err := m.check(36, "date of birth", [2]int{30, 36}); err != nil {
		return nil, err
	}
	if err := m.check(44, "date of expiry", [2]int{38, 44}); err != nil {
		return nil, err
	}
	if err := m.check(59, "composite", [2]int{5, 30}, [2]int{30, 37}, [2]int{38, 45}, [2]int{48, 59}); err != nil {
		return nil, err
	}
	return z, nil
}
