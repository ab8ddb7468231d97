package facerecord

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the *.golden.json files from the parser's output")

// goldenFace is a Face in a form to read against the records: enums by
// name, the image by offset, length and SHA-256.
type goldenFace struct {
	Format                  string
	Image                   string // "N bytes at OFFSET, sha256 …"
	ImageType, DeclaredType string
	Size, DeclaredSize      string
	FaceImageType           string
	Gender, EyeColour, Hair string
	Expression              string
	Yaw, Pitch, Roll        string // "degrees ±uncertainty", "-" when absent
	FeaturePoints           int
	SourceType, ColourSpace string
	DeviceType              string
	Quality                 int
}

func angleString(a Angle) string {
	s := "-"
	if a.Set {
		s = fmt.Sprintf("%d°", a.Degrees)
	}
	if a.UncertaintySet {
		s += fmt.Sprintf(" ±%d°", a.Uncertainty)
	}
	return s
}

func toGolden(f Face) goldenFace {
	sum := sha256.Sum256(f.Image)
	return goldenFace{
		Format:        f.Format.String(),
		Image:         fmt.Sprintf("%d bytes at %d, sha256 %s", len(f.Image), f.ImageOffset, hex.EncodeToString(sum[:])),
		ImageType:     f.ImageType.String(),
		DeclaredType:  f.DeclaredImageType.String(),
		Size:          fmt.Sprintf("%d×%d", f.Width, f.Height),
		DeclaredSize:  fmt.Sprintf("%d×%d", f.DeclaredWidth, f.DeclaredHeight),
		FaceImageType: f.FaceImageType.String(),
		Gender:        f.Gender.String(), EyeColour: f.EyeColour.String(), Hair: f.HairColour.String(),
		Expression: f.Expression.String(),
		Yaw:        angleString(f.Pose.Yaw), Pitch: angleString(f.Pose.Pitch), Roll: angleString(f.Pose.Roll),
		FeaturePoints: f.FeaturePoints,
		SourceType:    f.SourceType.String(), ColourSpace: f.ColourSpace.String(),
		DeviceType: fmt.Sprintf("%#04x", f.DeviceType),
		Quality:    f.Quality,
	}
}

// TestGolden compares every face of every valid file with
// testdata/<file>.golden.json; run with -update and review the diff after
// a deliberate change.
func TestGolden(t *testing.T) {
	for _, c := range validFiles {
		t.Run(c.file, func(t *testing.T) {
			faces, err := parseFile(t, c.file, c.dg2)
			if err != nil {
				t.Fatal(err)
			}
			var g []goldenFace
			for _, f := range faces {
				g = append(g, toGolden(f))
			}
			got, err := json.MarshalIndent(g, "", "  ")
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
				t.Errorf("parsed faces differ from %s (run with -update and review the diff)", path)
			}
		})
	}
}
