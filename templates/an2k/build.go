package an2k

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"strconv"
	"time"

	"github.com/bordermatch/bordermatch/capture/wsq"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Header is what a new transaction's Type-1 record says besides its
// domain and TOT.
type Header struct {
	// Originator (ORI) and Destination (DAI) are agency identifiers.
	Originator, Destination string
	// TCN is the transaction control number; TCR the one of the
	// transaction answered ("" if none).
	TCN, TCR string
	// Priority is PRY, "1"–"9" ("" to leave it out).
	Priority string
	// Time gives DAT and GMT; zero means now.
	Time time.Time
}

// NewTransaction starts a transaction of the profile's domain: a Type-1
// record with VER, TOT, DAT, DAI, ORI, TCN, NSR and NTR (19.69 pixels per
// millimetre, 500 ppi, the resolution of Type-4 images), DOM and GMT. The
// TOT must be one of the profile's. CNT is kept up to date by Add and the
// Add* helpers.
func NewTransaction(p *Profile, tot string, h Header) (*Transaction, error) {
	if !p.HasTOT(tot) {
		var codes []string
		for _, t := range p.TOTs {
			codes = append(codes, t.Code)
		}
		return nil, &Error{Offset: -1, Record: 0, Type: 1, Field: fTOT, Err: ErrValue, Detail: fmt.Sprintf("profile %s has no TOT %q (it has %v)", p.Name, tot, codes)}
	}
	now := h.Time
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	t1 := Record{Type: 1}
	for _, f := range []struct {
		num int
		v   []string
	}{
		{fVER, []string{p.Version}}, {fTOT, []string{tot}}, {fDAT, []string{now.Format("20060102")}},
		{fPRY, []string{h.Priority}}, {fDAI, []string{h.Destination}}, {fORI, []string{h.Originator}},
		{fTCN, []string{h.TCN}}, {fTCR, []string{h.TCR}}, {fNSR, []string{"19.69"}}, {fNTR, []string{"19.69"}},
		{fDOM, []string{p.Domain.Name, p.Domain.Version}}, {fGMT, []string{now.Format("20060102150405Z")}},
	} {
		if f.v[0] == "" {
			continue
		}
		fd := TextField(f.num, f.v)
		if bytes.ContainsAny(fd.Value, "\x1c\x1d\x1e") {
			return nil, &Error{Offset: -1, Record: 0, Type: 1, Field: f.num, Err: ErrValue, Detail: "value holds a separator"}
		}
		t1.Set(fd)
	}
	t := &Transaction{Records: []Record{t1}}
	t.syncCNT()
	return t, nil
}

// Add appends a record, giving it the next free IDC (one more than the
// highest so far, from 0) when it has none, updates CNT and returns the
// record's index.
func (t *Transaction) Add(r Record) int {
	if _, ok := r.IDC(); !ok && r.Raw == nil {
		next := 0
		for i := 1; i < len(t.Records); i++ {
			if idc, ok := t.Records[i].IDC(); ok && idc >= next {
				next = idc + 1
			}
		}
		r.Fields = append([]Field(nil), r.Fields...)
		idc := fmt.Sprintf("%02d", next)
		if r.Type == 4 {
			idc = strconv.Itoa(next) // a binary header byte, read back as a number
		}
		r.Set(TextField(2, []string{idc}))
	}
	t.Records = append(t.Records, r)
	t.syncCNT()
	return len(t.Records) - 1
}

func (t *Transaction) syncCNT() {
	cnt := [][]string{{"1", strconv.Itoa(len(t.Records) - 1)}}
	for _, r := range t.Records[1:] {
		idc, _ := r.IDC()
		cnt = append(cnt, []string{strconv.Itoa(r.Type), fmt.Sprintf("%02d", idc)})
	}
	t.Records[0].Set(TextField(fCNT, cnt...))
}

// Fingerprint is a finger image for AddFingerprint and AddType4: either
// WSQ bytes or an uncompressed grey image.
type Fingerprint struct {
	WSQ  []byte
	Gray *image.Gray
	// PPI is the resolution (500 when 0); Type-4 images are always at the
	// transaction's 500 ppi.
	PPI int
	// Position is the finger position (FGP), minutiae.Position's codes and
	// 11–15 for thumbs and slaps.
	Position int
	// Impression is IMP (minutiae.Impression's codes).
	Impression int
}

