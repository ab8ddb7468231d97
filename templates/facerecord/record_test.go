package facerecord

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image/jpeg"
	"os"
	"reflect"
	"strconv"
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

// parseFile reads a test file as a DG2 or a bare record.
func parseFile(t testing.TB, name string, dg2 bool) ([]Face, error) {
	b := readFile(t, name)
	if dg2 {
		return ParseDG2(b)
	}
	return ParseRecord(b)
}

// validFiles are the files that decode, with what they hold. Sizes are
// the images' own, as OpenCV decoded them (testdata/SOURCES.md).
var validFiles = []struct {
	file           string
	dg2            bool
	format         Format
	faces          int
	imageType      ImageType
	declaredType   ImageType
	w, h           int
	declW, declH   int
	faceImageType  FaceImageType
	imageOffset    int
	goldenImage    string
	imageByteCount int
}{
	{"bsi2008/Datagroup2.bin", true, FormatISO19794, 1, ImageJPEG2000, ImageJPEG2000, 413, 531, 337, 449, FaceImageFullFrontal, 84, "", 14999},
	{"ICAO_39794_5_AP_DG2_MandFields.dat", true, FormatISO39794, 1, ImageJPEG2000, ImageJPEG2000, 413, 531, 0, 0, FaceImageUnknown, 76, "ICAO_39794_5_AP_Face.jpg", 15000},
	{"ICAO_39794_5_AP_MandFields.dat", false, FormatISO39794, 1, ImageJPEG2000, ImageJPEG2000, 413, 531, 0, 0, FaceImageUnknown, 44, "ICAO_39794_5_AP_Face.jpg", 15000},
	{"ISO19794_Test1_Data.bin", false, FormatISO19794, 1, ImageJPEG, ImageJPEG2000, 148, 70, 148, 70, FaceImageTokenFrontal, 46, "ISO19794_Test1_Face.jpg", 5099},
	{"face01.iso2005", false, FormatISO19794, 1, ImageJPEG, ImageJPEG, 280, 320, 280, 320, FaceImageBasic, 78, "", 26826},
}

func TestValidFiles(t *testing.T) {
	for _, c := range validFiles {
		t.Run(c.file, func(t *testing.T) {
			faces, err := parseFile(t, c.file, c.dg2)
			if err != nil {
				t.Fatal(err)
			}
			if len(faces) != c.faces {
				t.Fatalf("%d faces, want %d", len(faces), c.faces)
			}
			f := faces[0]
			if f.Format != c.format || f.ImageType != c.imageType || f.DeclaredImageType != c.declaredType {
				t.Errorf("format %v, image %v, declared %v; want %v, %v, %v", f.Format, f.ImageType, f.DeclaredImageType, c.format, c.imageType, c.declaredType)
			}
			if f.Width != c.w || f.Height != c.h || f.DeclaredWidth != c.declW || f.DeclaredHeight != c.declH {
				t.Errorf("size %d×%d declared %d×%d, want %d×%d declared %d×%d", f.Width, f.Height, f.DeclaredWidth, f.DeclaredHeight, c.w, c.h, c.declW, c.declH)
			}
			if f.FaceImageType != c.faceImageType {
				t.Errorf("face image type %v, want %v", f.FaceImageType, c.faceImageType)
			}
			if f.ImageOffset != c.imageOffset || len(f.Image) != c.imageByteCount {
				t.Errorf("image of %d bytes at %d, want %d at %d", len(f.Image), f.ImageOffset, c.imageByteCount, c.imageOffset)
			}
			in := readFile(t, c.file)
			if !bytes.Equal(in[f.ImageOffset:f.ImageOffset+len(f.Image)], f.Image) {
				t.Error("Image is not the input's bytes at ImageOffset")
			}
			// The size again, by a reader independent of the package's.
			w, h := testImageSize(t, f.Image)
			if w != f.Width || h != f.Height {
				t.Errorf("the image declares %d×%d, Face says %d×%d", w, h, f.Width, f.Height)
			}
			if f.ImageType == ImageJPEG {
				cfg, err := jpeg.DecodeConfig(bytes.NewReader(f.Image))
				if err != nil || cfg.Width != f.Width || cfg.Height != f.Height {
					t.Errorf("image/jpeg: %d×%d, %v", cfg.Width, cfg.Height, err)
				}
			}
			if c.goldenImage != "" && !bytes.Equal(f.Image, readFile(t, c.goldenImage)) {
				t.Errorf("extracted image differs from %s", c.goldenImage)
			}
		})
	}
}

