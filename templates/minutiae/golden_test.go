package minutiae

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the *.golden.json files from the parser's output")

// The golden form is meant to be read against the standards: angles in
// degrees, kinds and positions by name, one minutia per line.
type goldenRecord struct {
	Format              string
	ProductOwner        uint16 `json:",omitempty"`
	ProductType         uint16 `json:",omitempty"`
	EquipmentCompliance uint8
	EquipmentID         uint16
	Views               []goldenView
}

type goldenView struct {
	Position         string
	ViewNumber       uint8
	Impression       uint8
	Quality          uint8
	QualityAlgorithm string `json:",omitempty"`
	Width, Height    int
	DPI              int
	YDPI             int `json:",omitempty"`
	// "x y angle° kind quality"
	Minutiae []string
	Extended []goldenExtended `json:",omitempty"`
}

type goldenExtended struct {
	Type  uint16
	Bytes int
	Hex   string
}

func toGolden(r Record) goldenRecord {
	g := goldenRecord{Format: r.Format.String(), ProductOwner: r.ProductOwner, ProductType: r.ProductType,
		EquipmentCompliance: r.EquipmentCompliance, EquipmentID: r.EquipmentID}
	for _, v := range r.Views {
		gv := goldenView{Position: v.Position.String(), ViewNumber: v.ViewNumber, Impression: uint8(v.Impression),
			Quality: v.Quality, Width: v.Width, Height: v.Height, DPI: v.DPI, YDPI: v.YDPI,
			Minutiae: []string{}}
		if v.QualityAlgorithm != 0 {
			gv.QualityAlgorithm = fmt.Sprintf("%#08x", v.QualityAlgorithm)
		}
		for _, m := range v.Minutiae {
			gv.Minutiae = append(gv.Minutiae, fmt.Sprintf("%d %d %.3f %s %d", m.X, m.Y, m.Angle*180/math.Pi, m.Kind, m.Quality))
		}
		for _, e := range v.Extended {
			gv.Extended = append(gv.Extended, goldenExtended{Type: e.Type, Bytes: len(e.Data), Hex: hex.EncodeToString(e.Data)})
		}
		g.Views = append(g.Views, gv)
	}
	return g
}

func TestGolden(t *testing.T) {
	for _, f := range []string{
		"nist/fmr.iso2005", "nist/fmr.ansi2004", "nist/fmr.ansi2007",
		"sourceafis/iso-probe.dat", "sourceafis/iso-matching.dat", "sourceafis/iso-nonmatching.dat",
		"fvc2002/db1_b/101_1.iso",
	} {
		t.Run(f, func(t *testing.T) {
			r, err := Parse(readFile(t, "testdata/"+f))
			if err != nil {
				t.Fatal(err)
			}
			// What the standards require of every view, checked here so the
			// goldens only need reading for the values themselves.
			for i, v := range r.Views {
				for j, m := range v.Minutiae {
					if m.X >= v.Width || m.Y >= v.Height || m.Angle < 0 || m.Angle >= 2*math.Pi || m.Quality > 100 || m.Kind > KindBifurcation {
						t.Errorf("view %d minutia %d out of range: %+v in %dx%d", i+1, j+1, m, v.Width, v.Height)
					}
				}
			}
			got, err := json.MarshalIndent(toGolden(r), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := "testdata/" + strings.NewReplacer("/", "_", ".", "_").Replace(f) + ".golden.json"
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
				t.Errorf("parsed record differs from %s (run with -update and review the diff)", path)
			}
		})
	}
}
