package minutiae

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Format is a finger minutiae record format.
type Format uint8

const (
	FormatUnknown Format = iota
	// FormatISO2005 is ISO/IEC 19794-2:2005: "FMR\0", version " 20\0",
	// 4-byte record length, angles in 360/256° units.
	FormatISO2005
	// FormatANSI2004 is ANSI INCITS 378-2004: "FMR\0", version " 20\0",
	// 2-byte record length (or 0 and a 4-byte one), CBEFF product id,
	// angles in 2° units.
	FormatANSI2004
	// FormatANSI2009 is ANSI INCITS 378-2009: "FMR\0", version "030\0",
	// image geometry per view, angles in 2° units.
	FormatANSI2009
)

func (f Format) String() string {
	switch f {
	case FormatISO2005:
		return "ISO/IEC 19794-2:2005"
	case FormatANSI2004:
		return "ANSI INCITS 378-2004"
	case FormatANSI2009:
		return "ANSI INCITS 378-2009"
	}
	return "unknown format"
}

// Record is a finger minutiae record: one or more views (fingers or
// impressions) with the capture metadata the formats carry.
//
// ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 give one image size and
// resolution for the whole record; Parse copies it into every view, and
// Marshal into those formats requires all views to share it.
type Record struct {
	// Format is the format the record was read from, and the one Marshal
	// writes.
	Format Format
	// ProductOwner and ProductType are the CBEFF product identifier
	// (ANSI INCITS 378 only; ISO records have none).
	ProductOwner, ProductType uint16
	// EquipmentCompliance is the 4-bit capture equipment compliance
	// (certification) field; EquipmentID the 12-bit capture device type id.
	EquipmentCompliance uint8
	EquipmentID         uint16
	Views               []View
}

const (
	magic       = "FMR\x00"
	version20   = " 20\x00"
	version30   = "030\x00"
	maxPosition = 10
	maxCoord    = 1<<14 - 1
)

// Parse reads a finger minutiae record in any of the supported formats.
//
// ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 share the format
// identifier and the version " 20\0"; they differ in the record length
// field at offset 8: ISO has 4 bytes, ANSI 2 bytes, or 2 zero bytes and
// then 4 bytes for records over 65,535 bytes. Parse therefore reads the
// record as ANSI when bytes 8–9 are not zero (an ISO record would have to
// be 64 KiB or longer for that) and as ISO otherwise; if that reading
// fails, it tries the other layout and keeps whichever succeeds, reporting
// the first reading's error when neither does. A valid record of one
// layout read with the other fails the length checks (its length field
// would declare a size unrelated to the content), so the rule is
// unambiguous in practice; ParseISO and ParseANSI skip the guess.
//
// Version "030\0" is read as ANSI INCITS 378-2009. ISO/IEC 19794-2:2011
// uses the same version string with another layout and is refused with
// ErrUnsupportedVersion.
//
// Bytes after the declared record length (padding) are ignored. The
// returned record does not alias b.
func Parse(b []byte) (Record, error) {
	if err := checkMagic(b, FormatUnknown); err != nil {
		return Record{}, err
	}
	switch string(b[4:8]) {
	case version20:
		first, second := FormatISO2005, FormatANSI2004
		if len(b) >= 10 && b[8]|b[9] != 0 {
			first, second = second, first
		}
		r, err := parseFormat(b, first)
		if err == nil {
			return r, nil
		}
		if r2, err2 := parseFormat(b, second); err2 == nil {
			return r2, nil
		}
		return Record{}, err
	case version30:
		return parseFormat(b, FormatANSI2009)
	}
	return Record{}, versionError(b, FormatUnknown)
}

// ParseISO reads an ISO/IEC 19794-2:2005 record.
func ParseISO(b []byte) (Record, error) {
	if err := checkMagic(b, FormatISO2005); err != nil {
		return Record{}, err
	}
	if string(b[4:8]) != version20 {
		return Record{}, versionError(b, FormatISO2005)
	}
	return parseFormat(b, FormatISO2005)
}