// testImageSize is the test's own size reader: the first SOFn segment of
// a JPEG, the ihdr box of a JP2 (found by its type bytes).
func testImageSize(t *testing.T, img []byte) (w, h int) {
	t.Helper()
	if bytes.HasPrefix(img, []byte{0xFF, 0xD8}) {
		for i := 2; i+9 < len(img); {
			m, l := img[i+1], int(binary.BigEndian.Uint16(img[i+2:]))
			if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
				return int(binary.BigEndian.Uint16(img[i+7:])), int(binary.BigEndian.Uint16(img[i+5:]))
			}
			i += 2 + l
		}
		t.Fatal("no SOF marker")
	}
	if i := bytes.Index(img, []byte("ihdr")); i >= 4 && i+12 <= len(img) {
		return int(binary.BigEndian.Uint32(img[i+8:])), int(binary.BigEndian.Uint32(img[i+4:]))
	}
	t.Fatal("no ihdr box")
	return 0, 0
}

// TestFace01Metadata checks the metadata of the one record that fills it.
func TestFace01Metadata(t *testing.T) {
	faces, err := parseFile(t, "face01.iso2005", false)
	if err != nil {
		t.Fatal(err)
	}
	f := faces[0]
	// Bytes 20–33: feature points 4, gender 2, eye 1, hair 6, mask 00044D,
	// expression 3, pose 05 0A 0F, uncertainties 15 1A 1F; image info at
	// 66: 00 00 0118 0140 01 02 4947 0000.
	want := Face{Format: FormatISO19794, ImageType: ImageJPEG, DeclaredImageType: ImageJPEG,
		Width: 280, Height: 320, DeclaredWidth: 280, DeclaredHeight: 320, FaceImageType: FaceImageBasic,
		Gender: GenderFemale, EyeColour: EyeBlack, HairColour: HairWhite, Expression: ExpressionSmileOpen,
		Pose: Pose{
			Yaw:   Angle{Set: true, Degrees: (5 - 91) * 2, UncertaintySet: true, Uncertainty: 0x15 - 1},
			Pitch: Angle{Set: true, Degrees: (10 - 91) * 2, UncertaintySet: true, Uncertainty: 0x1A - 1},
			Roll:  Angle{Set: true, Degrees: (15 - 91) * 2, UncertaintySet: true, Uncertainty: 0x1F - 1},
		},
		FeaturePoints: 4, SourceType: SourceStaticDigitalCamera, DeviceType: 0x4947, ColourSpace: ColourRGB24}
	f.Image, f.ImageOffset = nil, 0
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

func TestInvalidImage(t *testing.T) {
	for _, c := range []struct {
		file string
		off  int
	}{
		{"ICAO_39794_5_AP_MandFields_InvalidImage.dat", 44},
		{"ISO19794_Test2_Data_InvalidImage.bin", 46},
	} {
		_, err := parseFile(t, c.file, false)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrImage) || e.Offset != c.off {
			t.Errorf("%s: %v, want ErrImage at byte %d", c.file, err, c.off)
			continue
		}
		if !strings.Contains(err.Error(), "at byte "+strconv.Itoa(c.off)+":") || !strings.Contains(err.Error(), "signature") {
			t.Errorf("%s: message %q does not name the offset and the signature", c.file, err)
		}
		t.Logf("%s: %v", c.file, err)
	}
	// The same image inside a DG2: the offset is the DG2's.
	dg2 := readFile(t, "ICAO_39794_5_AP_DG2_MandFields.dat")
	bad := readFile(t, "ICAO_39794_5_AP_MandFields_InvalidImage.dat")
	copy(dg2[32:], bad)
	_, err := ParseDG2(dg2)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrImage) || e.Offset != 76 || e.Input != "DG2" {
		t.Errorf("DG2 with the invalid image: %v, want ErrImage at DG2 byte 76", err)
	}
}