// data returns the image bytes, the compression (true for WSQ) and size.
func (fp *Fingerprint) data() ([]byte, bool, int, int, error) {
	switch {
	case fp.WSQ != nil && fp.Gray == nil:
		c, err := wsq.DecodeConfig(bytes.NewReader(fp.WSQ))
		if err != nil {
			return nil, false, 0, 0, fmt.Errorf("%w: WSQ: %w", ErrValue, err)
		}
		return fp.WSQ, true, c.Width, c.Height, nil
	case fp.Gray != nil && fp.WSQ == nil:
		b := fp.Gray.Bounds()
		pix := make([]byte, 0, b.Dx()*b.Dy())
		for y := b.Min.Y; y < b.Max.Y; y++ {
			pix = append(pix, fp.Gray.Pix[fp.Gray.PixOffset(b.Min.X, y):][:b.Dx()]...)
		}
		return pix, false, b.Dx(), b.Dy(), nil
	}
	return nil, false, 0, 0, fmt.Errorf("%w: a fingerprint needs WSQ bytes or a grey image, one of them", ErrValue)
}

// AddFingerprint adds a Type-14 record (variable-resolution fingerprint)
// with CGA WSQ20 or NONE.
func (t *Transaction) AddFingerprint(fp Fingerprint) (int, error) {
	data, isWSQ, w, h, err := fp.data()
	if err != nil {
		return 0, err
	}
	ppi := fp.PPI
	if ppi == 0 {
		ppi = 500
	}
	cga := "NONE"
	if isWSQ {
		cga = "WSQ20"
	}
	it := strconv.Itoa
	r := Record{Type: 14}
	for _, f := range []Field{
		TextField(3, []string{it(fp.Impression)}), TextField(4, []string{t.Originator()}),
		TextField(5, []string{t.Date()}), TextField(6, []string{it(w)}), TextField(7, []string{it(h)}),
		TextField(8, []string{"1"}), TextField(9, []string{it(ppi)}), TextField(10, []string{it(ppi)}),
		TextField(11, []string{cga}), TextField(12, []string{"8"}), TextField(13, []string{it(fp.Position)}),
		{Num: 999, Value: data},
	} {
		r.Set(f)
	}
	return t.Add(r), nil
}

// AddType4 adds a Type-4 record (the legacy 500 ppi fingerprint, GCA 1 for
// WSQ and 0 for uncompressed).
func (t *Transaction) AddType4(fp Fingerprint) (int, error) {
	data, isWSQ, w, h, err := fp.data()
	if err != nil {
		return 0, err
	}
	if w > 65535 || h > 65535 {
		return 0, fmt.Errorf("%w: %d×%d is too large for Type-4", ErrValue, w, h)
	}
	gca := "0"
	if isWSQ {
		gca = "1"
	}
	it := strconv.Itoa
	fgp := [][]string{{it(fp.Position)}, {"255"}, {"255"}, {"255"}, {"255"}, {"255"}}
	r := Record{Type: 4, Fields: []Field{
		TextField(3, []string{it(fp.Impression)}), TextField(4, fgp...), TextField(5, []string{"0"}),
		TextField(6, []string{it(w)}), TextField(7, []string{it(h)}), TextField(8, []string{gca}),
		{Num: 9, Value: data},
	}}
	return t.Add(r), nil
}

// AddFace adds a Type-10 face record (IMT FACE) holding a JPEG with the
// subject acquisition profile (SAP, 10.013: 1 unknown, 10–15 and 20–52
// for the profiles of the standard).
func (t *Transaction) AddFace(jpg []byte, sap int) (int, error) {
	c, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil {
		return 0, fmt.Errorf("%w: face JPEG: %w", ErrValue, err)
	}
	csp := "YCC"
	if c.ColorModel == color.GrayModel {
		csp = "GRAY"
	}
	it := strconv.Itoa
	r := Record{Type: 10}
	for _, f := range []Field{
		TextField(3, []string{"FACE"}), TextField(4, []string{t.Originator()}), TextField(5, []string{t.Date()}),
		TextField(6, []string{it(c.Width)}), TextField(7, []string{it(c.Height)}),
		TextField(8, []string{"0"}), TextField(9, []string{"1"}), TextField(10, []string{"1"}),
		TextField(11, []string{"JPEGB"}), TextField(12, []string{csp}), TextField(13, []string{it(sap)}),
		{Num: 999, Value: jpg},
	} {
		r.Set(f)
	}
	return t.Add(r), nil
}

// AddMinutiae adds one Type-9 record per view of the minutiae record,
// holding the INCITS 378 block (9.126–9.137; extended data such as ridge
// counts and cores is not written). Transaction.Minutiae reads each back.
func (t *Transaction) AddMinutiae(rec minutiae.Record) ([]int, error) {
	if len(rec.Views) == 0 {
		return nil, fmt.Errorf("%w: a minutiae record without views", ErrValue)
	}
	var out []int
	for i := range rec.Views {
		out = append(out, t.Add(type9(&rec, &rec.Views[i])))
	}
	return out, nil
}