// ParseANSI reads an ANSI INCITS 378-2004 (version " 20\0") or
// 378-2009 (version "030\0") record.
func ParseANSI(b []byte) (Record, error) {
	if err := checkMagic(b, FormatANSI2004); err != nil {
		return Record{}, err
	}
	switch string(b[4:8]) {
	case version20:
		return parseFormat(b, FormatANSI2004)
	case version30:
		return parseFormat(b, FormatANSI2009)
	}
	return Record{}, versionError(b, FormatANSI2004)
}

func checkMagic(b []byte, f Format) error {
	if len(b) < 8 {
		return &Error{Format: f, Field: "format identifier and version", Offset: 0, Err: ErrTruncated,
			Detail: fmt.Sprintf("%d bytes, the header starts with 8", len(b))}
	}
	if string(b[:4]) != magic {
		return &Error{Format: f, Field: "format identifier", Offset: 0, Err: ErrFormat,
			Detail: fmt.Sprintf("%q, want \"FMR\\x00\"", b[:4])}
	}
	return nil
}

func versionError(b []byte, f Format) error {
	return &Error{Format: f, Field: "version", Offset: 4, Err: ErrUnsupportedVersion,
		Detail: fmt.Sprintf("%q; supported: \" 20\\x00\" (ISO 19794-2:2005, INCITS 378-2004), \"030\\x00\" (INCITS 378-2009)", b[4:8])}
}

// decoder reads big-endian fields from a record cut to its declared length.
type decoder struct {
	b   []byte
	off int
	f   Format
}

func (d *decoder) has(n int) bool { return n <= len(d.b)-d.off }

func (d *decoder) u8() uint8 {
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) u16() uint16 {
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) fail(kind error, field string, off int, detail string, args ...any) error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{Format: d.f, Field: field, Offset: off, Err: kind, Detail: detail}
}

// truncated reports a field of n bytes at the current offset that does not fit.
func (d *decoder) truncated(field string, n int) error {
	return d.fail(ErrTruncated, field, d.off, "needs %d bytes, %d remain of the %d declared", n, len(d.b)-d.off, len(d.b))
}

// geometry is an image size and resolution as records store it.
type geometry struct{ w, h, xres, yres uint16 }

func parseFormat(b []byte, f Format) (Record, error) {
	d := decoder{b: b, off: 8, f: f}
	var declared, header int
	switch f {
	case FormatISO2005, FormatANSI2009:
		if !d.has(4) {
			return Record{}, d.truncated("record length", 4)
		}
		declared = int(d.u32())
		header = 24
		if f == FormatANSI2009 {
			header = 20
		}
	case FormatANSI2004:
		if !d.has(2) {
			return Record{}, d.truncated("record length", 2)
		}
		declared, header = int(d.u16()), 26
		if declared == 0 {
			if !d.has(4) {
				return Record{}, d.truncated("record length (long form)", 4)
			}
			declared, header = int(d.u32()), 30
		}
	}
	if declared < header {
		return Record{}, d.fail(ErrFormat, "record length", 8, "declares %d bytes, less than the %d-byte header", declared, header)
	}
	if declared > len(b) {
		return Record{}, d.fail(ErrTruncated, "record length", 8, "declares %d bytes, %d present", declared, len(b))
	}
	d.b = b[:declared]
	r, err := d.record(header)
	if err != nil && f == FormatANSI2009 && looksISO2011(d.b) {
		return Record{}, d.fail(ErrUnsupportedVersion, "version", 4, "\"030\\x00\" with the layout of ISO/IEC 19794-2:2011, which is not supported")
	}
	return r, err
}

// looksISO2011 reports whether a "030" record has the ISO/IEC 19794-2:2011
// layout: a 2-byte representation count, a certification flag, then the
// first representation's 4-byte length.
func looksISO2011(b []byte) bool {
	if len(b) < 19 {
		return false
	}
	n := binary.BigEndian.Uint16(b[12:])
	end := 15 + int64(binary.BigEndian.Uint32(b[15:]))
	return n >= 1 && b[14] <= 1 && (end == int64(len(b)) || n > 1 && end < int64(len(b)))
}

