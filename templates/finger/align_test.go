package finger

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAlignSecuGen(t *testing.T) {
	dir := needData(t)
	e := NewExtractor(Config{QualityFloor: -1})
	for _, set := range fvcSets[:4] {
		files, _ := filepath.Glob(filepath.Join(dir, set.name, "*.tif"))
		files = files[:16]
		type pr struct{ o, r []mm }
		var data []pr
		for _, f := range files {
			g := loadGray(t, f)
			rb, _ := os.ReadFile(filepath.Join(dir, "templates/iso19794-2-2005_secugen_openafis", set.name, strings.TrimSuffix(filepath.Base(f), ".tif")+".iso"))
			ref, _ := readISO2005(rb)
			res, _ := e.Extract(g, set.dpi)
			var p pr
			for _, m := range res.View.Minutiae {
				p.o = append(p.o, mm{float64(m.X), float64(m.Y)})
			}
			for _, m := range ref {
				p.r = append(p.r, mm{float64(m.X), float64(m.Y)})
			}
			data = append(data, p)
		}
		best, bs, bdx, bdy := 0, 0.0, 0.0, 0.0
		W, H := float64(loadGray(t, files[0]).Bounds().Dx()), float64(loadGray(t, files[0]).Bounds().Dy())
		for s := 1.0; s <= 1.0; s += 0.02 {
			for dx := -70.0; dx <= 70; dx += 1 {
				for dy := -70.0; dy <= 70; dy += 1 {
					n := 0
					for _, p := range data {
						for _, r := range p.r {
							for _, o := range p.o {
								if math.Hypot(o.x*s+dx-r.x, o.y*s+dy-r.y) < 8 {
									n++
									break
								}
							}
						}
					}
					if n > best {
						best, bs, bdx, bdy = n, s, dx, dy
					}
				}
			}
		}
		tot := 0
		for _, p := range data {
			tot += len(p.r)
		}
		t.Logf("%s: centred would be %.1f,%.1f", set.name, (300-W*bs)/2, (400-H*bs)/2)
		t.Logf("%s: best scale %.3f shift %.0f,%.0f: %d/%d", set.name, bs, bdx, bdy, best, tot)
	}
}

type mm struct{ x, y float64 }
