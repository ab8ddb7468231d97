package an2k

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Encode writes the transaction in the traditional encoding.
//
// Tagged records get their LEN computed (a fixed point: LEN counts its own
// digits) and 3-digit field numbers ("1.001:"); Type-4 its binary header
// from its fields; Types 3, 5, 6, 7 and 8 are written from Raw unchanged.
// CNT (1.003) is kept when it lists the records' types in order and is
// generated from the records (types and IDCs) otherwise, so a transaction
// built record by record needs none. Values that would not read back the
// same are refused: a separator GS or FS in a text field, or a GS and a tag
// inside an image field. Parse of the result gives records Equal to t's.
func (t *Transaction) Encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := t.Write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes what Encode returns to w.
func (t *Transaction) Write(w io.Writer) error {
	if len(t.Records) == 0 || t.Records[0].Type != 1 {
		return encErr(0, 0, 0, ErrFormat, "the first record must be Type-1")
	}
	t1 := t.Records[0]
	t1.Fields = append([]Field(nil), t1.Fields...)
	if !t.cntMatches() {
		cnt := [][]string{{"1", strconv.Itoa(len(t.Records) - 1)}}
		for i := 1; i < len(t.Records); i++ {
			r := &t.Records[i]
			idc, ok := r.IDC()
			if !ok || idc < 0 || idc > 255 {
				return encErr(i, r.Type, 2, ErrValue, "no IDC for CNT (%q)", r.Value(2))
			}
			cnt = append(cnt, []string{strconv.Itoa(r.Type), fmt.Sprintf("%02d", idc)})
		}
		t1.Set(TextField(fCNT, cnt...))
	}
	var out []byte
	for i := range t.Records {
		r := &t.Records[i]
		if i == 0 {
			r = &t1
		} else if r.Type < 2 || r.Type > 99 {
			return encErr(i, r.Type, 0, ErrFormat, "record type %d (2–99 after Type-1)", r.Type)
		}
		var err error
		switch {
		case r.Type == 4 && r.Raw == nil:
			out, err = encodeType4(out, r, i)
		case isBinary(r.Type):
			out, err = appendRaw(out, r, i)
		default:
			out, err = encodeTagged(out, r, i)
		}
		if err != nil {
			return err
		}
	}
	_, err := w.Write(out)
	return err
}

func encErr(rec, typ, field int, kind error, format string, args ...any) error {
	return &Error{Offset: -1, Record: rec, Type: typ, Field: field, Err: kind, Detail: fmt.Sprintf(format, args...)}
}

// cntMatches: the Type-1 CNT lists the other records' types in order.
func (t *Transaction) cntMatches() bool {
	f, ok := t.Records[0].Field(fCNT)
	if !ok {
		return false
	}
	subs := f.Subfields()
	if len(subs) != len(t.Records) || len(subs[0]) != 2 {
		return false
	}
	one, err1 := strconv.Atoi(subs[0][0])
	n, err2 := strconv.Atoi(subs[0][1])
	if err1 != nil || err2 != nil || one != 1 || n != len(t.Records)-1 {
		return false
	}
	for i, s := range subs[1:] {
		n, err := strconv.Atoi(s[0])
		if len(s) != 2 || err != nil || n != t.Records[i+1].Type {
			return false
		}
		if _, err := strconv.Atoi(s[1]); err != nil {
			return false
		}
	}
	return true
}

func encodeTagged(out []byte, r *Record, rec int) ([]byte, error) {
	if r.Raw != nil {
		return nil, encErr(rec, r.Type, 0, ErrFormat, "raw bytes in a tagged record type")
	}
	var rest []byte
	for _, f := range r.Fields {
		if f.Num < 2 || f.Num > 999_999_999 {
			return nil, encErr(rec, r.Type, f.Num, ErrFormat, "field number %d (LEN, field 1, is computed)", f.Num)
		}
		if f.Num == 999 {
			if imageEnd(f.Value, r.Type, 0, len(f.Value)) != len(f.Value) {
				return nil, encErr(rec, r.Type, f.Num, ErrFormat, "the image holds a GS and a tag, which would end it when read")
			}
		} else if i := bytes.IndexAny(f.Value, "\x1c\x1d"); i >= 0 {
			return nil, encErr(rec, r.Type, f.Num, ErrFormat, "separator %#x at byte %d of a text field", f.Value[i], i)
		}
		rest = append(rest, GS)
		rest = strconv.AppendInt(rest, int64(r.Type), 10)
		rest = append(rest, '.')
		rest = append(rest, pad3(f.Num)...)
		rest = append(rest, ':')
		rest = append(rest, f.Value...)
	}
	rest = append(rest, FS)
	prefix := strconv.Itoa(r.Type) + ".001:"
	// LEN counts its own digits: grow the digit count until it is stable.
	d := 1
	for len(strconv.Itoa(len(prefix)+d+len(rest))) != d {
		d++
	}
	out = append(out, prefix...)
	out = strconv.AppendInt(out, int64(len(prefix)+d+len(rest)), 10)
	return append(out, rest...), nil
}

func appendRaw(out []byte, r *Record, rec int) ([]byte, error) {
	if len(r.Raw) < binaryHeader[r.Type] || int64(binary.BigEndian.Uint32(r.Raw)) != int64(len(r.Raw)) {
		return nil, encErr(rec, r.Type, 1, ErrFormat, "raw record of %d bytes does not start with its length", len(r.Raw))
	}
	return append(out, r.Raw...), nil
}

// encodeType4 writes Type-4's 18-byte header (LEN 4, IDC 1, IMP 1,
// FGP 6, ISR 1, HLL 2, VLL 2, GCA 1) and the image.
func encodeType4(out []byte, r *Record, rec int) ([]byte, error) {
	num := func(field, max int) (int, error) {
		n, ok := r.Int(field)
		if !ok || n < 0 || n > max {
			return 0, encErr(rec, 4, field, ErrValue, "%q is not a number 0–%d", r.Value(field), max)
		}
		return n, nil
	}
	var h [18]byte
	for _, x := range []struct{ field, at, size int }{{2, 4, 1}, {3, 5, 1}, {5, 12, 1}, {6, 13, 2}, {7, 15, 2}, {8, 17, 1}} {
		n, err := num(x.field, 1<<(8*x.size)-1)
		if err != nil {
			return nil, err
		}
		if x.size == 1 {
			h[x.at] = byte(n)
		} else {
			binary.BigEndian.PutUint16(h[x.at:], uint16(n))
		}
	}
	fgp, _ := r.Field(4)
	subs := fgp.Subfields()
	if len(subs) > 6 {
		return nil, encErr(rec, 4, 4, ErrValue, "%d finger positions, at most 6", len(subs))
	}
	for i := range 6 {
		h[6+i] = 255
		if i < len(subs) && subs[i][0] != "" {
			n, err := strconv.Atoi(subs[i][0])
			if err != nil || len(subs[i]) != 1 || n < 0 || n > 255 {
				return nil, encErr(rec, 4, 4, ErrValue, "finger position %q", subs[i])
			}
			h[6+i] = byte(n)
		}
	}
	img, _ := r.Field(9)
	if int64(len(img.Value))+18 > math.MaxUint32 {
		return nil, encErr(rec, 4, 9, ErrValue, "image too large for a Type-4 record")
	}
	binary.BigEndian.PutUint32(h[:], uint32(18+len(img.Value)))
	out = append(out, h[:]...)
	return append(out, img.Value...), nil
}