func (d *decoder) record(header int) (Record, error) {
	r := Record{Format: d.f}
	if d.f != FormatISO2005 {
		r.ProductOwner, r.ProductType = d.u16(), d.u16()
	}
	eq := d.u16()
	r.EquipmentCompliance, r.EquipmentID = uint8(eq>>12), eq&0xfff
	var g geometry
	if d.f != FormatANSI2009 {
		g = geometry{d.u16(), d.u16(), d.u16(), d.u16()}
	}
	nOff := d.off
	n := int(d.u8())
	d.u8() // reserved
	if n == 0 {
		return Record{}, d.fail(ErrFormat, "number of finger views", nOff, "0; a record holds at least one view")
	}
	// Check the smallest possible size of n views before allocating them.
	if min := n * d.minView(); !d.has(min) {
		return Record{}, d.fail(ErrTruncated, "number of finger views", nOff, "%d views need at least %d bytes, %d remain", n, min, len(d.b)-d.off)
	}
	r.Views = make([]View, n)
	for i := range r.Views {
		if err := d.view(&r.Views[i], i+1, g); err != nil {
			return Record{}, err
		}
	}
	if d.off != len(d.b) {
		return Record{}, d.fail(ErrFormat, "record length", 8, "declares %d bytes, the views end at %d", len(d.b), d.off)
	}
	return r, nil
}

// minView is the size of a view with no minutiae and no extended data.
func (d *decoder) minView() int {
	if d.f == FormatANSI2009 {
		return 17 + 2
	}
	return 4 + 2
}

func (d *decoder) view(v *View, n int, g geometry) error {
	field := func(s string) string { return fmt.Sprintf("view %d %s", n, s) }
	start := d.off
	if !d.has(d.minView() - 2) {
		return d.truncated(field("header"), d.minView()-2)
	}
	if v.Position = Position(d.u8()); v.Position > maxPosition {
		return d.fail(ErrFormat, field("finger position"), start, "%d, not a code 0..10", v.Position)
	}
	if d.f == FormatANSI2009 {
		v.ViewNumber, v.Impression = d.u8(), Impression(d.u8())
	} else {
		x := d.u8()
		v.ViewNumber, v.Impression = x>>4, Impression(x&0xf)
	}
	qOff := d.off
	if v.Quality = d.u8(); v.Quality > 100 {
		return d.fail(ErrFormat, field("finger quality"), qOff, "%d, above 100", v.Quality)
	}
	if d.f == FormatANSI2009 {
		v.QualityAlgorithm = d.u32()
		g = geometry{d.u16(), d.u16(), d.u16(), d.u16()}
	}
	v.Width, v.Height = int(g.w), int(g.h)
	v.DPI = dpiOf(g.xres)
	if g.yres != g.xres {
		v.YDPI = dpiOf(g.yres)
	}
	count := int(d.u8())
	if !d.has(count * 6) {
		i := (len(d.b) - d.off) / 6
		d.off += i * 6
		return d.truncated(field(fmt.Sprintf("minutia %d", i+1)), 6)
	}
	v.Minutiae = make([]Minutia, count)
	for i := range v.Minutiae {
		m := &v.Minutiae[i]
		o := d.off
		xw, yw, a, q := d.u16(), d.u16(), d.u8(), d.u8()
		mf := func(s string) string { return field(fmt.Sprintf("minutia %d %s", i+1, s)) }
		if m.Kind = Kind(xw >> 14); m.Kind > KindBifurcation {
			return d.fail(ErrFormat, mf("type"), o, "type code 3 is reserved")
		}
		// The top two bits of the y word are reserved; they are ignored.
		m.X, m.Y = int(xw&maxCoord), int(yw&maxCoord)
		if g.w > 0 && m.X >= int(g.w) {
			return d.fail(ErrFormat, mf("x"), o, "%d, outside the image width %d", m.X, g.w)
		}
		if g.h > 0 && m.Y >= int(g.h) {
			return d.fail(ErrFormat, mf("y"), o+2, "%d, outside the image height %d", m.Y, g.h)
		}
		if d.f == FormatISO2005 {
			m.Angle = float64(a) * (2 * math.Pi / 256)
		} else {
			if a >= 180 {
				return d.fail(ErrFormat, mf("angle"), o+4, "%d; in 2° units angles run 0..179", a)
			}
			m.Angle = float64(a) * (math.Pi / 90)
		}
		if m.Quality = q; q > 100 {
			return d.fail(ErrFormat, mf("quality"), o+5, "%d, above 100", q)
		}
	}
	return d.extended(v, field)
}