// TestTruncations cuts every valid file at every length: each prefix is
// refused with an *Error wrapping a sentinel, never a panic.
func TestTruncations(t *testing.T) {
	for _, c := range validFiles {
		t.Run(c.file, func(t *testing.T) {
			b := readFile(t, c.file)
			for n := 0; n < len(b); n++ {
				in := b[:n:n]
				var err error
				if c.dg2 {
					_, err = ParseDG2(in)
				} else {
					_, err = ParseRecord(in)
				}
				if err == nil {
					t.Fatalf("%d of %d bytes accepted", n, len(b))
				}
				checkError(t, err)
			}
		})
	}
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not *Error", err, err)
	}
	if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrImage) {
		t.Fatalf("error %v wraps no sentinel", err)
	}
	if e.Offset < 0 || !strings.HasPrefix(err.Error(), "facerecord: "+e.Input+" at byte ") {
		t.Fatalf("error %q: offset %d", err, e.Offset)
	}
}

// enc is a BER-TLV element with a definite length in the shortest form.
func enc(tag uint32, val ...[]byte) []byte {
	var v []byte
	for _, x := range val {
		v = append(v, x...)
	}
	var out []byte
	for s := 24; s >= 0; s -= 8 {
		if c := byte(tag >> s); c != 0 || s == 0 || len(out) > 0 {
			out = append(out, c)
		}
	}
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, v...)
}

// dg2 builds an EF.DG2 with the given number of instances around the
// given (BHT, BDB) templates.
func dg2(count byte, bits ...[]byte) []byte {
	return enc(0x75, enc(0x7F61, append([][]byte{{0x02, 0x01, count}}, bits...)...))
}

var bht19794 = enc(0xA1, []byte{0x81, 1, 2, 0x82, 1, 0, 0x87, 2, 1, 1, 0x88, 2, 0, 8})

// multiFaceDG2 is a DG2 of three faces: a 19794-5 record, a 39794-5
// record and a 19794-5 record again.
func multiFaceDG2(t testing.TB) []byte {
	r1 := readFile(t, "ISO19794_Test1_Data.bin")
	r2 := readFile(t, "ICAO_39794_5_AP_MandFields.dat")
	r3 := readFile(t, "face01.iso2005")
	return dg2(3,
		enc(0x7F60, bht19794, enc(0x5F2E, r1)),
		enc(0x7F60, enc(0xA1, []byte{0x87, 2, 1, 1, 0x88, 2, 0, 0x2A}), enc(0x7F2E, r2)),
		enc(0x7F60, bht19794, enc(0x5F2E, r3)))
}

func TestSeveralFaces(t *testing.T) {
	b := multiFaceDG2(t)
	faces, err := ParseDG2(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		format Format
		w, h   int
	}{{FormatISO19794, 148, 70}, {FormatISO39794, 413, 531}, {FormatISO19794, 280, 320}}
	if len(faces) != len(want) {
		t.Fatalf("%d faces, want %d", len(faces), len(want))
	}
	for i, f := range faces {
		if f.Format != want[i].format || f.Width != want[i].w || f.Height != want[i].h {
			t.Errorf("face %d: %v %d×%d, want %v %d×%d", i+1, f.Format, f.Width, f.Height, want[i].format, want[i].w, want[i].h)
		}
		if !bytes.Equal(b[f.ImageOffset:f.ImageOffset+len(f.Image)], f.Image) {
			t.Errorf("face %d: ImageOffset %d is not where the image is", i+1, f.ImageOffset)
		}
	}
	if !bytes.Equal(faces[0].Image, readFile(t, "ISO19794_Test1_Face.jpg")) || !bytes.Equal(faces[1].Image, readFile(t, "ICAO_39794_5_AP_Face.jpg")) {
		t.Error("images differ from the golden ones")
	}
	// A 39794-5 record whose FaceImageDataBlock (65) stands without the
	// ICAO wrapper reads the same.
	bare := readFile(t, "ICAO_39794_5_AP_MandFields.dat")[4:]
	if fs, err := ParseRecord(bare); err != nil || len(fs) != 1 || fs[0].Width != 413 {
		t.Errorf("FaceImageDataBlock without the A1 wrapper: %v", err)
	}
}

