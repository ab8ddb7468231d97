package an2k

import (
	"bytes"
	"strconv"
	"strings"
)

// The separators of the traditional encoding.
const (
	FS = 0x1C // ends a record
	GS = 0x1D // ends a field
	RS = 0x1E // separates subfields (repeated values) of a field
	US = 0x1F // separates the information items of a subfield
)

// Field is one field of a record: its number (11 for 14.011) and its
// value as written between the tag's colon and the next separator. A text
// field's value keeps its RS and US separators (Subfields splits them); an
// image field's value is the image's raw bytes.
type Field struct {
	Num   int
	Value []byte
}

// String is the field's value as text.
func (f Field) String() string { return string(f.Value) }

// Subfields splits a text field into subfields and those into information
// items: "1\x1f2\x1e4\x1f01" is [["1","2"],["4","01"]].
func (f Field) Subfields() [][]string {
	var out [][]string
	for _, s := range strings.Split(string(f.Value), string(rune(RS))) {
		out = append(out, strings.Split(s, string(rune(US))))
	}
	return out
}

// TextField makes a field from subfields of information items; it is
// the inverse of Field.Subfields.
func TextField(num int, subfields ...[]string) Field {
	var b []byte
	for i, s := range subfields {
		if i > 0 {
			b = append(b, RS)
		}
		for j, item := range s {
			if j > 0 {
				b = append(b, US)
			}
			b = append(b, item...)
		}
	}
	if b == nil {
		b = []byte{}
	}
	return Field{Num: num, Value: b}
}

// Record is one logical record.
//
// Tagged records (every type but 3–8) hold their fields in file order,
// without LEN (field 1), which Encode computes. A Type-4 record's fixed
// binary header is given as fields too, numbered as its header's parts
// are in the standard: 4.002 IDC, 4.003 IMP, 4.004 FGP (six subfields),
// 4.005 ISR, 4.006 HLL, 4.007 VLL, 4.008 GCA, and 4.009 the image
// data. Types 3, 5, 6, 7 and 8 (deprecated or rarely used binary records)
// are kept whole in Raw, their 4-byte length included, and written back
// unchanged.
type Record struct {
	Type   int
	Fields []Field
	Raw    []byte
}

// Field returns the record's first field with the number.
func (r *Record) Field(num int) (Field, bool) {
	for _, f := range r.Fields {
		if f.Num == num {
			return f, true
		}
	}
	return Field{}, false
}

// Value is the record's first field with the number as text, "" when
// absent.
func (r *Record) Value(num int) string {
	f, _ := r.Field(num)
	return f.String()
}

// Item is information item i of subfield s (both from 0) of the record's
// first field with the number, "" when absent.
func (r *Record) Item(num, s, i int) string {
	f, ok := r.Field(num)
	if !ok {
		return ""
	}
	subs := f.Subfields()
	if s >= len(subs) || i >= len(subs[s]) {
		return ""
	}
	return subs[s][i]
}

// Int is the record's first field with the number as a decimal number
// (surrounding spaces ignored).
func (r *Record) Int(num int) (int, bool) {
	f, ok := r.Field(num)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(f.String()))
	return n, err == nil
}

// Set replaces the value of the record's first field with the number, or
// adds the field before the first one with a higher number (so an image
// field 999 stays last).
func (r *Record) Set(f Field) {
	for i := range r.Fields {
		if r.Fields[i].Num == f.Num {
			r.Fields[i].Value = f.Value
			return
		}
	}
	i := 0
	for i < len(r.Fields) && r.Fields[i].Num <= f.Num {
		i++
	}
	r.Fields = append(r.Fields, Field{})
	copy(r.Fields[i+1:], r.Fields[i:])
	r.Fields[i] = f
}

// IDC is the record's information designation character, which CNT
// (1.003) lists with its type; Type-1 has none.
func (r *Record) IDC() (int, bool) {
	if r.Raw != nil {
		if len(r.Raw) < 5 {
			return 0, false
		}
		return int(r.Raw[4]), true
	}
	if r.Type == 1 {
		return 0, false
	}
	return r.Int(2)
}

// Equal reports whether two records have the same type, fields (numbers
// and bytes, in order) and raw bytes. Parse → Encode → Parse gives equal
// records even where the bytes differ (old files' 2-digit tags, LEN).
func (r *Record) Equal(o *Record) bool {
	if r.Type != o.Type || !bytes.Equal(r.Raw, o.Raw) || len(r.Fields) != len(o.Fields) {
		return false
	}
	for i, f := range r.Fields {
		if f.Num != o.Fields[i].Num || !bytes.Equal(f.Value, o.Fields[i].Value) {
			return false
		}
	}
	return true
}

// Transaction is a whole ANSI/NIST-ITL file: Records[0] is its Type-1
// record, the others follow in file order.
type Transaction struct {
	Records []Record
}

// Type-1 field numbers.
const (
	fVER = 2
	fCNT = 3
	fTOT = 4
	fDAT = 5
	fPRY = 6
	fDAI = 7
	fORI = 8
	fTCN = 9
	fTCR = 10
	fNSR = 11
	fNTR = 12
	fDOM = 13
	fGMT = 14
	fDCS = 15
)

func (t *Transaction) header() *Record {
	if len(t.Records) == 0 || t.Records[0].Type != 1 {
		return &Record{Type: 1}
	}
	return &t.Records[0]
}

// Version is 1.002 VER: "0500" for ANSI/NIST-ITL 1-2011, "0502" for its
// 2015 update, "0201" or "0300" in older files.
func (t *Transaction) Version() string { return t.header().Value(fVER) }

// TOT is 1.004, the type of transaction ("CAR", "CPS", "SRE"...).
func (t *Transaction) TOT() string { return t.header().Value(fTOT) }

// Date is 1.005 DAT, YYYYMMDD.
func (t *Transaction) Date() string { return t.header().Value(fDAT) }

// Priority is 1.006 PRY ("" if absent).
func (t *Transaction) Priority() string { return t.header().Value(fPRY) }

// Destination is 1.007 DAI, the destination agency.
func (t *Transaction) Destination() string { return t.header().Value(fDAI) }

// Originator is 1.008 ORI, the originating agency.
func (t *Transaction) Originator() string { return t.header().Value(fORI) }

// TCN is 1.009, the transaction control number; TCR (1.010) the one of
// the transaction this one answers.
func (t *Transaction) TCN() string { return t.header().Value(fTCN) }

// TCR is 1.010, the transaction control reference.
func (t *Transaction) TCR() string { return t.header().Value(fTCR) }

// Domain is 1.013 DOM: the implementation domain's name and version
// ("INT-I", "4.22"; "NORAM" for EBTS).
func (t *Transaction) Domain() (name, version string) {
	h := t.header()
	return h.Item(fDOM, 0, 0), h.Item(fDOM, 0, 1)
}

// GMT is 1.014, the UTC time stamp YYYYMMDDhhmmssZ.
func (t *Transaction) GMT() string { return t.header().Value(fGMT) }

// CharacterSet is the name of 1.015 DCS's first character set
// ("ASCII", "UTF-8"...), "" when absent (7-bit ASCII).
func (t *Transaction) CharacterSet() string { return t.header().Item(fDCS, 0, 1) }
