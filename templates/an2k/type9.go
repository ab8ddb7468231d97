package an2k

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Fields of the INCITS 378 block of a Type-9 record (ANSI/NIST-ITL
// 1-2011 table 29, fields 9.126–9.150).
const (
	fCBI = 126 // CBEFF format owner US format type US product id (hex)
	fCEI = 127 // equipment compliance (APS) US capture equipment id
	fHLL = 128
	fVLL = 129
	fSLC = 130
	fHPS = 131
	fVPS = 132
	fFVW = 133 // finger view number
	fFGP = 134
	fFQD = 135 // quality value US vendor id US algorithm id, per subfield
	fNOM = 136
	fFMD = 137 // index US x US y US angle (2°) US type US quality, per minutia
)

// incitsOwner and incitsType are the CBEFF format owner (INCITS M1, 0x001B)
// and format type of an INCITS 378 finger minutiae record (0x0201).
const (
	incitsOwner = 27
	incitsType  = 513
)

// Minutiae converts the INCITS 378 block (fields 9.126–9.137) of Type-9
// record i into a one-view minutiae.Record in ANSI INCITS 378-2004 form:
// position, size, resolution, view number, impression (9.003), quality and
// the minutiae with their types, qualities and angles (2° units in the
// record; 9.126's product identifier and 9.135's vendor and algorithm ids
// are read as hexadecimal). Ridge counts, cores and deltas (9.138–9.141)
// are not converted.
// A Type-9 without the block (the legacy NIST 9.005–9.012 or EFS 9.300+
// features only) gives an error wrapping ErrUnsupported.
func (t *Transaction) Minutiae(i int) (minutiae.Record, error) {
	if i < 0 || i >= len(t.Records) || t.Records[i].Type != 9 {
		return minutiae.Record{}, &Error{Offset: -1, Record: i, Err: ErrUnsupported, Detail: "not a Type-9 record"}
	}
	r := &t.Records[i]
	fail := func(field int, format string, args ...any) error {
		return &Error{Offset: -1, Record: i, Type: 9, Field: field, Err: ErrValue, Detail: fmt.Sprintf(format, args...)}
	}
	if _, ok := r.Field(fFMD); !ok {
		if _, ok := r.Field(fNOM); !ok {
			return minutiae.Record{}, &Error{Offset: -1, Record: i, Type: 9, Err: ErrUnsupported, Detail: "no INCITS 378 block (9.126–9.150)"}
		}
	}
	num := func(field, max int) (int, error) {
		n, ok := r.Int(field)
		if !ok || n < 0 || n > max {
			return 0, fail(field, "%q is not a number 0–%d", r.Value(field), max)
		}
		return n, nil
	}
	rec := minutiae.Record{Format: minutiae.FormatANSI2004}
	if cpi := r.Item(fCBI, 0, 2); cpi != "" {
		v, err := strconv.ParseUint(cpi, 16, 32)
		if err != nil {
			return rec, fail(fCBI, "product id %q is not 8 hex digits", cpi)
		}
		rec.ProductOwner, rec.ProductType = uint16(v>>16), uint16(v)
	}
	if _, ok := r.Field(fCEI); ok {
		aps, err1 := strconv.Atoi(r.Item(fCEI, 0, 0))
		cei, err2 := strconv.ParseUint(r.Item(fCEI, 0, 1), 16, 12)
		if err1 != nil || err2 != nil || aps < 0 || aps > 15 {
			return rec, fail(fCEI, "%q is not <compliance 0–15><US><equipment id, 3 hex digits>", r.Value(fCEI))
		}
		rec.EquipmentCompliance, rec.EquipmentID = uint8(aps), uint16(cei)
	}
	var v minutiae.View
	var err error
	fields := []struct {
		dst   *int
		field int
		max   int
	}{{&v.Width, fHLL, 65535}, {&v.Height, fVLL, 65535}}
	for _, f := range fields {
		if *f.dst, err = num(f.field, f.max); err != nil {
			return rec, err
		}
	}
	slc, _ := r.Int(fSLC)
	hps, _ := r.Int(fHPS)
	vps, _ := r.Int(fVPS)
	v.DPI, v.YDPI = toPPI(slc, hps), toPPI(slc, vps)
	if v.YDPI == v.DPI {
		v.YDPI = 0
	}
	pos, err := num(fFGP, 255)
	if err != nil {
		return rec, err
	}
	v.Position = minutiae.Position(pos)
	if fvw, ok := r.Int(fFVW); ok && fvw >= 0 && fvw < 256 {
		v.ViewNumber = uint8(fvw)
	}
	if imp, ok := r.Int(3); ok && imp >= 0 && imp < 256 {
		v.Impression = minutiae.Impression(imp)
	}
	if q, err := strconv.Atoi(r.Item(fFQD, 0, 0)); err == nil && q >= 0 && q <= 100 {
		v.Quality = uint8(q)
		vendor, err1 := strconv.ParseUint(r.Item(fFQD, 0, 1), 16, 16)
		alg, err2 := strconv.ParseUint(r.Item(fFQD, 0, 2), 16, 16)
		if err1 == nil && err2 == nil {
			v.QualityAlgorithm = uint32(vendor)<<16 | uint32(alg)
		}
	}
	nom, err := num(fNOM, 65535)
	if err != nil {
		return rec, err
	}
	if fmd, ok := r.Field(fFMD); ok && len(fmd.Value) > 0 {
		for j, s := range fmd.Subfields() {
			var n [6]int
			if len(s) != 6 {
				return rec, fail(fFMD, "minutia %d has %d items, not 6", j+1, len(s))
			}
			for k := range n {
				if n[k], err = strconv.Atoi(strings.TrimSpace(s[k])); err != nil || n[k] < 0 {
					return rec, fail(fFMD, "minutia %d item %d %q is not a number", j+1, k+1, s[k])
				}
			}
			if n[3] > 179 || n[4] > 2 || n[5] > 100 {
				return rec, fail(fFMD, "minutia %d: angle %d (0–179), type %d (0–2), quality %d (0–100)", j+1, n[3], n[4], n[5])
			}
			v.Minutiae = append(v.Minutiae, minutiae.Minutia{
				X: n[1], Y: n[2], Angle: float64(2*n[3]) * math.Pi / 180,
				Kind: minutiae.Kind(n[4]), Quality: uint8(n[5]),
			})
		}
	}
	if nom != len(v.Minutiae) {
		return rec, fail(fNOM, "NOM %d, 9.137 holds %d minutiae", nom, len(v.Minutiae))
	}
	rec.Views = []minutiae.View{v}
	return rec, nil
}

func toPPI(slc, scale int) int {
	switch slc {
	case 1:
		return scale
	case 2:
		return int(math.Round(float64(scale) * 2.54))
	}
	return 0
}

// type9 is a Type-9 record (without IDC) holding one view's minutiae as
// the INCITS 378 block; FMT (9.004) is "U", as the block is not the
// legacy NIST standard format.
func type9(rec *minutiae.Record, v *minutiae.View) Record {
	r := Record{Type: 9}
	it := strconv.Itoa
	ydpi := v.YDPI
	if ydpi == 0 {
		ydpi = v.DPI
	}
	r.Set(TextField(3, []string{it(int(v.Impression))}))
	r.Set(TextField(4, []string{"U"}))
	r.Set(TextField(fCBI, []string{it(incitsOwner), it(incitsType), fmt.Sprintf("%04X%04X", rec.ProductOwner, rec.ProductType)}))
	r.Set(TextField(fCEI, []string{it(int(rec.EquipmentCompliance)), fmt.Sprintf("%03X", rec.EquipmentID)}))
	r.Set(TextField(fHLL, []string{it(v.Width)}))
	r.Set(TextField(fVLL, []string{it(v.Height)}))
	r.Set(TextField(fSLC, []string{"1"}))
	r.Set(TextField(fHPS, []string{it(v.DPI)}))
	r.Set(TextField(fVPS, []string{it(ydpi)}))
	r.Set(TextField(fFVW, []string{it(int(v.ViewNumber))}))
	r.Set(TextField(fFGP, []string{it(int(v.Position))}))
	r.Set(TextField(fFQD, []string{it(int(v.Quality)), fmt.Sprintf("%04X", v.QualityAlgorithm>>16), fmt.Sprintf("%04X", v.QualityAlgorithm&0xFFFF)}))
	r.Set(TextField(fNOM, []string{it(len(v.Minutiae))}))
	var fmd [][]string
	for j, m := range v.Minutiae {
		a := int(math.Round(minutiae.NormAngle(m.Angle)*180/math.Pi/2)) % 180
		fmd = append(fmd, []string{it(j + 1), it(m.X), it(m.Y), it(a), it(int(m.Kind)), it(int(m.Quality))})
	}
	if len(fmd) > 0 {
		r.Set(TextField(fFMD, fmd...))
	}
	return r
}

// LegacyMinutia is a minutia of the legacy NIST standard format of a
// Type-9 record (FMT "S", 9.012 MRC), as written: converting it to image
// pixels needs the image's resolution and height from another record.
type LegacyMinutia struct {
	// X, Y are the location in units of 0.01 mm, as the record gives them;
	// Theta the direction in degrees.
	X, Y, Theta int
	// Quality is 0–63 (0: manually encoded), -1 when absent.
	Quality int
	// Type is "A" (ridge ending), "B" (bifurcation), "C" (compound) or "D"
	// (undetermined), "" when absent.
	Type string
}

// LegacyMinutiae reads the minutiae of Type-9 record i in the legacy NIST
// standard format: 9.010 MIN (their number) and 9.012 MRC, one subfield
// per minutia with its index, XXXXYYYYTTT location and direction, quality
// and type. Ridge counts are not read. A record without 9.012 gives an
// error wrapping ErrUnsupported; one that does not add up, ErrValue.
func (t *Transaction) LegacyMinutiae(i int) ([]LegacyMinutia, error) {
	if i < 0 || i >= len(t.Records) || t.Records[i].Type != 9 {
		return nil, &Error{Offset: -1, Record: i, Err: ErrUnsupported, Detail: "not a Type-9 record"}
	}
	r := &t.Records[i]
	mrc, ok := r.Field(12)
	if !ok {
		return nil, &Error{Offset: -1, Record: i, Type: 9, Err: ErrUnsupported, Detail: "no legacy minutiae (9.012 MRC)"}
	}
	fail := func(field int, format string, args ...any) error {
		return &Error{Offset: -1, Record: i, Type: 9, Field: field, Err: ErrValue, Detail: fmt.Sprintf(format, args...)}
	}
	var out []LegacyMinutia
	if len(mrc.Value) > 0 {
		for j, s := range mrc.Subfields() {
			if len(s) < 2 || len(s[1]) != 11 {
				return nil, fail(12, "minutia %d: location %q is not XXXXYYYYTTT", j+1, s[min(1, len(s)-1)])
			}
			var n [3]int
			for k, part := range []string{s[1][:4], s[1][4:8], s[1][8:]} {
				v, err := strconv.Atoi(part)
				if err != nil || v < 0 {
					return nil, fail(12, "minutia %d: location %q is not XXXXYYYYTTT", j+1, s[1])
				}
				n[k] = v
			}
			m := LegacyMinutia{X: n[0], Y: n[1], Theta: n[2], Quality: -1}
			if len(s) > 2 {
				q, err := strconv.Atoi(s[2])
				if err != nil || q < 0 {
					return nil, fail(12, "minutia %d: quality %q", j+1, s[2])
				}
				m.Quality = q
			}
			if len(s) > 3 {
				m.Type = s[3]
			}
			out = append(out, m)
		}
	}
	if n, ok := r.Int(10); !ok || n != len(out) {
		return nil, fail(10, "MIN %q, 9.012 holds %d minutiae", r.Value(10), len(out))
	}
	return out, nil
}
