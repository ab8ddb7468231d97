package lds

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dg2 is the BSI 2008 DG2, kept in templates/facerecord's test data.
func dg2(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../facerecord/testdata/bsi2008/Datagroup2.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkError: err is an *Error wrapping kind whose message has want.
func checkErr(t *testing.T, err, kind error, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an *Error wrapping %v containing %q", err, kind, want)
	}
}

func TestCOM(t *testing.T) {
	c, err := ParseCOM(readFile(t, "bsi2008/EF_COM.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LDSVersion != "1.7" || c.UnicodeVersion != "4.0.0" || len(c.DataGroups) != 4 ||
		c.DataGroups[0] != 1 || c.DataGroups[1] != 2 || c.DataGroups[2] != 3 || c.DataGroups[3] != 14 {
		t.Fatalf("%+v", c)
	}
}

func TestDG1(t *testing.T) {
	b := readFile(t, "bsi2008/Datagroup1.bin")
	m, err := ParseDG1(b)
	if err != nil {
		t.Fatal(err)
	}
	want := MRZ{Format: TD3, DocumentCode: "P", IssuingState: "D", Nationality: "D",
		PrimaryIdentifier: "MUSTERMANN", SecondaryIdentifier: "ERIKA", DocumentNumber: "C11T002JM",
		DateOfBirth: "960812", DateOfExpiry: "131031", Sex: "F"}
	m.Lines = nil
	if !reflect.DeepEqual(*m, want) {
		t.Fatalf("got %+v\nwant %+v", *m, want)
	}
	// Each check digit, changed, is an error naming it; 5 bytes of
	// header (61 5B 5F1F 58) precede the MRZ.
	for _, c := range []struct {
		at    int
		field string
	}{{44 + 9, "document number"}, {44 + 19, "date of birth"}, {44 + 27, "date of expiry"}, {44 + 42, "optional data"}, {87, "composite"}} {
		bad := bytes.Clone(b)
		bad[5+c.at] = '0' + (bad[5+c.at]-'0'+1)%10
		if bad[5+c.at] == '<'+1 {
			bad[5+c.at] = '1'
		}
		_, err := ParseDG1(bad)
		checkErr(t, err, ErrFormat, "tag 5F1F: "+c.field+" check digit")
		if e := err.(*Error); e.Offset != 5+c.at {
			t.Errorf("%s: offset %d, want %d", c.field, e.Offset, 5+c.at)
		}
	}
	// A changed date of birth fails its check digit (and so the composite).
	bad := bytes.Clone(b)
	bad[5+44+13] = '8'
	_, err = ParseDG1(bad)
	checkErr(t, err, ErrFormat, "lds: DG1 at byte 68: tag 5F1F: date of birth check digit: '2', computed ")
}

// TestMRZLayouts: the ICAO 9303 part 4–6 specimens (Anna Maria Eriksson,
// Utopia) in TD1, TD2 and TD3, wrapped in DG1.
func TestMRZLayouts(t *testing.T) {
	for _, c := range []struct {
		mrz  string
		want MRZ
	}{
		{"I<UTOD231458907<<<<<<<<<<<<<<<" + "7408122F1204159UTO<<<<<<<<<<<6" + "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
			MRZ{Format: TD1, DocumentCode: "I", IssuingState: "UTO", DocumentNumber: "D23145890", DateOfBirth: "740812", Sex: "F", DateOfExpiry: "120415", Nationality: "UTO", PrimaryIdentifier: "ERIKSSON", SecondaryIdentifier: "ANNA MARIA"}},
		// A long document number continues in the optional data.
		{"I<UTOD23145890<7349<<<<<<<<<<<" + "7408122F1204159UTO<<<<<<<<<<<6" + "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
			MRZ{Format: TD1, DocumentCode: "I", IssuingState: "UTO", DocumentNumber: "D23145890734", DateOfBirth: "740812", Sex: "F", DateOfExpiry: "120415", Nationality: "UTO", PrimaryIdentifier: "ERIKSSON", SecondaryIdentifier: "ANNA MARIA"}},
		{"I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<" + "D231458907UTO7408122F1204159<<<<<<<6",
			MRZ{Format: TD2, DocumentCode: "I", IssuingState: "UTO", DocumentNumber: "D23145890", DateOfBirth: "740812", Sex: "F", DateOfExpiry: "120415", Nationality: "UTO", PrimaryIdentifier: "ERIKSSON", SecondaryIdentifier: "ANNA MARIA"}},
		{"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<" + "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
			MRZ{Format: TD3, DocumentCode: "P", IssuingState: "UTO", DocumentNumber: "L898902C3", DateOfBirth: "740812", Sex: "F", DateOfExpiry: "120415", Nationality: "UTO", PrimaryIdentifier: "ERIKSSON", SecondaryIdentifier: "ANNA MARIA", OptionalData: "ZE184226B"}},
	} {
		dg1 := append([]byte{0x61, byte(len(c.mrz) + 3), 0x5F, 0x1F, byte(len(c.mrz))}, c.mrz...)
		m, err := ParseDG1(dg1)
		if err != nil {
			t.Fatalf("%s: %v", c.want.Format, err)
		}
		m.Lines = nil
		if !reflect.DeepEqual(*m, c.want) {
			t.Errorf("got %+v\nwant %+v", *m, c.want)
		}
	}
	long := "I<UTOD23145890<7348<<<<<<<<<<<" + "7408122F1204159UTO<<<<<<<<<<<6" + "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"
	_, err := ParseDG1(append([]byte{0x61, 93, 0x5F, 0x1F, 90}, long...))
	checkErr(t, err, ErrFormat, "lds: DG1 at byte 23: tag 5F1F: document number check digit: '8', computed '9'")
}

func TestDG3(t *testing.T) {
	fs, err := ParseDG3(readFile(t, "bsi2008/Datagroup3.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Position != 2 || fs[1].Position != 7 {
		t.Fatalf("%d fingers", len(fs))
	}
	for _, f := range fs {
		if f.Compression != CompressionWSQ || f.Width != 620 || f.Height != 620 || f.ImageResolutionX != 500 {
			t.Errorf("%s: %v %d×%d at %d ppi", PositionName(f.Position), f.Compression, f.Width, f.Height, f.ImageResolutionX)
		}
		img, err := f.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 620 || b.Dy() != 620 {
			t.Errorf("%s decodes to %v", PositionName(f.Position), b)
		}
	}
}

func TestDG4(t *testing.T) {
	irises, err := ParseDG4(readFile(t, "bsi2008/Datagroup4.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int{{163, 149}, {160, 152}}
	if len(irises) != 2 {
		t.Fatalf("%d irises", len(irises))
	}
	for i, ir := range irises {
		if ir.Format != IrisFormat2005 || ir.Compression != CompressionJPEG2000 || ir.ImageWidth != want[i][0] || ir.ImageHeight != want[i][1] {
			t.Errorf("iris %d: %v %v %d×%d", i, ir.Format, ir.Compression, ir.ImageWidth, ir.ImageHeight)
		}
		if _, err := ir.Decode(); !errors.Is(err, ErrNeedsJPEG2000) {
			t.Errorf("iris %d: Decode: %v", i, err)
		}
	}
	if irises[0].Eye != EyeRight || irises[1].Eye != EyeLeft {
		t.Errorf("eyes %v, %v", irises[0].Eye, irises[1].Eye)
	}
}

func TestIris2011(t *testing.T) {
	b := readFile(t, "iris01.iso2011")
	irises, err := ParseIrisRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(irises) != 1 || irises[0].Format != IrisFormat2011 || irises[0].Compression != CompressionPNG || irises[0].ImageOffset != 78 {
		t.Fatalf("%+v", irises)
	}
	img, err := irises[0].Decode()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 76 || b.Dy() != 47 {
		t.Fatalf("decodes to %v", b)
	}
}

func TestDG14DG15(t *testing.T) {
	d14, err := ParseDG14(readFile(t, "bsi2008/Datagroup14.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d14.Protocols) != 3 || d14.SecurityInfos[0] != 0x31 {
		t.Fatalf("%v", d14.Protocols)
	}
	d15, err := ParseDG15(readFile(t, "bsi2008/Datagroup15.bin"))
	if err != nil {
		t.Fatal(err)
	}
	k, ok := d15.PublicKey.(*rsa.PublicKey)
	if !ok || k.N.BitLen() != 1024 || k.E != 65537 || d15.Quirk == "" {
		t.Fatalf("%T %q", d15.PublicKey, d15.Quirk)
	}
}

func TestSODHashes(t *testing.T) {
	s, err := ParseSOD(readFile(t, "bsi2008/EF_SOD.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if s.HashName != "SHA-1" || len(s.Hashes) != 4 || s.DocumentSigner == nil || s.DocumentSigner.Subject == "" {
		t.Fatalf("%s, %d hashes, signer %+v", s.HashName, len(s.Hashes), s.DocumentSigner)
	}
	files := map[int][]byte{1: readFile(t, "bsi2008/Datagroup1.bin"), 2: dg2(t), 3: readFile(t, "bsi2008/Datagroup3.bin"), 14: readFile(t, "bsi2008/Datagroup14.bin")}
	for dg, b := range files {
		if err := s.CheckHash(dg, b); err != nil {
			t.Errorf("DG%d: %v", dg, err)
		}
	}
	bad := bytes.Clone(files[1])
	bad[20] ^= 1
	checkErr(t, s.CheckHash(1, bad), ErrHashMismatch, "lds: DG1 at byte 0: SHA-1 hash: ")
	checkErr(t, s.CheckHash(3, files[1]), ErrHashMismatch, "lds: DG3 at byte 0: SHA-1 hash: ")
	checkErr(t, s.CheckHash(4, readFile(t, "bsi2008/Datagroup4.bin")), ErrHashMismatch, "the SOD holds no hash for DG4")
}

// parsers are every parser, by the file that holds its input.
var parsers = []struct {
	file  string
	parse func([]byte) (any, error)
}{
	{"bsi2008/EF_COM.bin", func(b []byte) (any, error) { return ParseCOM(b) }},
	{"bsi2008/Datagroup1.bin", func(b []byte) (any, error) { return ParseDG1(b) }},
	{"bsi2008/Datagroup3.bin", func(b []byte) (any, error) { return ParseDG3(b) }},
	{"bsi2008/Datagroup4.bin", func(b []byte) (any, error) { return ParseDG4(b) }},
	{"bsi2008/Datagroup14.bin", func(b []byte) (any, error) { return ParseDG14(b) }},
	{"bsi2008/Datagroup15.bin", func(b []byte) (any, error) { return ParseDG15(b) }},
	{"bsi2008/EF_SOD.bin", func(b []byte) (any, error) { return ParseSOD(b) }},
	{"iris01.iso2011", func(b []byte) (any, error) { return ParseIrisRecord(b) }},
}

// TestTruncatedAndPadded: every file cut short is ErrTruncated; padding
// after it is ignored; another file's bytes are refused by their tag.
func TestTruncatedAndPadded(t *testing.T) {
	for i, c := range parsers {
		b := readFile(t, c.file)
		for _, n := range []int{0, 1, 2, 3, len(b) / 2, len(b) - 1} {
			_, err := c.parse(b[:n])
			checkErr(t, err, ErrTruncated, "")
		}
		padded := append(bytes.Clone(b), make([]byte, 32)...)
		if _, err := c.parse(padded); err != nil {
			t.Errorf("%s with padding: %v", c.file, err)
		}
		other := readFile(t, parsers[(i+1)%len(parsers)].file)
		if _, err := c.parse(other); !errors.Is(err, ErrFormat) {
			t.Errorf("%s's parser on %s: %v", c.file, parsers[(i+1)%len(parsers)].file, err)
		}
	}
}

func TestErrors(t *testing.T) {
	dg3 := readFile(t, "bsi2008/Datagroup3.bin")
	dg4 := readFile(t, "bsi2008/Datagroup4.bin")
	mod := func(b []byte, at int, v ...byte) []byte { b = bytes.Clone(b); copy(b[at:], v); return b }
	for _, c := range []struct {
		name  string
		parse func([]byte) (any, error)
		in    []byte
		kind  error
		want  string
	}{
		{"wrong tag", parsers[2].parse, readFile(t, "bsi2008/Datagroup1.bin"), ErrFormat, "lds: DG3 at byte 0: tag 61: not EF.DG3 (tag 63)"},
		{"indefinite length", parsers[1].parse, []byte{0x61, 0x80, 0, 0}, ErrUnsupported, "lds: DG1 at byte 0: tag 61: indefinite length"},
		{"DG3 count", parsers[2].parse, mod(dg3, 11, 3), ErrFormat, "number of instances: 3 declared, 2 templates found"},
		{"DG3 biometric type", parsers[2].parse, mod(dg3, 21, 0x02), ErrFormat, "tag 81: biometric type: 02, want 08 (finger)"},
		{"DG3 magic", parsers[2].parse, mod(dg3, 38, 'F', 'A', 'C'), ErrFormat, "lds: DG3 at byte 38: 19794-4 format identifier"},
		{"DG3 version", parsers[2].parse, mod(dg3, 42, '0', '2', '0'), ErrUnsupported, "19794-4 version"},
		{"DG3 compression", parsers[2].parse, mod(dg3, 67, 9), ErrFormat, "19794-4 image compression algorithm: code 9"},
		{"DG3 says JPEG", parsers[2].parse, mod(dg3, 67, 3), ErrImage, "lds: DG3 at byte 84: 19794-4 finger 1 image: declared JPEG"},
		{"DG3 block length", parsers[2].parse, mod(dg3, 70, 0x00, 0x00, 0x50), ErrTruncated, "19794-4 finger 1 data block length"},
		{"DG4 version", parsers[3].parse, mod(dg4, 46, '0', '3', '0'), ErrUnsupported, "19794-6 version"},
		{"DG4 image format", parsers[3].parse, mod(dg4, 63, 0x07), ErrFormat, "19794-6 image format: 0x07"},
		{"DG4 image length", parsers[3].parse, mod(dg4, 97, 0x00, 0x20), ErrTruncated, "19794-6 subtype 1 image 1 length"},
		{"iris 2011 image format", parsers[7].parse, mod(readFile(t, "iris01.iso2011"), 0x31, 0x06), ErrFormat, "lds: record at byte 49: 19794-6 representation 1 image format"},
		{"COM tag list", parsers[0].parse, mod(readFile(t, "bsi2008/EF_COM.bin"), 20, 0x99), ErrFormat, "lds: EF.COM at byte 20: tag 5C: tag list: 99 is not a data group's tag"},
		{"SOD content", parsers[6].parse, mod(readFile(t, "bsi2008/EF_SOD.bin"), 8, 0x03), ErrFormat, "lds: SOD at byte"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.parse(c.in)
			checkErr(t, err, c.kind, c.want)
		})
	}
}
