package matcher

// A minimal ISO/IEC 19794-2:2005 reader for the matcher's tests, until the
// record codec of templates/minutiae lands: first view only, extended data
// ignored.

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/bordermatch/bordermatch/templates/minutiae"
)

func readISOView(path string) (minutiae.View, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return minutiae.View{}, err
	}
	if len(b) < 24+4 || string(b[:8]) != "FMR\x00 20\x00" {
		return minutiae.View{}, fmt.Errorf("%s: not an ISO 19794-2:2005 record", path)
	}
	v := minutiae.View{
		Width:  int(binary.BigEndian.Uint16(b[14:])),
		Height: int(binary.BigEndian.Uint16(b[16:])),
		DPI:    int(math.Round(float64(binary.BigEndian.Uint16(b[18:])) * 2.54)),
	}
	p := b[24:]
	v.Position = minutiae.Position(p[0])
	v.Quality = p[2]
	n := int(p[3])
	p = p[4:]
	if len(p) < 6*n {
		return minutiae.View{}, fmt.Errorf("%s: %d minutiae need %d bytes, have %d", path, n, 6*n, len(p))
	}
	for i := range n {
		m := p[6*i:]
		v.Minutiae = append(v.Minutiae, minutiae.Minutia{
			Kind:    minutiae.Kind(m[0] >> 6),
			X:       int(binary.BigEndian.Uint16(m) & 0x3fff),
			Y:       int(binary.BigEndian.Uint16(m[2:]) & 0x3fff),
			Angle:   float64(m[4]) * 2 * math.Pi / 256,
			Quality: m[5],
		})
	}
	return v, nil
}
