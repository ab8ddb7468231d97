package face

import (
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/internal/idols"
)

// gallery is idols.json (go-face's test fixture): 1,286 descriptors of 552
// people that dlib's original dlib_face_recognition_resnet_model_v1.dat
// computed.
type gallery struct {
	names []string // "Name, Band" of each descriptor
	vecs  [][]float32
}

func loadGallery(t testing.TB) gallery {
	t.Helper()
	faces, err := idols.Load(filepath.Join(faces, "idols", "idols.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g gallery
	for _, f := range faces {
		g.names = append(g.names, f.Person.Label())
		g.vecs = append(g.vecs, f.Descriptor)
	}
	if len(g.vecs) != 1286 {
		t.Fatalf("idols.json has %d descriptors, want 1286", len(g.vecs))
	}
	return g
}

// nearest is nearest-neighbour identification as dlib's examples do it:
// the nearest gallery descriptor by Euclidean distance, if within tolerance.
func (g gallery) nearest(probe []float32, tolerance float64) (name string, dist float64) {
	dist = math.Inf(1)
	for i, v := range g.vecs {
		if d := euclid(probe, v); d < dist {
			name, dist = g.names[i], d
		}
	}
	if dist > tolerance {
		return "", dist
	}
	return name, dist
}

// vote is go-face's Classify (classify.cc): among the ten nearest gallery
// descriptors, the identity with most hits wins, ties going to the nearer.
func (g gallery) vote(probe []float32) string {
	type hit struct {
		name string
		d    float64
	}
	hits := make([]hit, len(g.vecs))
	for i, v := range g.vecs {
		hits[i] = hit{g.names[i], euclid(probe, v)}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].d < hits[j].d })
	votes := map[string]int{}
	first := map[string]float64{}
	for _, h := range hits[:min(10, len(hits))] {
		if votes[h.name] == 0 {
			first[h.name] = h.d
		}
		votes[h.name]++
	}
	best := ""
	for n, v := range votes {
		if best == "" || v > votes[best] || (v == votes[best] && first[n] < first[best]) {
			best = n
		}
	}
	return best
}

// idolOf names the idol in testdata/faces/idols/<dir>/.
var idolOf = map[string]string{
	"bona": "Bona, WJSN", "chaeyeon": "Chaeyeon, DIA", "chaeyoung": "Chaeyoung, Twice",
	"elkie": "Elkie, CLC", "eunseo": "Eunseo, WJSN", "eunwoo": "Eunwoo, PRISTIN",
	"jimin": "Jimin, AOA", "joy": "Joy, Red Velvet", "luda": "Luda, WJSN", "meiqi": "Mei Qi, WJSN",
	"nana": "Nana, After School", "nayoung": "Nayoung, PRISTIN", "rena": "Rena, PRISTIN",
	"sejeong": "Sejeong, Gugudan", "seulgi": "Seulgi, Red Velvet", "tzuyu": "Tzuyu, Twice",
	"yujin": "Yujin, CLC",
}

// goFaceIdolTests are the photos go-face's own TestIdols classifies (its
// jimin4.jpg is idols/jimin/4.jpg here), those of them that are in testdata.
var goFaceIdolTests = []string{
	"chaeyoung/1.jpg", "sejeong/1.jpg", "jimin/4.jpg", "meiqi/1.jpg", "chaeyeon/3.jpg",
	"tzuyu/2.jpg", "nayoung/1.jpg", "luda/2.jpg", "joy/1.jpg",
}

// TestConvertedModelIdols identifies the idol photos in testdata against
// the descriptors dlib's original model computed (idols.json), with dlib's
// nearest neighbour at 0.6 and with go-face's classifier. The converted
// network must place photos among the original's descriptors as the
// original did: go-face's own test photos must classify as in go-face's
// test.
func TestConvertedModelIdols(t *testing.T) {
	g := loadGallery(t)
	photos, _ := filepath.Glob(filepath.Join(faces, "idols", "*", "*.jpg"))
	sort.Strings(photos)
	var nnRight, voteRight, total int
	var cosines []float64
	wrongVote := map[string]string{}
	for _, p := range photos {
		rel := filepath.ToSlash(strings.TrimPrefix(p, filepath.Join(faces, "idols")+string(filepath.Separator)))
		want, ok := idolOf[filepath.Base(filepath.Dir(p))]
		if !ok {
			t.Fatalf("%s: add its idol to idolOf", rel)
		}
		f, err := extractFile(t, p)
		if err != nil {
			t.Logf("%-16s %v", rel, err)
			continue
		}
		total++
		nn, d := g.nearest(f.Template.Vector, 0.6)
		vote := g.vote(f.Template.Vector)
		if nn == want {
			nnRight++
		}
		if vote == want {
			voteRight++
		} else {
			wrongVote[rel] = vote
		}
		same, sameCos := math.Inf(1), 0.0
		for i, v := range g.vecs {
			if g.names[i] == want {
				if e := euclid(f.Template.Vector, v); e < same {
					same, sameCos = e, cosine(f.Template.Vector, v)
				}
			}
		}
		cosines = append(cosines, sameCos)
		t.Logf("%-16s nearest %-22q %.3f  vote %-22q  nearest %s: %.3f (cosine %.3f)", rel, nn, d, vote, want, same, sameCos)
	}
	sort.Float64s(cosines)
	t.Logf("nearest neighbour (Euclidean, tolerance 0.6): %d/%d photos identified right; go-face's classifier: %d/%d", nnRight, total, voteRight, total)
	t.Logf("cosine between a photo's descriptor and the nearest original-model descriptor of the same idol: min %.3f median %.3f max %.3f",
		cosines[0], cosines[len(cosines)/2], cosines[len(cosines)-1])
	for _, rel := range goFaceIdolTests {
		if got, wrong := wrongVote[rel]; wrong {
			t.Errorf("%s: go-face's test expects %s, the converted model gives %q", rel, idolOf[filepath.Dir(rel)], got)
		}
	}
	if total < 20 || nnRight*4 < total {
		t.Fatalf("only %d of %d photos identified by nearest neighbour: the model is broken", nnRight, total)
	}
}

// TestGalleryBaseline measures how separable idols.json is by itself
// (leave-one-out nearest neighbour): the ceiling for photos identified
// against it, whatever the model.
func TestGalleryBaseline(t *testing.T) {
	g := loadGallery(t)
	right, n := 0, 0
	for i := range g.vecs {
		best, bd := -1, math.Inf(1)
		others := false
		for j := range g.vecs {
			if j == i {
				continue
			}
			others = others || g.names[j] == g.names[i]
			if d := euclid(g.vecs[i], g.vecs[j]); d < bd {
				best, bd = j, d
			}
		}
		if !others {
			continue
		}
		n++
		if g.names[best] == g.names[i] && bd <= 0.6 {
			right++
		}
	}
	t.Logf("idols.json leave-one-out nearest neighbour (dlib's original model on its own descriptors): %d/%d (%.1f%%)", right, n, 100*float64(right)/float64(n))
	// Measured 830 of 1,286 (64.5%, as matcher.TestIdolsGallery finds by
	// dlib's distance): the descriptors and the distance are fixed, so
	// fewer means the file or its reading changed.
	if n != 1286 || right < 826 {
		t.Errorf("leave-one-out nearest neighbour %d of %d, want at least 826 of 1,286", right, n)
	}
}
