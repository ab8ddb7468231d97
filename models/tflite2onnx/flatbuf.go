package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A bounds-checked reader for the parts of the FlatBuffers binary format a
// TFLite file uses: tables (through their vtables), vectors of scalars, of
// tables and of bytes, strings and unions. Every offset is checked against the
// buffer before it is followed, so a malformed file gives an error, never a
// panic; vector and string lengths are charged against a budget of twice the
// file's size, so a file whose vectors alias each other cannot make the reader
// allocate much more than the file itself.

var errBudget = errors.New("flatbuffer: vectors add up to more than the file can hold (aliased offsets?)")

type fbuf struct {
	b      []byte
	budget int // bytes of vector and string data still allowed
}

func newFbuf(b []byte) *fbuf { return &fbuf{b: b, budget: 2*len(b) + 4096} }

func (f *fbuf) u8(pos int) (uint8, error) {
	if pos < 0 || pos >= len(f.b) {
		return 0, fmt.Errorf("flatbuffer: offset %d out of range (%d bytes)", pos, len(f.b))
	}
	return f.b[pos], nil
}

func (f *fbuf) u16(pos int) (uint16, error) {
	if pos < 0 || pos > len(f.b)-2 {
		return 0, fmt.Errorf("flatbuffer: offset %d out of range (%d bytes)", pos, len(f.b))
	}
	return binary.LittleEndian.Uint16(f.b[pos:]), nil
}

func (f *fbuf) u32(pos int) (uint32, error) {
	if pos < 0 || pos > len(f.b)-4 {
		return 0, fmt.Errorf("flatbuffer: offset %d out of range (%d bytes)", pos, len(f.b))
	}
	return binary.LittleEndian.Uint32(f.b[pos:]), nil
}

func (f *fbuf) u64(pos int) (uint64, error) {
	if pos < 0 || pos > len(f.b)-8 {
		return 0, fmt.Errorf("flatbuffer: offset %d out of range (%d bytes)", pos, len(f.b))
	}
	return binary.LittleEndian.Uint64(f.b[pos:]), nil
}

// deref follows the uoffset stored at pos.
func (f *fbuf) deref(pos int) (int, error) {
	u, err := f.u32(pos)
	if err != nil {
		return 0, err
	}
	t := int64(pos) + int64(u)
	if t >= int64(len(f.b)) {
		return 0, fmt.Errorf("flatbuffer: offset %d+%d points past the end (%d bytes)", pos, u, len(f.b))
	}
	return int(t), nil
}

// table is a FlatBuffers table: its position and its vtable.
type table struct {
	f     *fbuf
	pos   int
	vt    int
	vtLen int // bytes of the vtable
}

// tableAt reads the table whose start is at pos.
func (f *fbuf) tableAt(pos int) (table, error) {
	s, err := f.u32(pos)
	if err != nil {
		return table{}, err
	}
	vt := int64(pos) - int64(int32(s))
	if vt < 0 || vt > int64(len(f.b))-4 {
		return table{}, fmt.Errorf("flatbuffer: vtable of the table at %d is out of range", pos)
	}
	n, _ := f.u16(int(vt))
	if n < 4 || n%2 != 0 || int64(n) > int64(len(f.b))-vt {
		return table{}, fmt.Errorf("flatbuffer: vtable at %d has a bad size %d", vt, n)
	}
	return table{f: f, pos: pos, vt: int(vt), vtLen: int(n)}, nil
}

// field gives the absolute position of field number i (0-based, in schema
// order), or 0 when it is absent.
func (t table) field(i int) (int, error) {
	if t.f == nil {
		return 0, nil
	}
	slot := 4 + 2*i
	if slot+2 > t.vtLen {
		return 0, nil
	}
	off, err := t.f.u16(t.vt + slot)
	if err != nil || off == 0 {
		return 0, err
	}
	return t.pos + int(off), nil
}

func (t table) uint8(i int, def uint8) (uint8, error) {
	p, err := t.field(i)
	if err != nil || p == 0 {
		return def, err
	}
	return t.f.u8(p)
}

func (t table) int8(i int, def int8) (int8, error) {
	v, err := t.uint8(i, uint8(def))
	return int8(v), err
}

func (t table) bool(i int, def bool) (bool, error) {
	d := uint8(0)
	if def {
		d = 1
	}
	v, err := t.uint8(i, d)
	return v != 0, err
}

func (t table) uint32(i int, def uint32) (uint32, error) {
	p, err := t.field(i)
	if err != nil || p == 0 {
		return def, err
	}
	return t.f.u32(p)
}

func (t table) int32(i int, def int32) (int32, error) {
	v, err := t.uint32(i, uint32(def))
	return int32(v), err
}

func (t table) uint64(i int, def uint64) (uint64, error) {
	p, err := t.field(i)
	if err != nil || p == 0 {
		return def, err
	}
	return t.f.u64(p)
}

func (t table) float32(i int, def float32) (float32, error) {
	v, err := t.uint32(i, math.Float32bits(def))
	return math.Float32frombits(v), err
}

// subTable reads the table field i points to; ok is false when it is absent.
func (t table) subTable(i int) (table, bool, error) {
	p, err := t.field(i)
	if err != nil || p == 0 {
		return table{}, false, err
	}
	q, err := t.f.deref(p)
	if err != nil {
		return table{}, false, err
	}
	st, err := t.f.tableAt(q)
	return st, err == nil, err
}

// vector returns the position of the first element and the length of the
// vector field i points to, checked to hold n elements of size elem.
func (t table) vector(i, elem int) (start, n int, err error) {
	p, err := t.field(i)
	if err != nil || p == 0 {
		return 0, 0, err
	}
	q, err := t.f.deref(p)
	if err != nil {
		return 0, 0, err
	}
	l, err := t.f.u32(q)
	if err != nil {
		return 0, 0, err
	}
	start = q + 4
	if int64(l)*int64(elem) > int64(len(t.f.b)-start) {
		return 0, 0, fmt.Errorf("flatbuffer: vector at %d of %d×%d bytes runs past the end (%d bytes)", q, l, elem, len(t.f.b))
	}
	size := int(l) * elem
	if size > t.f.budget {
		return 0, 0, errBudget
	}
	t.f.budget -= size
	return start, int(l), nil
}

func (t table) bytes(i int) ([]byte, error) {
	s, n, err := t.vector(i, 1)
	if err != nil || n == 0 {
		return nil, err
	}
	return t.f.b[s : s+n : s+n], nil
}

func (t table) string(i int) (string, error) {
	b, err := t.bytes(i)
	return string(b), err
}

func (t table) int32s(i int) ([]int32, error) {
	s, n, err := t.vector(i, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]int32, n)
	for k := range out {
		out[k] = int32(binary.LittleEndian.Uint32(t.f.b[s+4*k:]))
	}
	return out, nil
}

func (t table) float32s(i int) ([]float32, error) {
	v, err := t.int32s(i)
	if err != nil || v == nil {
		return nil, err
	}
	out := make([]float32, len(v))
	for k := range v {
		out[k] = math.Float32frombits(uint32(v[k]))
	}
	return out, nil
}

// tables reads the vector of tables field i points to.
func (t table) tables(i int) ([]table, error) {
	s, n, err := t.vector(i, 4)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]table, n)
	for k := range out {
		q, err := t.f.deref(s + 4*k)
		if err != nil {
			return nil, err
		}
		if out[k], err = t.f.tableAt(q); err != nil {
			return nil, err
		}
	}
	return out, nil
}
