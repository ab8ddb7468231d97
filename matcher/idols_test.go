package matcher

import (
	"math"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	idolsjson "github.com/bordermatch/bordermatch/internal/idols"
)

// idols loads real face descriptors computed by dlib's original model
// (go-face's test fixture, copied into the repository's testdata): 1,286
// descriptors of 134 of the 552 people the file lists, 5 to 19 each.
func idols(t testing.TB) (ids []string, bands []string, vecs [][]float32) {
	t.Helper()
	faces, err := idolsjson.Load("../testdata/faces/idols/idols.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faces {
		ids = append(ids, f.Person.ID)
		bands = append(bands, f.Person.Band)
		vecs = append(vecs, f.Descriptor)
	}
	return ids, bands, vecs
}

// TestIdolsGallery uses the descriptors as a real 1,286-template gallery:
// leave-one-out 1:N for every person with two or more descriptors, checked
// against brute force, and the genuine/impostor score distributions behind
// DefaultFaceThreshold.
func TestIdolsGallery(t *testing.T) {
	ids, bands, vecs := idols(t)
	n := len(vecs)
	if n != 1286 {
		t.Fatalf("%d descriptors, want 1,286", n)
	}
	of := map[string][]int{} // person -> their descriptors
	for i, id := range ids {
		of[id] = append(of[id], i)
	}

	// Every cosine score, for the brute-force ranking and the thresholds:
	// normalised once here (Cosine would redo it for each pair), then
	// compared by the kernel TestDotMatchesNaive checks.
	unit := make([][]float32, n)
	for i, v := range vecs {
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		unit[i] = make([]float32, len(v))
		for k, x := range v {
			unit[i][k] = float32(float64(x) / math.Sqrt(ss))
		}
	}
	cos := make([][]float32, n)
	for i := range cos {
		cos[i] = make([]float32, n)
	}
	var genuine, impostor []float32
	for i := range n {
		for j := i + 1; j < n; j++ {
			s := dot(unit[i], unit[j])
			cos[i][j], cos[j][i] = s, s
			if ids[i] == ids[j] {
				genuine = append(genuine, s)
			} else {
				impostor = append(impostor, s)
			}
		}
	}

	// Leave-one-out on one index, as the server would run it: take the
	// probe's person out, put their other descriptors back, search, restore.
	ix := NewIndex(128)
	for i, v := range vecs {
		if err := ix.Add(Entry{SubjectID: ids[i], Vector: v, Watchlists: []string{bands[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	probes, rank1, rank5, bandRank1, disagree := 0, 0, 0, 0, 0
	for i := range n {
		mine := of[ids[i]]
		if len(mine) < 2 || (raceEnabled && i%4 != 0) {
			continue
		}
		ix.Remove(ids[i])
		for _, j := range mine {
			if j != i {
				if err := ix.Add(Entry{SubjectID: ids[j], Vector: vecs[j], Watchlists: []string{bands[j]}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		hits, err := ix.Search(vecs[i], SearchOptions{K: 5})
		if err != nil {
			t.Fatal(err)
		}
		probes++
		if hits[0].SubjectID == ids[i] {
			rank1++
		}
		if slices.ContainsFunc(hits, func(h Hit) bool { return h.SubjectID == ids[i] }) {
			rank5++
		}
		// Brute force: the descriptor closest to the probe.
		best := -1
		for j := range n {
			if j != i && (best < 0 || cos[i][j] > cos[i][best]) {
				best = j
			}
		}
		if hits[0].SubjectID != ids[best] {
			disagree++
			if math.Abs(float64(hits[0].Score-cos[i][best])) > 1e-5 {
				t.Errorf("probe %d: index ranks %v first, brute force %s at %v", i, hits[0], ids[best], cos[i][best])
			}
		}
		// The same search restricted to the probe's band (a watchlist).
		hits, err = ix.Search(vecs[i], SearchOptions{K: 1, Watchlists: []string{bands[i]}})
		if err != nil {
			t.Fatal(err)
		}
		if hits[0].SubjectID == ids[i] {
			bandRank1++
		}
		if err := ix.Add(Entry{SubjectID: ids[i], Vector: vecs[i], Watchlists: []string{bands[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	if ix.Len() != n || ix.Subjects() != len(of) {
		t.Fatalf("after leave-one-out: %d rows %d subjects, want %d %d", ix.Len(), ix.Subjects(), n, len(of))
	}
	rate := float64(rank1) / float64(probes)
	t.Logf("leave-one-out 1:N, %d probes against the other %d descriptors of %d people: rank-1 %d = %.3f, rank-5 %d = %.3f; within the probe's band: rank-1 %.3f",
		probes, n-1, len(of), rank1, rate, rank5, float64(rank5)/float64(probes), float64(bandRank1)/float64(probes))
	if disagree > 0 {
		t.Logf("%d rank-1 ties with brute force broken differently (scores equal to 1e-5)", disagree)
	}
	// This is a hard set for dlib's model (134 look-alike people, photos of
	// every kind): it scores 0.656 rank-1 by cosine and 0.645 by dlib's own
	// Euclidean distance on it, nowhere near its 99% on LFW. The check
	// above that the index agrees with brute force is the index's; this
	// bound only catches a broken data path (a wrong decoding, say).
	if raceEnabled {
		t.Logf("(a quarter of the probes: -race is slow)")
	}
	if rate < 0.62 {
		t.Errorf("rank-1 %.3f, below 0.62", rate)
	}

	gen, imp := make([]float64, len(genuine)), make([]float64, len(impostor))
	for i, s := range genuine {
		gen[i] = float64(s)
	}
	for i, s := range impostor {
		imp[i] = float64(s)
	}
	slices.Sort(gen)
	t.Logf("%d genuine pairs, %d impostor pairs; median genuine %.4f, impostor %.4f",
		len(gen), len(imp), gen[len(gen)/2], median(imp))
	at := map[float64]errrate.OperatingPoint{}
	for _, target := range []float64{0.01, 0.001, 0.0001} {
		op := errrate.FNMRAtFMR(gen, imp, target)
		if op.FMR > target {
			t.Errorf("threshold %.4f for FMR %g gives FMR %g", op.Threshold, target, op.FMR)
		}
		at[target] = op
		t.Logf("FMR <= %g: threshold %.4f (FMR %.5f), FNMR %.4f", target, op.Threshold, op.FMR, op.Rate)
	}
	for _, thr := range []float64{0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97} {
		t.Logf("threshold %.2f: FMR %.5f FNMR %.4f", thr, errrate.FMR(imp, thr), errrate.FNMR(gen, thr))
	}
	fmr, fnmr := errrate.FMR(imp, float64(DefaultFaceThreshold)), errrate.FNMR(gen, float64(DefaultFaceThreshold))
	t.Logf("DefaultFaceThreshold %.2f: FMR %.5f FNMR %.4f", DefaultFaceThreshold, fmr, fnmr)

	// The figures DefaultFaceThreshold's comment (and the README) state:
	// if the data or the scoring changes, they must be measured again.
	if math.Abs(fmr-0.72) > 0.01 || math.Abs(fnmr-0.046) > 0.005 {
		t.Errorf("DefaultFaceThreshold %.2f gives FMR %.4f FNMR %.4f on idols.json; its comment says 0.72 and 0.046", DefaultFaceThreshold, fmr, fnmr)
	}
	if p := at[0.001]; math.Abs(p.Threshold-0.974) > 0.001 || math.Abs(p.Rate-0.86) > 0.01 {
		t.Errorf("FMR 0.1%% at %.4f with FNMR %.4f; DefaultFaceThreshold's comment says 0.974 and 86%%", p.Threshold, p.Rate)
	}
	if p := at[0.0001]; math.Abs(p.Threshold-0.979) > 0.001 || math.Abs(p.Rate-0.95) > 0.01 {
		t.Errorf("FMR 0.01%% at %.4f with FNMR %.4f; DefaultFaceThreshold's comment says 0.979 and 95%%", p.Threshold, p.Rate)
	}
}

// median returns the middle of a copy of x, sorted.
func median(x []float64) float64 {
	c := slices.Clone(x)
	slices.Sort(c)
	return c[len(c)/2]
}
