package lds

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the *.golden.json files from the parsers' output")

// bytesAt describes a slice of the input by offset, length and SHA-256.
func bytesAt(b []byte, off int) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes at %d, sha256 %s", len(b), off, hex.EncodeToString(sum[:]))
}

type goldenFinger struct {
	Record, View            int
	Position                string
	Impression, Quality     int
	Size, ImageSize         string
	Resolution              string // "image x×y (scan x×y) per inch"
	Depth, AcquisitionLevel int
	Compression, Image      string
}

type goldenIris struct {
	Format               string
	Record, Index        int
	Eye                  string
	Quality              int
	Qualities            []IrisQuality `json:",omitempty"`
	Size, ImageSize      string
	Depth                int
	ImageFormat          string
	Compression          string
	Rotation             string
	CaptureDate          string `json:",omitempty"`
	RepresentationLength int    `json:",omitempty"`
	Image                string
}

func goldenIrises(irises []Iris) []goldenIris {
	var g []goldenIris
	for _, ir := range irises {
		g = append(g, goldenIris{
			Format: ir.Format.String(), Record: ir.Record, Index: ir.Index, Eye: ir.Eye.String(),
			Quality: ir.Quality, Qualities: ir.Qualities,
			Size: fmt.Sprintf("%d×%d", ir.Width, ir.Height), ImageSize: fmt.Sprintf("%d×%d", ir.ImageWidth, ir.ImageHeight),
			Depth: ir.Depth, ImageFormat: fmt.Sprintf("%#04x", ir.ImageFormat), Compression: ir.Compression.String(),
			Rotation:    fmt.Sprintf("%#04x ±%#04x", ir.RotationAngle, ir.RotationUncertainty),
			CaptureDate: ir.CaptureDate, RepresentationLength: ir.RepresentationLength,
			Image: bytesAt(ir.Image, ir.ImageOffset),
		})
	}
	return g
}

// golden parses a test file with its parser and gives what to compare.
func golden(t *testing.T, file string, b []byte) any {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	switch file {
	case "bsi2008/EF_COM.bin":
		c, err := ParseCOM(b)
		must(err)
		return c
	case "bsi2008/Datagroup1.bin":
		m, err := ParseDG1(b)
		must(err)
		return m
	case "bsi2008/Datagroup3.bin":
		fs, err := ParseDG3(b)
		must(err)
		var g []goldenFinger
		for _, f := range fs {
			unit := map[int]string{1: "inch", 2: "cm"}[f.ScaleUnits]
			g = append(g, goldenFinger{
				Record: f.Record, View: f.View, Position: fmt.Sprintf("%d (%s)", f.Position, PositionName(f.Position)),
				Impression: f.Impression, Quality: f.Quality,
				Size: fmt.Sprintf("%d×%d", f.Width, f.Height), ImageSize: fmt.Sprintf("%d×%d", f.ImageWidth, f.ImageHeight),
				Resolution: fmt.Sprintf("image %d×%d (scan %d×%d) per %s", f.ImageResolutionX, f.ImageResolutionY, f.ScanResolutionX, f.ScanResolutionY, unit),
				Depth:      f.Depth, AcquisitionLevel: f.AcquisitionLevel,
				Compression: f.Compression.String(), Image: bytesAt(f.Image, f.ImageOffset),
			})
		}
		return g
	case "bsi2008/Datagroup4.bin":
		irises, err := ParseDG4(b)
		must(err)
		return goldenIrises(irises)
	case "iris01.iso2011":
		irises, err := ParseIrisRecord(b)
		must(err)
		return goldenIrises(irises)
	case "bsi2008/Datagroup14.bin":
		d, err := ParseDG14(b)
		must(err)
		return struct {
			SecurityInfos string
			Protocols     []string
		}{bytesAt(d.SecurityInfos, bytes.Index(b, d.SecurityInfos)), d.Protocols}
	case "bsi2008/Datagroup15.bin":
		d, err := ParseDG15(b)
		must(err)
		key := fmt.Sprintf("%T", d.PublicKey)
		if k, ok := d.PublicKey.(*rsa.PublicKey); ok {
			key = fmt.Sprintf("RSA, %d-bit modulus, exponent %d", k.N.BitLen(), k.E)
		}
		return struct{ SubjectPublicKeyInfo, Key, Quirk string }{bytesAt(d.SubjectPublicKeyInfo, bytes.Index(b, d.SubjectPublicKeyInfo)), key, d.Quirk}
	case "bsi2008/EF_SOD.bin":
		s, err := ParseSOD(b)
		must(err)
		var hashes []string
		for dg, h := range s.Hashes {
			hashes = append(hashes, fmt.Sprintf("DG%d %X", dg, h))
		}
		sort.Strings(hashes)
		g := struct {
			Version                    int
			HashAlgorithm, HashName    string
			Hashes                     []string
			LDSVersion, UnicodeVersion string
			Content                    string
			Signer                     map[string]string
		}{Version: s.Version, HashAlgorithm: s.HashAlgorithm, HashName: s.HashName, Hashes: hashes,
			LDSVersion: s.LDSVersion, UnicodeVersion: s.UnicodeVersion, Content: bytesAt(s.Content, bytes.Index(b, s.Content))}
		if d := s.DocumentSigner; d != nil {
			g.Signer = map[string]string{
				"DER": bytesAt(d.DER, bytes.Index(b, d.DER)), "Subject": d.Subject, "Issuer": d.Issuer,
				"SerialNumber": d.SerialNumber.String(), "NotBefore": d.NotBefore.Format(time.RFC3339),
				"NotAfter": d.NotAfter.Format(time.RFC3339), "X509Error": d.X509Error,
			}
		}
		return g
	}
	t.Fatalf("no parser for %s", file)
	return nil
}

// TestGolden compares what every test file parses to with
// testdata/<file>.golden.json; run with -update and review the diff after
// a deliberate change.
func TestGolden(t *testing.T) {
	for _, c := range parsers {
		t.Run(c.file, func(t *testing.T) {
			got, err := json.MarshalIndent(golden(t, c.file, readFile(t, c.file)), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := "testdata/" + strings.NewReplacer("/", "_", ".", "_").Replace(c.file) + ".golden.json"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed content differs from %s (run with -update and review the diff)", path)
			}
		})
	}
}
