package an2k

import (
	"errors"
	"image"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// imageOf returns the image data of the first record of the type in a
// test file.
func imageOf(t *testing.T, file string, typ int) []byte {
	t.Helper()
	_, tr := parseFile(t, "testdata/"+file)
	for i, r := range tr.Records {
		if r.Type == typ {
			im, err := tr.Image(i)
			if err != nil {
				t.Fatal(err)
			}
			return im.Data
		}
	}
	t.Fatalf("%s has no Type-%d", file, typ)
	return nil
}

func testMinutiae() minutiae.Record {
	deg := func(k int) float64 { return float64(2*k) * math.Pi / 180 }
	return minutiae.Record{
		Format: minutiae.FormatANSI2004, ProductOwner: 0x0101, ProductType: 0x0203,
		EquipmentCompliance: 8, EquipmentID: 0x123,
		Views: []minutiae.View{
			{Position: minutiae.RightIndex, Width: 512, Height: 480, DPI: 500, Quality: 80,
				Impression: minutiae.LiveScanPlain, QualityAlgorithm: 0x00FF0001,
				Minutiae: []minutiae.Minutia{
					{X: 10, Y: 20, Angle: deg(0), Kind: minutiae.KindEnding, Quality: 50},
					{X: 300, Y: 400, Angle: deg(179), Kind: minutiae.KindBifurcation, Quality: 100},
					{X: 511, Y: 0, Angle: deg(45), Kind: minutiae.KindOther},
				}},
			{Position: minutiae.LeftThumb, Width: 800, Height: 750, DPI: 1000, YDPI: 500, ViewNumber: 1,
				Impression: minutiae.LiveScanRolled},
		},
	}
}

// TestBuild: a transaction built with every helper encodes, parses back
// to the same records, and its images, minutiae and subject read back as
// built.
func TestBuild(t *testing.T) {
	p, err := LoadProfile("ebts")
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	tr, err := NewTransaction(p, "CAR", Header{Originator: "BM0000001", Destination: "WVIAFIS0Z", TCN: "BM-1", Time: when})
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{"name": "DOE,JANE", "date_of_birth": "19800102", "sex": "F", "place_of_birth": "FR", "nationality": "FR"}
	t2, err := p.Type2(attrs)
	if err != nil {
		t.Fatal(err)
	}
	iT2 := tr.Add(t2)
	wsqData := imageOf(t, "valid1.1.an2", 4)
	iT14, err := tr.AddFingerprint(Fingerprint{WSQ: wsqData, Position: 2, Impression: 1})
	if err != nil {
		t.Fatal(err)
	}
	grey := image.NewGray(image.Rect(0, 0, 7, 5))
	for i := range grey.Pix {
		grey.Pix[i] = byte(i * 7)
	}
	iRaw, err := tr.AddFingerprint(Fingerprint{Gray: grey, Position: 7, PPI: 1000})
	if err != nil {
		t.Fatal(err)
	}
	iT4, err := tr.AddType4(Fingerprint{WSQ: wsqData, Position: 10})
	if err != nil {
		t.Fatal(err)
	}
	face := imageOf(t, "valid1.3.an2", 10)
	iT10, err := tr.AddFace(face, 1)
	if err != nil {
		t.Fatal(err)
	}
	mrec := testMinutiae()
	iT9, err := tr.AddMinutiae(mrec)
	if err != nil {
		t.Fatal(err)
	}

	out, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "built", tr, got)

	if got.TOT() != "CAR" || got.Version() != "0502" || got.Date() != "20261207" || got.GMT() != "20261207210000Z" || got.Originator() != "BM0000001" || got.TCN() != "BM-1" {
		t.Errorf("Type-1: TOT %q VER %q DAT %q GMT %q ORI %q TCN %q", got.TOT(), got.Version(), got.Date(), got.GMT(), got.Originator(), got.TCN())
	}
	if n, _ := got.Domain(); n != "NORAM" {
		t.Errorf("DOM %q", n)
	}
	var types, idcs []int
	for _, r := range got.Records[1:] {
		idc, _ := r.IDC()
		types, idcs = append(types, r.Type), append(idcs, idc)
	}
	if !reflect.DeepEqual(types, []int{2, 14, 14, 4, 10, 9, 9}) || !reflect.DeepEqual(idcs, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("types %v IDCs %v", types, idcs)
	}

	subj := p.Subject(&got.Records[iT2])
	attrs["retention"] = "N" // the profile's default
	if !reflect.DeepEqual(subj, attrs) {
		t.Errorf("subject %v, want %v", subj, attrs)
	}

	for _, c := range []struct {
		i                int
		comp             string
		w, h, ppi, depth int
		pos              []int
		imageType        string
	}{
		{iT14, "wsq", 512, 512, 500, 8, []int{2}, ""},
		{iRaw, "none", 7, 5, 1000, 8, []int{7}, ""},
		{iT4, "wsq", 512, 512, 500, 8, []int{10}, ""},
		{iT10, "jpeg", 300, 400, 0, 24, nil, "FACE"},
	} {
		im, err := got.Image(c.i)
		if err != nil {
			t.Fatal(err)
		}
		if im.Compression != c.comp || im.Width != c.w || im.Height != c.h || im.PPI != c.ppi || im.Depth != c.depth ||
			!reflect.DeepEqual(im.Positions, c.pos) || im.ImageType != c.imageType {
			t.Errorf("record %d: %+v", c.i, *im)
		}
		img, err := im.Decode()
		if err != nil || img.Bounds().Dx() != c.w || img.Bounds().Dy() != c.h {
			t.Errorf("record %d: decoded %v, %v", c.i, img.Bounds(), err)
		}
		if c.i == iRaw && !reflect.DeepEqual(img.(*image.Gray).Pix, grey.Pix) {
			t.Error("the uncompressed image changed")
		}
	}
	if im, _ := got.Image(iT10); im.SAP != 1 {
		t.Errorf("SAP %d", im.SAP)
	}

	for k, i := range iT9 {
		m, err := got.Minutiae(i)
		if err != nil {
			t.Fatal(err)
		}
		want := mrec
		want.Views = []minutiae.View{mrec.Views[k]}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("view %d: minutiae\n%+v\nwant\n%+v", k, m, want)
		}
		// The record the block came from marshals as INCITS 378.
		if _, err := m.Marshal(); err != nil {
			t.Errorf("view %d: %v", k, err)
		}
	}
	// A legacy (FMT S) Type-9 has no INCITS 378 block.
	_, legacy := parseFile(t, "testdata/valid1.14.an2")
	if _, err := legacy.Minutiae(3); !errors.Is(err, ErrUnsupported) {
		t.Errorf("legacy Type-9: %v", err)
	}
	if _, err := got.Image(iT2); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Type-2 image: %v", err)
	}
}

