package an2k

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
)

// binaryHeader is the size of the fixed header of the binary record
// types; a record's 4-byte length must cover at least that.
var binaryHeader = map[int]int{3: 18, 4: 18, 5: 18, 6: 18, 7: 5, 8: 12}

func isBinary(typ int) bool { return typ >= 3 && typ <= 8 }

// Parse reads a whole transaction in the traditional encoding.
//
// The Type-1 record comes first and its CNT (1.003) drives the walk: each
// entry gives the type of the next record, which is read by its LEN (a
// tagged record's first field, or a binary record's 4-byte length). Field
// tags are read as numbers, so old files' "1.01:" is field 1. In a tagged
// record a field 999 holds raw bytes up to the record's final FS, except
// that a GS followed by another tag of the record ends it: some NBIS test
// files carry short text fields tagged 999 before the image.
//
// Parse refuses a transaction whose LENs disagree with the separators,
// whose CNT lists other types or another number of records than the
// file holds, or that has bytes after its last record; the *Error names
// the record, the field and the byte offset. Nothing is allocated in
// proportion to a length read from the input beyond the input's own
// size, and the result does not alias b.
func Parse(b []byte) (*Transaction, error) {
	p := &parser{b: bytes.Clone(b)}
	return p.transaction()
}

type parser struct {
	b []byte
	// rec and typ locate errors.
	rec, typ int
}