func TestErrors(t *testing.T) {
	r1 := readFile(t, "ISO19794_Test1_Data.bin")
	bit := enc(0x7F60, bht19794, enc(0x5F2E, r1))
	real := readFile(t, "ICAO_39794_5_AP_DG2_MandFields.dat")
	longLen := append([]byte(nil), real...)
	longLen[15] = 0x3B // 7F60 at byte 12 declares 0x3BDA bytes
	indefinite := append([]byte{0x75, 0x80}, real[4:]...)
	mismatch := append([]byte(nil), real...)
	mismatch[11] = 2
	enciphered := dg2(1, enc(0x7F60, bht19794, enc(0x7D, []byte{1, 2, 3})))
	iris := dg2(1, enc(0x7F60, enc(0xA1, []byte{0x81, 1, 0x10}), enc(0x5F2E, r1)))
	version := dg2(1, enc(0x7F60, bht19794, enc(0x5F2E, append([]byte("FAC\x00030\x00"), r1[8:]...))))
	for _, c := range []struct {
		name string
		in   []byte
		kind error
		want string
	}{
		{"empty", nil, ErrTruncated, "facerecord: DG2 at byte 0: tag: no bytes left in the input"},
		{"not DG2", enc(0x61, []byte{1}), ErrFormat, "facerecord: DG2 at byte 0: tag 61: not EF.DG2 (tag 75)"},
		{"length past the end", longLen, ErrTruncated, "facerecord: DG2 at byte 12: tag 7F60: length 15322 runs past the end (15066 bytes left in tag 7F61)"},
		{"indefinite length", indefinite, ErrUnsupported, "facerecord: DG2 at byte 0: tag 75: indefinite length"},
		{"instances mismatch", mismatch, ErrFormat, "facerecord: DG2 at byte 9: tag 02: number of instances: 2 declared, 1 templates found"},
		{"zero instances", dg2(0, bit), ErrFormat, "tag 02: number of instances: 0 is outside 1–9"},
		{"enciphered", enciphered, ErrUnsupported, "tag 7D: enciphered biometric data block"},
		{"not a face", iris, ErrFormat, "tag 81: biometric type: 10, want 02 (face)"},
		{"19794-5:2011", version, ErrUnsupported, "facerecord: DG2 at byte 42: 19794-5 version: \"030\\x00\""},
		{"no data block", dg2(1, enc(0x7F60, bht19794)), ErrFormat, "tag 7F60: want a biometric header template (A1) and a biometric data block, found A1"},
		{"four-byte tag", []byte{0x7F, 0x81, 0x82, 0x03, 0x00}, ErrUnsupported, "facerecord: DG2 at byte 0: tag 7F8182: tag: longer than 3 bytes"},
		{"five length bytes", []byte{0x75, 0x85, 0, 0, 0, 0, 1}, ErrFormat, "more than 4 length bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseDG2(c.in)
			if err == nil {
				t.Fatal("accepted")
			}
			checkError(t, err)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v\nwant %v containing %q", err, c.kind, c.want)
			}
		})
	}
	_, err := ParseRecord([]byte("GIF89a"))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "facerecord: record at byte 0: format: 47 49 46 38") {
		t.Errorf("GIF: %v", err)
	}
}

func TestImageInfo(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		typ  ImageType
		w, h int
	}{
		{readFile(t, "ISO19794_Test1_Face.jpg"), ImageJPEG, 148, 70},
		{readFile(t, "ICAO_39794_5_AP_Face.jpg"), ImageJPEG2000, 413, 531},
		// a bare J2K codestream: SOC, SIZ with Xsiz 700, Ysiz 900, offsets 100, 50
		{[]byte{0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0, 0, 0, 0x02, 0xBC, 0, 0, 0x03, 0x84, 0, 0, 0, 100, 0, 0, 0, 50}, ImageJPEG2000, 600, 850},
	} {
		typ, w, h, err := ImageInfo(c.in)
		if err != nil || typ != c.typ || w != c.w || h != c.h {
			t.Errorf("% X…: %v %d×%d %v, want %v %d×%d", c.in[:4], typ, w, h, err, c.typ, c.w, c.h)
		}
	}
	if _, _, _, err := ImageInfo([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2}); !errors.Is(err, ErrImage) {
		t.Errorf("JPEG without SOF: %v", err)
	}
}

