package benchmarks

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// grey is a real, if crude, modality for testing the evaluations' counting:
// its template is an image's mean grey level, its score minus the
// difference of two means. An all-black image has "no sample" in it and
// fails like a photo without a face.
type grey struct{}

func (grey) Name() string              { return "grey" }
func (grey) Algorithm() string         { return "mean-grey/v1" }
func (grey) DefaultThreshold() float64 { return -10 }
func (grey) Compare(a, b Template) float64 {
	return -math.Abs(a.(float64) - b.(float64))
}
func (grey) Extract(s Sample) (Template, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, err
	}
	var sum float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			sum += float64(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
		}
	}
	if sum == 0 {
		return nil, &SampleError{Path: s.Path, Err: errors.New("blank image")}
	}
	return sum / float64(b.Dx()*b.Dy()), nil
}

// writeGrey writes a 4×4 PNG of one grey level.
func writeGrey(t *testing.T, path string, level uint8) {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range img.Pix {
		img.Pix[i] = level
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// greySet writes identities a, b, c with three samples each, grey levels
// near 50, 100 and 150, in the identity layout; blank names a sample
// written all black.
func greySet(t *testing.T, blank string) (string, []Sample) {
	dir := t.TempDir()
	levels := map[string][]uint8{"a": {50, 52, 55}, "b": {100, 103, 98}, "c": {150, 149, 160}}
	for id, ls := range levels {
		for i, l := range ls {
			name := filepath.Join(id, string(rune('1'+i))+".png")
			if name == blank {
				l = 0
			}
			writeGrey(t, filepath.Join(dir, name), l)
		}
	}
	samples, err := ScanIdentityLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, samples
}

func TestVerificationProtocols(t *testing.T) {
	_, samples := greySet(t, "")
	for _, tc := range []struct {
		proto              Protocol
		genuine, impostors int
	}{
		// 3 identities × 3 samples: C(3,2) genuine pairs each; every pair
		// of the 9 samples is C(9,2) = 36.
		{ProtocolAll, 9, 27},
		// FVC: impostors are the first samples against each other, C(3,2).
		{ProtocolFVC, 9, 3},
	} {
		res, err := EvaluateVerification(context.Background(), grey{}, samples, tc.proto, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Genuine) != tc.genuine || len(res.Impostor) != tc.impostors {
			t.Errorf("%s: %d genuine %d impostor, want %d %d", tc.proto, len(res.Genuine), len(res.Impostor), tc.genuine, tc.impostors)
		}
		// Each score comes with the two samples it compared.
		if len(res.GenuinePairs) != len(res.Genuine) || len(res.ImpostorPairs) != len(res.Impostor) {
			t.Fatalf("%s: %d/%d genuine and %d/%d impostor pairs", tc.proto, len(res.GenuinePairs), len(res.Genuine), len(res.ImpostorPairs), len(res.Impostor))
		}
		for k, p := range res.GenuinePairs {
			a, b := samples[p.A], samples[p.B]
			if a.Identity != b.Identity || p.A == p.B || res.Genuine[k] != (grey{}).Compare(mean(t, a), mean(t, b)) {
				t.Errorf("%s: genuine %d: pair %v of %s and %s, score %v", tc.proto, k, p, a.Identity, b.Identity, res.Genuine[k])
			}
		}
		for k, p := range res.ImpostorPairs {
			a, b := samples[p.A], samples[p.B]
			if a.Identity == b.Identity || res.Impostor[k] != (grey{}).Compare(mean(t, a), mean(t, b)) {
				t.Errorf("%s: impostor %d: pair %v of %s and %s, score %v", tc.proto, k, p, a.Identity, b.Identity, res.Impostor[k])
			}
		}
		// Every genuine pair is within 11 grey levels, every impostor pair
		// at least 38 apart, so the sets separate: EER 0.
		if eer, _, ok := errrate.EER(res.Genuine, res.Impostor); !ok || eer != 0 {
			t.Errorf("%s: EER %v ok=%v, want 0", tc.proto, eer, ok)
		}
	}
	// FVC impostors are the first impressions: |50-100|, |50-150|, |100-150|.
	res, _ := EvaluateVerification(context.Background(), grey{}, samples, ProtocolFVC, RunOptions{})
	slices.Sort(res.Impostor)
	if want := []float64{-100, -50, -50}; !slices.Equal(res.Impostor, want) {
		t.Errorf("fvc impostor scores %v, want %v", res.Impostor, want)
	}
}

// mean is grey's template of s.
func mean(t *testing.T, s Sample) Template {
	t.Helper()
	v, err := grey{}.Extract(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerificationFailuresScoreAsNonMatches(t *testing.T) {
	_, samples := greySet(t, filepath.Join("b", "2.png"))
	res, err := EvaluateVerification(context.Background(), grey{}, samples, ProtocolAll, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.FailedToEnrol) != 1 || filepath.Base(res.FailedToEnrol[0].Path) != "2.png" || res.FTE() != 1.0/9 {
		t.Fatalf("failures %v FTE %v, want b/2.png and 1/9", res.FailedToEnrol, res.FTE())
	}
	// The failed sample is in 2 genuine and 6 impostor pairs: none dropped.
	if len(res.Genuine) != 9 || len(res.Impostor) != 27 {
		t.Fatalf("%d genuine %d impostor: comparisons with the failed sample were dropped", len(res.Genuine), len(res.Impostor))
	}
	inf := func(s []float64) (n int) {
		for _, v := range s {
			if math.IsInf(v, -1) {
				n++
			}
		}
		return n
	}
	if inf(res.Genuine) != 2 || inf(res.Impostor) != 6 {
		t.Errorf("-Inf scores: %d genuine %d impostor, want 2 and 6", inf(res.Genuine), inf(res.Impostor))
	}
	// Two of nine genuine comparisons can never match.
	if got := errrate.FNMR(res.Genuine, -1e9); math.Abs(got-2.0/9) > 1e-12 {
		t.Errorf("FNMR at the lowest threshold %v, want 2/9", got)
	}
}

func TestIdentification(t *testing.T) {
	_, samples := greySet(t, filepath.Join("c", "1.png"))
	ddir := t.TempDir()
	writeGrey(t, filepath.Join(ddir, "d", "1.png"), 101) // a distractor next to b
	distractors, err := ScanIdentityLayout(ddir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := EvaluateIdentification(context.Background(), grey{}, samples, IdentifyOptions{Distractors: distractors})
	if err != nil {
		t.Fatal(err)
	}
	// c/1 failed, so c is enrolled from c/2 (149) and searched with c/3.
	if res.Enrolled != 4 || res.Distractors != 1 || len(res.FailedToEnrol) != 1 {
		t.Fatalf("gallery %d (%d distractors), %d FTE; want 4, 1, 1", res.Enrolled, res.Distractors, len(res.FailedToEnrol))
	}
	if len(res.Mated) != 5 || len(res.NonMated) != 5 || len(res.Genuine) != 5 || len(res.Impostor) != 15 {
		t.Fatalf("%d mated %d non-mated %d genuine %d impostor, want 5 5 5 15", len(res.Mated), len(res.NonMated), len(res.Genuine), len(res.Impostor))
	}
	// b's probes 103 and 98 against b=100 and the distractor d=101: 103 is
	// nearer d (2 vs 3), so it ranks its mate second; 98 finds b first.
	// c/3 (160) is 11 from c=149: rank 1. a's probes: rank 1.
	ranks := map[int]int{}
	for _, o := range res.Mated {
		ranks[o.MateRank]++
	}
	if ranks[1] != 4 || ranks[2] != 1 {
		t.Errorf("mate ranks %v, want four at 1 and one at 2", ranks)
	}
	if got := res.Rank1(); got != 0.8 {
		t.Errorf("rank-1 %v, want 0.8", got)
	}
	if len(res.Misses) != 1 {
		t.Errorf("misses %v, want b/2.png → d", res.Misses)
	}
	// Non-mated: each probe's best stranger. For a/2 (52) that is b (100).
	for _, o := range res.NonMated {
		if o.Mated || o.TopNonMateScore > -1 {
			t.Errorf("non-mated outcome %+v: a stranger within 1 grey level?", o)
		}
	}
	// No identity with two samples: nothing to search.
	if _, err := EvaluateIdentification(context.Background(), grey{}, samples[:1], IdentifyOptions{}); err == nil {
		t.Error("a data set without probes was accepted")
	}
}

func TestEvaluationStopsOnCancel(t *testing.T) {
	_, samples := greySet(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := EvaluateVerification(ctx, grey{}, samples, ProtocolAll, RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
}

func TestScanFVCLayout(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"101_10.tif", "101_2.tif", "101_1.tif", "102_1.tif", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	got, err := ScanFVCLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Identity+":"+filepath.Base(s.Path))
	}
	want := []string{"101:101_1.tif", "101:101_2.tif", "101:101_10.tif", "102:102_1.tif"}
	if !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
	// Two sets both number their fingers from 101: prefixed, not merged.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "101_1.tif"), []byte("y"), 0o644)
	got, err = ScanFVCLayout(dir, dir2)
	if err != nil || Identities(got) != 3 {
		t.Errorf("two sets: %d identities (%v), want 3", Identities(got), err)
	}
	os.WriteFile(filepath.Join(dir, "scan.tif"), []byte("x"), 0o644)
	if _, err := ScanFVCLayout(dir); err == nil {
		t.Error("a file not named <finger>_<impression> was accepted")
	}
}

func TestScanIdentityLayout(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/1.jpg", "a/10.PNG", "a/2.png", "a/notes.txt", "b/1.jpeg"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	got, err := ScanIdentityLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || filepath.Base(got[1].Path) != "2.png" || got[3].Identity != "b" {
		t.Fatalf("got %v", got)
	}
	if _, err := ScanIdentityLayout(dir, dir); err == nil {
		t.Fatal("colliding identities accepted")
	}
	if _, err := ScanIdentityLayout(t.TempDir()); err == nil {
		t.Fatal("empty data set accepted")
	}
	// A folder of folders of identities: the error says which to pass.
	if _, err := ScanIdentityLayout(filepath.Dir(dir)); err == nil {
		t.Fatal("a folder of data sets accepted as one")
	}
}

func TestHashSamples(t *testing.T) {
	dir, samples := greySet(t, "")
	h1, err := HashSamples(samples)
	if err != nil {
		t.Fatal(err)
	}
	writeGrey(t, filepath.Join(dir, "a", "1.png"), 51)
	h2, _ := HashSamples(samples)
	if h1 == h2 || len(h1) != 64 {
		t.Errorf("hash %s unchanged after a sample changed", h1)
	}
}