// extended reads a view's extended data: a 2-byte length, then blocks of
// a 2-byte type, a 2-byte length counting the 4-byte header, and data.
//
// Core and delta blocks (type 2) are read by their content, the counts and
// per-item types they hold, as NIST's libbiomeval does: its sample records
// (testdata/nist) declare core/delta lengths 1 and 2 bytes off their
// content, while their record lengths agree with the content. The block
// and extended data lengths still have to add up, and the record length
// has the last word.
func (d *decoder) extended(v *View, field func(string) string) error {
	if !d.has(2) {
		return d.truncated(field("extended data length"), 2)
	}
	lOff := d.off
	left := int(d.u16())
	for k := 1; left > 0; k++ {
		block := func(s string) string { return field(fmt.Sprintf("extended data block %d%s", k, s)) }
		if left < 4 {
			return d.fail(ErrFormat, field("extended data length"), lOff, "%d bytes left after block %d, a block header needs 4", left, k-1)
		}
		o := d.off
		if !d.has(4) {
			return d.truncated(block(" header"), 4)
		}
		typ, bl := d.u16(), int(d.u16())
		if bl < 4 || bl > left {
			return d.fail(ErrFormat, block(" length"), o+2, "%d, outside 4..%d", bl, left)
		}
		size := bl - 4
		if typ == coreDeltaType {
			var ok bool
			if size, ok = coreDeltaSize(d.b[d.off:], d.f == FormatISO2005); !ok {
				return d.fail(ErrTruncated, block(" cores and deltas"), d.off, "the counts need more than the %d bytes left", len(d.b)-d.off)
			}
		}
		if !d.has(size) {
			return d.truncated(block(" data"), size)
		}
		v.Extended = append(v.Extended, ExtendedData{Type: typ, Data: append([]byte(nil), d.b[d.off:d.off+size]...)})
		d.off += size
		left -= bl
	}
	return nil
}

const coreDeltaType = 2

// coreDeltaSize is the size of the core and delta data at the start of b:
// a core count, the cores, a delta count, the deltas. Each core or delta
// is x and y (2 bytes each) and, when its information type is 01
// (angular), one angle for a core and three for a delta. ISO/IEC
// 19794-2:2005 gives the type in the top bits of each item's x and the
// count in the low 4 bits of the count byte; ANSI INCITS 378 gives the
// type in the top bits of the count byte for all its items.
func coreDeltaSize(b []byte, iso bool) (int, bool) {
	off := 0
	for _, angles := range [2]int{1, 3} {
		if off >= len(b) {
			return 0, false
		}
		head := b[off]
		off++
		for range head & 0x0f {
			t := head >> 6
			if iso {
				if off >= len(b) {
					return 0, false
				}
				t = b[off] >> 6
			}
			off += 4
			if t == 1 {
				off += angles
			}
		}
	}
	return off, off <= len(b)
}

// dpiOf converts a resolution in pixels per centimetre to pixels per inch.
// ppcmOf(dpiOf(p)) == p for every p, so records round-trip.
func dpiOf(ppcm uint16) int { return int(math.Round(float64(ppcm) * 2.54)) }

func ppcmOf(dpi int) int { return int(math.Round(float64(dpi) / 2.54)) }

// Marshal writes the record in r.Format.
func (r Record) Marshal() ([]byte, error) { return r.MarshalFormat(r.Format) }

// MarshalISO writes the record as ISO/IEC 19794-2:2005.
func (r Record) MarshalISO() ([]byte, error) { return r.MarshalFormat(FormatISO2005) }

// MarshalANSI writes the record as ANSI INCITS 378-2004.
func (r Record) MarshalANSI() ([]byte, error) { return r.MarshalFormat(FormatANSI2004) }

