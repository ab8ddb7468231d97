package matcher

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fvcData is the directory of the shared fingerprint test data (the one
// holding templates/iso19794-2-2005_secugen_openafis). Long evaluations
// skip without it.
var fvcData = flag.String("data", os.Getenv("BORDERMATCH_FINGERPRINT_DATA"),
	"fingerprint test data directory (/work/shared/testdata/fingerprints); env BORDERMATCH_FINGERPRINT_DATA")

// fvcSet is one FVC B set's templates: fingers 101.., impressions 1..8.
type fvcSet struct {
	name    string
	fingers []int
	t       map[[2]int]*FingerTemplate // (finger, impression)
}

func loadFVCSet(t testing.TB, dir, name string) fvcSet {
	t.Helper()
	s := fvcSet{name: name, t: map[[2]int]*FingerTemplate{}}
	files, err := filepath.Glob(filepath.Join(dir, "*_*.iso"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates in %s (%v)", dir, err)
	}
	for _, f := range files {
		var finger, imp int
		if _, err := fmt.Sscanf(filepath.Base(f), "%d_%d.iso", &finger, &imp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		v, err := readISOView(f)
		if err != nil {
			t.Fatal(err)
		}
		ft, err := PrepareFinger(v)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s.t[[2]int{finger, imp}] = ft
		if !slices.Contains(s.fingers, finger) {
			s.fingers = append(s.fingers, finger)
		}
	}
	slices.Sort(s.fingers)
	return s
}

// protocolScores returns the genuine and impostor scores of a set under
// the FVC protocol (impostors: impression 1 against impression 1) or the
// "all" protocol (impostors: every cross-finger pair, one direction).
func protocolScores(m *FingerMatcher, s fvcSet, all bool) (gen, imp []float64) {
	const imps = 8
	for _, f := range s.fingers {
		for i := 1; i <= imps; i++ {
			for j := i + 1; j <= imps; j++ {
				a, b := s.t[[2]int{f, i}], s.t[[2]int{f, j}]
				if a != nil && b != nil {
					gen = append(gen, m.Score(a, b))
				}
			}
		}
	}
	for x, f := range s.fingers {
		for _, g := range s.fingers[x+1:] {
			for i := 1; i <= imps; i++ {
				for j := 1; j <= imps; j++ {
					if !all && (i != 1 || j != 1) {
						continue
					}
					a, b := s.t[[2]int{f, i}], s.t[[2]int{g, j}]
					if a != nil && b != nil {
						imp = append(imp, m.Score(a, b))
					}
				}
			}
		}
	}
	return gen, imp
}

// eer is the equal error rate: the threshold sweeps every score, and the
// EER is taken where FNMR and FMR cross, as the mean of the two rates at
// the threshold where they are closest (FVC's EER estimate).
func eer(gen, imp []float64) float64 {
	g, im := slices.Clone(gen), slices.Clone(imp)
	slices.Sort(g)
	slices.Sort(im)
	thresholds := append(slices.Clone(g), im...)
	slices.Sort(thresholds)
	best, bestGap := 1.0, 2.0
	for _, th := range thresholds {
		// Accept when score >= th.
		fnmr := float64(countBelow(g, th)) / float64(len(g))
		fmr := float64(len(im)-countBelow(im, th)) / float64(len(im))
		if gap := abs(fnmr - fmr); gap < bestGap {
			bestGap, best = gap, (fnmr+fmr)/2
		}
	}
	return best
}

func countBelow(sorted []float64, th float64) int {
	n, _ := slices.BinarySearch(sorted, th)
	return n
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestEERHelper(t *testing.T) {
	for _, c := range []struct {
		gen, imp []float64
		want     float64
	}{
		{[]float64{0.9, 0.8, 0.7}, []float64{0.1, 0.2, 0.3}, 0},
		{[]float64{0.1, 0.2}, []float64{0.8, 0.9}, 1},
		{[]float64{0.5, 0.9}, []float64{0.1, 0.6}, 0.5},
	} {
		if got := eer(c.gen, c.imp); abs(got-c.want) > 1e-9 {
			t.Errorf("eer(%v, %v) = %v, want %v", c.gen, c.imp, got, c.want)
		}
	}
}

// TestFingerFVC2002 measures EER on the SecuGen ISO templates of FVC2002
// DB1_B..DB4_B under both protocols, against the EERs OpenAFIS reports on
// the very same templates. Run with -data=/work/shared/testdata/fingerprints.
func TestFingerFVC2002(t *testing.T) {
	if *fvcData == "" {
		t.Skip("no -data or BORDERMATCH_FINGERPRINT_DATA")
	}
	openAFIS := []float64{0.058, 0.073, 0.122, 0.064}
	var m FingerMatcher
	for db := 1; db <= 4; db++ {
		name := fmt.Sprintf("fvc2002_db%d_b", db)
		s := loadFVCSet(t, filepath.Join(*fvcData, "templates/iso19794-2-2005_secugen_openafis", name), name)
		for _, all := range []bool{false, true} {
			gen, imp := protocolScores(&m, s, all)
			e := eer(gen, imp)
			proto := "fvc"
			if all {
				proto = "all"
			}
			t.Logf("%s protocol=%s genuine=%d impostor=%d EER=%.2f%%", name, proto, len(gen), len(imp), 100*e)
			if e >= openAFIS[db-1] {
				t.Errorf("%s %s: EER %.2f%%, OpenAFIS reports %.1f%%", name, proto, 100*e, 100*openAFIS[db-1])
			}
		}
	}
}