func (p *parser) fail(kind error, off, field int, format string, args ...any) error {
	return &Error{Offset: off, Record: p.rec, Type: p.typ, Field: field, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

// readTag reads "T.N:" at pos before end: the record type and the field
// number as numbers (1–3 and 1–9 digits) and where the value starts.
func readTag(b []byte, pos, end int) (typ, num, value int, ok bool) {
	typ, pos, ok = digits(b, pos, end, 3)
	if !ok || pos >= end || b[pos] != '.' {
		return 0, 0, 0, false
	}
	num, pos, ok = digits(b, pos+1, end, 9)
	if !ok || pos >= end || b[pos] != ':' {
		return 0, 0, 0, false
	}
	return typ, num, pos + 1, true
}

func digits(b []byte, pos, end, max int) (n, next int, ok bool) {
	start := pos
	for pos < end && pos-start < max && b[pos] >= '0' && b[pos] <= '9' {
		n = n*10 + int(b[pos]-'0')
		pos++
	}
	return n, pos, pos > start
}

// tagPrefix: b is the start of a tag cut short by the end of the input.
func tagPrefix(b []byte) bool {
	if len(b) > 14 {
		return false
	}
	dots := 0
	for _, c := range b {
		switch {
		case c == '.':
			dots++
		case c < '0' || c > '9':
			return false
		}
	}
	return dots <= 1
}

// imageEnd is where the value of a field 999 starting at from ends: at
// the first GS followed by a tag of the record's type, else at end.
func imageEnd(b []byte, typ, from, end int) int {
	for i := from; i < end; i++ {
		if b[i] != GS {
			continue
		}
		if t, _, _, ok := readTag(b, i+1, end); ok && t == typ {
			return i
		}
	}
	return end
}

func (p *parser) transaction() (*Transaction, error) {
	b := p.b
	if len(b) == 0 {
		return nil, p.fail(ErrTruncated, 0, 0, "empty input")
	}
	if t, n, _, ok := readTag(b, 0, len(b)); !ok || t != 1 || n != 1 {
		return nil, p.fail(ErrFormat, 0, 0, "the input does not start with a Type-1 record's 1.001 LEN (%q)", b[:min(len(b), 8)])
	}
	p.typ = 1
	t1, offs, off, err := p.tagged(0, 1)
	if err != nil {
		return nil, err
	}
	entries, err := p.cnt(&t1, offs)
	if err != nil {
		return nil, err
	}
	tr := &Transaction{Records: []Record{t1}}
	for i, e := range entries {
		p.rec, p.typ = i+1, e.typ
		if off >= len(b) {
			return nil, p.fail(ErrCount, off, 0, "CNT lists %d records after Type-1, the input ends after %d", len(entries), i)
		}
		var r Record
		if isBinary(e.typ) {
			r, off, err = p.binary(off, e.typ)
		} else {
			r, _, off, err = p.tagged(off, e.typ)
		}
		if err != nil {
			return nil, err
		}
		tr.Records = append(tr.Records, r)
	}
	if off != len(b) {
		p.rec, p.typ = -1, 0
		return nil, p.fail(ErrCount, off, 0, "%d bytes after the %d records CNT lists", len(b)-off, len(entries)+1)
	}
	return tr, nil
}

// cntEntry is one record CNT lists. The IDC is not checked against the
// record's: libbiomeval's type9-15.an2k lists IDC 3 for a Type-9 whose
// 9.002 says 01.
type cntEntry struct{ typ, idc int }

// cnt reads 1.003: a first subfield "1" US <number of other records>,
// then one subfield <type> US <IDC> per record.
func (p *parser) cnt(t1 *Record, offs []int) ([]cntEntry, error) {
	off := -1
	for i, f := range t1.Fields {
		if f.Num == fCNT {
			off = offs[i]
			break
		}
	}
	f, ok := t1.Field(fCNT)
	if !ok {
		return nil, p.fail(ErrFormat, 0, fCNT, "no CNT field")
	}
	subs := f.Subfields()
	one, err1 := strconv.Atoi(subs[0][0])
	n, err := strconv.Atoi(subs[0][len(subs[0])-1])
	if len(subs[0]) != 2 || one != 1 || err1 != nil || err != nil || n < 0 {
		return nil, p.fail(ErrFormat, off, fCNT, "first subfield %q is not 1<US><count>", subs[0])
	}
	if n != len(subs)-1 {
		return nil, p.fail(ErrCount, off, fCNT, "CNT says %d records follow Type-1 and lists %d", n, len(subs)-1)
	}
	var out []cntEntry
	for i, s := range subs[1:] {
		var e cntEntry
		var err1, err2 error
		if len(s) == 2 {
			e.typ, err1 = strconv.Atoi(s[0])
			e.idc, err2 = strconv.Atoi(s[1])
		}
		if len(s) != 2 || err1 != nil || err2 != nil || e.typ < 2 || e.typ > 99 || e.idc < 0 {
			return nil, p.fail(ErrFormat, off, fCNT, "entry %d %q is not <type 2–99><US><IDC>", i+1, s)
		}
		out = append(out, e)
	}
	return out, nil
}

// tagged reads a tagged record of type typ at off: its fields without
// LEN, the offset of each, and where the next record starts.
func (p *parser) tagged(off, typ int) (Record, []int, int, error) {
	b := p.b
	t, num, pos, ok := readTag(b, off, len(b))
	if !ok {
		if tagPrefix(b[off:]) {
			return Record{}, nil, 0, p.fail(ErrTruncated, off, 1, "the input ends in the record's first tag")
		}
		return Record{}, nil, 0, p.fail(ErrFormat, off, 0, "no tag at the start of the record (%q)", b[off:min(len(b), off+8)])
	}
	if t != typ || num != 1 {
		return Record{}, nil, 0, p.fail(ErrFormat, off, 0, "record starts with %d.%03d:, expected %d.001: (LEN) as CNT lists Type-%d", t, num, typ, typ)
	}
	l, lenEnd, ok := digits(b, pos, len(b), 10)
	if lenEnd >= len(b) {
		return Record{}, nil, 0, p.fail(ErrTruncated, pos, 1, "the input ends in LEN")
	}
	if !ok || (b[lenEnd] != GS && b[lenEnd] != FS) {
		return Record{}, nil, 0, p.fail(ErrFormat, pos, 1, "LEN %q is not a number", b[pos:min(lenEnd+1, len(b))])
	}
	if l > len(b)-off {
		return Record{}, nil, 0, p.fail(ErrTruncated, pos, 1, "LEN %d runs past the end of the input (%d bytes left)", l, len(b)-off)
	}
	end := off + l - 1 // the record's FS
	if end < lenEnd || b[end] != FS || (b[lenEnd] == FS && lenEnd != end) {
		return Record{}, nil, 0, p.fail(ErrFormat, pos, 1, "LEN %d does not end at a record separator (FS)", l)
	}
	r := Record{Type: typ}
	var offs []int
	pos = lenEnd + 1
	for pos < end {
		t, num, vs, ok := readTag(b, pos, end)
		if !ok {
			return Record{}, nil, 0, p.fail(ErrFormat, pos, 0, "malformed field tag %q", b[pos:min(end, pos+12)])
		}
		// The tag's record type is not checked: libbiomeval's
		// type9-13.an2k has a 13.005 in its Type-9 record.
		if t < 1 || num < 2 {
			return Record{}, nil, 0, p.fail(ErrFormat, pos, num, "tag %d.%03d:", t, num)
		}
		ve := end
		if num == 999 {
			ve = imageEnd(b, typ, vs, end)
		} else if i := bytes.IndexByte(b[vs:end], GS); i >= 0 {
			ve = vs + i
		}
		if num != 999 {
			if i := bytes.IndexByte(b[vs:ve], FS); i >= 0 {
				return Record{}, nil, 0, p.fail(ErrFormat, vs+i, num, "record separator (FS) inside the field, before the end LEN gives")
			}
		}
		r.Fields = append(r.Fields, Field{Num: num, Value: b[vs:ve:ve]})
		offs = append(offs, pos)
		pos = ve + 1
	}
	return r, offs, end + 1, nil
}

// binary reads a record of types 3–8 at off by its 4-byte length: Type-4's
// header becomes fields, the others are kept raw.
func (p *parser) binary(off, typ int) (Record, int, error) {
	b := p.b
	if len(b)-off < 4 {
		return Record{}, 0, p.fail(ErrTruncated, off, 1, "the input ends in the 4-byte record length")
	}
	l := int64(binary.BigEndian.Uint32(b[off:]))
	if l < int64(binaryHeader[typ]) {
		return Record{}, 0, p.fail(ErrFormat, off, 1, "record length %d is shorter than the %d-byte header", l, binaryHeader[typ])
	}
	if l > int64(len(b)-off) {
		return Record{}, 0, p.fail(ErrTruncated, off, 1, "record length %d runs past the end of the input (%d bytes left)", l, len(b)-off)
	}
	rb := b[off : off+int(l) : off+int(l)]
	next := off + int(l)
	if typ != 4 {
		return Record{Type: typ, Raw: rb}, next, nil
	}
	fgp := make([][]string, 6)
	for i := range fgp {
		fgp[i] = []string{strconv.Itoa(int(rb[6+i]))}
	}
	u8 := func(i int) []byte { return []byte(strconv.Itoa(int(rb[i]))) }
	u16 := func(i int) []byte { return []byte(strconv.Itoa(int(binary.BigEndian.Uint16(rb[i:])))) }
	return Record{Type: 4, Fields: []Field{
		{2, u8(4)}, {3, u8(5)}, TextField(4, fgp...), {5, u8(12)},
		{6, u16(13)}, {7, u16(15)}, {8, u8(17)}, {9, rb[18:]},
	}}, next, nil
}