// TestISO39794Metadata reads a 39794-5 record built with every field the
// package keeps (the test files hold the mandatory fields only).
func TestISO39794Metadata(t *testing.T) {
	img := readFile(t, "ISO19794_Test1_Face.jpg")
	build := func(size []byte) []byte { return full39794(img, size) }
	// 148 is 0x94: a negative INTEGER without a leading 00.
	_, err := ParseRecord(build([]byte{0x80, 1, 148, 0x81, 1, 70}))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "tag 80: image width: -108 is outside 0–65535") {
		t.Errorf("image width 148 encoded without its leading 00: %v", err)
	}
	faces, err := ParseRecord(build([]byte{0x80, 2, 0, 148, 0x81, 1, 70}))
	if err != nil {
		t.Fatal(err)
	}
	f := faces[0]
	want := Face{Format: FormatISO39794, ImageType: ImageJPEG, DeclaredImageType: ImageJPEG,
		Width: 148, Height: 70, DeclaredWidth: 148, DeclaredHeight: 70, FaceImageType: FaceImageMRTD,
		Gender: GenderFemale, EyeColour: EyeHazel, HairColour: HairBrown, Expression: ExpressionSmile,
		Pose:          Pose{Yaw: Angle{Set: true, Degrees: -10, UncertaintySet: true, Uncertainty: 5}, Roll: Angle{Set: true, Degrees: 3}},
		FeaturePoints: 2, SourceType: SourceStaticDigitalCamera, Quality: 85, ColourSpace: ColourRGB24}
	if !bytes.Equal(f.Image, img) {
		t.Error("image differs")
	}
	f.Image, f.ImageOffset = nil, 0
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

// full39794 is a 39794-5 record with every field the package keeps,
// around img, with the given image size block content.
func full39794(img, size []byte) []byte {
	info := enc(0xA1,
		enc(0xA0, []byte{0x80, 1, 2}),            // image data format: jpeg
		enc(0xA1, enc(0xA1, []byte{0x80, 1, 0})), // face image kind: mrtd
		enc(0xA7, size),                          // image size
		enc(0xA9, enc(0xA1, []byte{0x80, 1, 2})), // colour space: rgb24Bit
	)
	rep := enc(0x30,
		[]byte{0x80, 1, 0},
		enc(0xA1, enc(0xA0, enc(0xA0, enc(0x80, img), info,
			enc(0xA2, enc(0xA1, enc(0xA1, []byte{0x80, 1, 2}))), // technology: digital still camera
		))),
		enc(0xA3, enc(0x30, enc(0xA0, []byte{0x80, 2, 1, 1, 0x81, 1, 1}), enc(0xA1, []byte{0x80, 1, 85}))),
		enc(0xA8,
			enc(0xA0, enc(0xA1, []byte{0x80, 1, 3})), // female
			enc(0xA1, enc(0xA1, []byte{0x80, 1, 7})), // hazel
			enc(0xA2, enc(0xA1, []byte{0x80, 1, 5})), // brown
			enc(0xA5, []byte{0x80, 1, 0, 0x81, 1, 0xFF}),
			enc(0xA6, enc(0xA0, []byte{0x80, 1, 0xF6, 0x81, 1, 5}), enc(0xA2, []byte{0x80, 1, 3})),
		),
		enc(0xA9, enc(0x30, []byte{0xA0, 0}), enc(0x30, []byte{0xA0, 0})),
	)
	return enc(0xA1, enc(0x65, enc(0xA0, []byte{0x80, 1, 3, 0x81, 2, 0x07, 0xE3}), enc(0xA1, rep)))
}

// TestParseEitherForm: Parse tells a DG2 from a bare record by its first
// tag and reads both as their own parsers do.
func TestParseEitherForm(t *testing.T) {
	for _, tc := range validFiles {
		want, err := parseFile(t, tc.file, tc.dg2)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		got, err := Parse(readFile(t, tc.file))
		if err != nil {
			t.Fatalf("%s: Parse: %v", tc.file, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Parse read %+v, want %+v", tc.file, got, want)
		}
	}
	var fe *Error
	if _, err := Parse([]byte{0x75, 0x05, 0x7F}); !errors.As(err, &fe) || fe.Input != "DG2" {
		t.Errorf("a truncated DG2: %v, want a DG2 *Error", err)
	}
	if _, err := Parse([]byte("JFIF")); !errors.As(err, &fe) || fe.Input != "record" || !errors.Is(err, ErrFormat) {
		t.Errorf("neither form: %v", err)
	}
}