// MarshalFormat writes the record in format f. Angles are rounded to the
// format's unit (360/256° for ISO, 2° for ANSI). Fields f has no room for
// are dropped (the CBEFF product id in ISO, QualityAlgorithm outside
// INCITS 378-2009), and so are core and delta blocks when converting
// between ISO and ANSI, since their angles are in the source's units.
// Values f cannot hold are refused with ErrUnrepresentable.
func (r Record) MarshalFormat(f Format) ([]byte, error) {
	fail := func(field, detail string, args ...any) error {
		return &Error{Format: f, Field: field, Offset: -1, Err: ErrUnrepresentable, Detail: fmt.Sprintf(detail, args...)}
	}
	if f < FormatISO2005 || f > FormatANSI2009 {
		return nil, fail("format", "%d is not a record format", f)
	}
	if len(r.Views) == 0 || len(r.Views) > 255 {
		return nil, fail("number of finger views", "%d, outside 1..255", len(r.Views))
	}
	if r.EquipmentCompliance > 0xf || r.EquipmentID > 0xfff {
		return nil, fail("capture equipment", "compliance %d (max 15), device id %d (max 4095)", r.EquipmentCompliance, r.EquipmentID)
	}
	dropCoreDelta := r.Format != FormatUnknown && (r.Format == FormatISO2005) != (f == FormatISO2005)
	packed := f != FormatANSI2009
	size := 20
	if packed {
		size = 24
		if f == FormatANSI2004 {
			size = 26
		}
	}
	for i := range r.Views {
		v := &r.Views[i]
		vf := func(s string) string { return fmt.Sprintf("view %d %s", i+1, s) }
		if packed && i > 0 {
			v0 := &r.Views[0]
			if v.Width != v0.Width || v.Height != v0.Height || v.DPI != v0.DPI || v.YDPI != v0.YDPI {
				return nil, fail(vf("image geometry"), "%dx%d at %d/%d dpi differs from view 1 (%dx%d at %d/%d dpi); %s records have one",
					v.Width, v.Height, v.DPI, v.YDPI, v0.Width, v0.Height, v0.DPI, v0.YDPI, f)
			}
		}
		if v.Width < 0 || v.Width > 0xffff || v.Height < 0 || v.Height > 0xffff {
			return nil, fail(vf("image size"), "%dx%d, outside 0..65535", v.Width, v.Height)
		}
		if p, q := ppcmOf(v.DPI), ppcmOf(v.YDPI); p < 0 || p > 0xffff || q < 0 || q > 0xffff {
			return nil, fail(vf("resolution"), "%d/%d dpi, outside 0..166459", v.DPI, v.YDPI)
		}
		if v.Position > maxPosition {
			return nil, fail(vf("finger position"), "%d, not a code 0..10", v.Position)
		}
		if packed && (v.ViewNumber > 15 || v.Impression > 15) {
			return nil, fail(vf("view number and impression type"), "%d and %d, these are 4-bit fields", v.ViewNumber, v.Impression)
		}
		if v.Quality > 100 {
			return nil, fail(vf("finger quality"), "%d, above 100", v.Quality)
		}
		if len(v.Minutiae) > 255 {
			return nil, fail(vf("number of minutiae"), "%d, above 255", len(v.Minutiae))
		}
		for j, m := range v.Minutiae {
			mf := func(s string) string { return vf(fmt.Sprintf("minutia %d %s", j+1, s)) }
			if m.X < 0 || m.X > coordLimit(v.Width) {
				return nil, fail(mf("x"), "%d, outside 0..%d", m.X, coordLimit(v.Width))
			}
			if m.Y < 0 || m.Y > coordLimit(v.Height) {
				return nil, fail(mf("y"), "%d, outside 0..%d", m.Y, coordLimit(v.Height))
			}
			if m.Kind > KindBifurcation {
				return nil, fail(mf("type"), "%d, not 0..2", m.Kind)
			}
			if m.Quality > 100 {
				return nil, fail(mf("quality"), "%d, above 100", m.Quality)
			}
			if math.IsNaN(m.Angle) || math.IsInf(m.Angle, 0) {
				return nil, fail(mf("angle"), "%v", m.Angle)
			}
		}
		ext := 0
		for k, e := range v.Extended {
			if dropCoreDelta && e.Type == 2 {
				continue
			}
			if e.Type == coreDeltaType {
				if n, ok := coreDeltaSize(e.Data, f == FormatISO2005); !ok || n != len(e.Data) {
					return nil, fail(vf(fmt.Sprintf("extended data block %d", k+1)), "%d bytes of core and delta data whose counts say otherwise", len(e.Data))
				}
			}
			if len(e.Data) > 0xffff-4 {
				return nil, fail(vf(fmt.Sprintf("extended data block %d", k+1)), "%d bytes, above 65531", len(e.Data))
			}
			ext += 4 + len(e.Data)
		}
		if ext > 0xffff {
			return nil, fail(vf("extended data"), "%d bytes, above 65535", ext)
		}
		size += 4 + 6*len(v.Minutiae) + 2 + ext
		if !packed {
			size += 13
		}
	}
	long := f == FormatANSI2004 && size > 0xffff
	if long {
		size += 4
	}
	if uint64(size) > math.MaxUint32 {
		return nil, fail("record length", "%d bytes, above 4 GiB", size)
	}

	b := make([]byte, 0, size)
	be := binary.BigEndian
	b = append(b, magic...)
	if f == FormatANSI2009 {
		b = append(b, version30...)
	} else {
		b = append(b, version20...)
	}
	switch {
	case f == FormatANSI2004 && !long:
		b = be.AppendUint16(b, uint16(size))
	case f == FormatANSI2004:
		b = be.AppendUint16(b, 0)
		b = be.AppendUint32(b, uint32(size))
	default:
		b = be.AppendUint32(b, uint32(size))
	}
	if f != FormatISO2005 {
		b = be.AppendUint16(b, r.ProductOwner)
		b = be.AppendUint16(b, r.ProductType)
	}
	b = be.AppendUint16(b, uint16(r.EquipmentCompliance)<<12|r.EquipmentID)
	appendGeometry := func(b []byte, v *View) []byte {
		y := v.YDPI
		if y == 0 {
			y = v.DPI
		}
		b = be.AppendUint16(b, uint16(v.Width))
		b = be.AppendUint16(b, uint16(v.Height))
		b = be.AppendUint16(b, uint16(ppcmOf(v.DPI)))
		return be.AppendUint16(b, uint16(ppcmOf(y)))
	}
	if packed {
		b = appendGeometry(b, &r.Views[0])
	}
	b = append(b, byte(len(r.Views)), 0)
	for i := range r.Views {
		v := &r.Views[i]
		b = append(b, byte(v.Position))
		if packed {
			b = append(b, v.ViewNumber<<4|byte(v.Impression))
		} else {
			b = append(b, v.ViewNumber, byte(v.Impression))
		}
		b = append(b, v.Quality)
		if !packed {
			b = be.AppendUint32(b, v.QualityAlgorithm)
			b = appendGeometry(b, v)
		}
		b = append(b, byte(len(v.Minutiae)))
		for _, m := range v.Minutiae {
			b = be.AppendUint16(b, uint16(m.Kind)<<14|uint16(m.X))
			b = be.AppendUint16(b, uint16(m.Y))
			a := NormAngle(m.Angle)
			if f == FormatISO2005 {
				b = append(b, byte(int(math.Round(a*256/(2*math.Pi)))%256))
			} else {
				b = append(b, byte(int(math.Round(a*90/math.Pi))%180))
			}
			b = append(b, m.Quality)
		}
		lenAt := len(b)
		b = append(b, 0, 0)
		for _, e := range v.Extended {
			if dropCoreDelta && e.Type == 2 {
				continue
			}
			b = be.AppendUint16(b, e.Type)
			b = be.AppendUint16(b, uint16(4+len(e.Data)))
			b = append(b, e.Data...)
		}
		be.PutUint16(b[lenAt:], uint16(len(b)-lenAt-2))
	}
	if len(b) != size {
		panic(fmt.Sprintf("minutiae: marshal wrote %d bytes, computed %d", len(b), size))
	}
	return b, nil
}

// coordLimit is the largest coordinate a record can hold in an image of
// the given size (0: size not given).
func coordLimit(size int) int {
	if size > 0 {
		return min(size-1, maxCoord)
	}
	return maxCoord
}
