package watchlist

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// fingerArg is one --finger POSITION=FILE.
type fingerArg struct {
	pos  minutiae.Position
	file string
}

// parseFingers reads --finger values: POSITION=FILE, with POSITION a name
// (right-index, left-thumb, …, unknown) or an ISO code 0-10, or FILE alone
// for a finger of unknown position.
func parseFingers(vals []string) ([]fingerArg, error) {
	var out []fingerArg
	for _, v := range vals {
		name, file, ok := strings.Cut(v, "=")
		if !ok {
			out = append(out, fingerArg{minutiae.PositionUnknown, v})
			continue
		}
		pos, known := minutiae.ParsePosition(strings.ToLower(name))
		if !known {
			return nil, usageError("--finger %q: %q is not a finger position (right-thumb … right-little, left-thumb … left-little, unknown, or 0-10)", v, name)
		}
		if file == "" {
			return nil, usageError("--finger %q: no file after %s=", v, name)
		}
		out = append(out, fingerArg{pos, file})
	}
	return out, nil
}

// fingerSample reads a fingerprint file: a minutiae record (ISO/IEC
// 19794-2 or ANSI INCITS 378, which start with "FMR\0"), a Bordermatch
// template, or an image (PNG, TIFF, BMP, JPEG, WSQ) scanned at dpi (0: what
// the file says, else the server's default).
func fingerSample(f fingerArg, dpi int32) (*pb.FingerSample, error) {
	b, err := os.ReadFile(f.file)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("cannot read fingerprint: %v", err)}
	}
	if len(b) == 0 {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("%s is empty", f.file)}
	}
	s := &pb.FingerSample{Position: pb.FingerPosition(f.pos)}
	switch {
	case bytes.HasPrefix(b, []byte("FMR\x00")):
		s.Kind = &pb.FingerSample_Record{Record: b}
	case bytes.HasPrefix(b, []byte("BMT")):
		s.Kind = &pb.FingerSample_Template{Template: b}
	default:
		s.Kind = &pb.FingerSample_Image{Image: b}
		s.Dpi = dpi
	}
	return s, nil
}

// fingerFile tells whether a file in an import folder is a fingerprint:
// its name without extension is a finger position (right-index.png,
// left-thumb.wsq, right-middle.iso), and its extension one of an image or a
// minutiae record.
func fingerFile(name string) (minutiae.Position, bool) {
	ext := strings.ToLower(filepath.Ext(name))
	switch ext {
	case ".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".wsq", ".iso", ".ansi", ".fmr", ".ist":
	default:
		return 0, false
	}
	base := strings.ToLower(strings.TrimSuffix(name, filepath.Ext(name)))
	pos, ok := minutiae.ParsePosition(base)
	// Names only: "1.png" is a first photo, not a right thumb.
	return pos, ok && pos != minutiae.PositionUnknown && base == pos.String()
}

func positionName(p pb.FingerPosition) string { return minutiae.Position(p).String() }

// fingerScoresText is the FINGERS cell of the search table:
// "right-index 0.447, left-index -" (- for a finger the subject has none
// of).
func fingerScoresText(fs []*pb.FingerScore) string {
	if len(fs) == 0 {
		return "-"
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		if f.GetCompared() {
			parts[i] = fmt.Sprintf("%s %.3f", positionName(f.GetPosition()), f.GetScore())
		} else {
			parts[i] = positionName(f.GetPosition()) + " -"
		}
	}
	return strings.Join(parts, ", ")
}