// TestProfiles: every embedded profile makes a Type-2 from all its
// attributes that reads back the same through Encode and Parse, and
// refuses missing mandatory fields, long values and unknown attributes.
func TestProfiles(t *testing.T) {
	names := Profiles()
	if !reflect.DeepEqual(names, []string{"ebts", "int-i"}) {
		t.Fatalf("profiles %v", names)
	}
	if _, err := LoadProfile("prum"); err == nil || !strings.Contains(err.Error(), "known: ebts, int-i") {
		t.Errorf("unknown profile: %v", err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			p, err := LoadProfile(strings.ToUpper(name))
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != name || p.Basis == "" || p.Version == "" || p.Domain.Name == "" || len(p.TOTs) == 0 || len(p.Fields) == 0 {
				t.Fatalf("incomplete profile %+v", p)
			}
			seen := map[int]bool{}
			attrs := map[string]string{}
			var mandatory *Type2Field
			for i, f := range p.Fields {
				if f.Num < 3 || seen[f.Num] || f.Attribute == "" || f.Mnemonic == "" || f.MaxLen <= 0 {
					t.Errorf("field %+v", f)
				}
				seen[f.Num] = true
				attrs[f.Attribute] = strings.Repeat("A", f.MaxLen)
				if f.Mandatory && f.Default == "" {
					mandatory = &p.Fields[i]
				}
			}
			tr, err := NewTransaction(p, p.TOTs[0].Code, Header{Originator: "ORI", Destination: "DAI", TCN: "1"})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.Type2(attrs)
			if err != nil {
				t.Fatal(err)
			}
			i := tr.Add(r)
			out, err := tr.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, name, tr, got)
			if s := p.Subject(&got.Records[i]); !reflect.DeepEqual(s, attrs) {
				t.Errorf("subject %v, want %v", s, attrs)
			}
			if n, v := got.Domain(); n != p.Domain.Name || v != p.Domain.Version {
				t.Errorf("DOM %q %q", n, v)
			}

			check := func(what string, attrs map[string]string, field int) {
				t.Helper()
				_, err := p.Type2(attrs)
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrValue) || e.Field != field || e.Type != 2 {
					t.Errorf("%s: %v", what, err)
				}
			}
			long := map[string]string{}
			for k, v := range attrs {
				long[k] = v
			}
			long[p.Fields[0].Attribute] += "A"
			check("too long", long, p.Fields[0].Num)
			check("unknown attribute", map[string]string{"shoe_size": "44"}, 0)
			if mandatory != nil {
				delete(attrs, mandatory.Attribute)
				check("mandatory missing", attrs, mandatory.Num)
			}
			if _, err := NewTransaction(p, "NOPE", Header{}); !errors.Is(err, ErrValue) {
				t.Errorf("unknown TOT: %v", err)
			}
		})
	}
}

// TestLegacyMinutiae reads the legacy NIST minutiae (FMT S) of the test
// files; valid1.15.an2 writes a 13-digit location and is refused.
func TestLegacyMinutiae(t *testing.T) {
	for _, c := range []struct {
		file  string
		rec   int
		n     int
		first LegacyMinutia
	}{
		{"type9.an2k", 1, 28, LegacyMinutia{X: 132, Y: 715, Theta: 248, Quality: 0, Type: "A"}},
		{"type9-13.an2k", 2, 28, LegacyMinutia{X: 132, Y: 714, Theta: 248, Quality: 0, Type: "A"}},
		{"valid1.14.an2", 3, 1, LegacyMinutia{X: 2500, Y: 2500, Theta: 0, Quality: 2, Type: "A"}},
	} {
		_, tr := parseFile(t, "testdata/"+c.file)
		m, err := tr.LegacyMinutiae(c.rec)
		if err != nil || len(m) != c.n || m[0] != c.first {
			t.Errorf("%s: %d minutiae, first %+v, %v", c.file, len(m), m, err)
		}
	}
	_, tr := parseFile(t, "testdata/valid1.15.an2")
	var e *Error
	if _, err := tr.LegacyMinutiae(2); !errors.As(err, &e) || !errors.Is(err, ErrValue) || e.Field != 12 {
		t.Errorf("valid1.15.an2: %v", err)
	}
	_, efs := parseFile(t, "testdata/type9-efs.an2k")
	if _, err := efs.LegacyMinutiae(1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("EFS record: %v", err)
	}
}
