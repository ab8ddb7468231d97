package benchmarks

import (
	"context"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/matcher"
)

// TestFingerIdentifyFused runs the fused finger evaluation on the
// committed DB1/DB3 records (4 fingers × 8 impressions each) among 300
// synthetic distractor subjects: 8 one-finger and 4 two-finger subjects,
// 7 searches each.
func TestFingerIdentifyFused(t *testing.T) {
	samples, err := Scan(LayoutFVC, "../matcher/testdata/fingers/fvc2002_db1_b", "../matcher/testdata/fingers/fvc2002_db3_b")
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := EvaluateFingerIdentification(context.Background(), NewFinger(0, 0), samples, FingerIdentifyOptions{Fingers: []int{1, 2}, Synthetic: 300})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	for i, want := range [][3]int{{1, 8, 56}, {2, 4, 28}} {
		f := runs[i]
		if f.Fingers != want[0] || f.Subjects != want[1] || f.Mated != want[2] || f.NonMated != want[2] ||
			f.Distractors != 300 || f.Templates != (want[1]+300)*want[0] {
			t.Errorf("run %d: %+v", i, f)
		}
		if f.Rank1 == nil || *f.Rank1 < 0.85 || len(f.FNIRAtFPIR) != len(ReportFPIRs) {
			t.Errorf("%d fingers: rank-1 %v, %d operating points", f.Fingers, f.Rank1, len(f.FNIRAtFPIR))
		}
		t.Logf("%d fingers: rank-1 %.3f, recall %d/%d, best stranger %.4f (synthetic %.4f)", f.Fingers, *f.Rank1, f.ShortlistKept, f.ShortlistKept+f.ShortlistLost, f.TopImpostor, f.TopSyntheticImpostor)
	}
	if !(*runs[1].Rank1 >= *runs[0].Rank1) {
		t.Errorf("two fingers rank-1 %v below one finger's %v", *runs[1].Rank1, *runs[0].Rank1)
	}
	if _, _, err := EvaluateFingerIdentification(context.Background(), NewFinger(0, 0), samples, FingerIdentifyOptions{Fingers: []int{4}}); err == nil {
		t.Error("4 fingers from 2 sets: no error")
	}
}

// TestSyntheticFinger: seeded, each a different finger, and usable.
func TestSyntheticFinger(t *testing.T) {
	a, b := SyntheticFinger(1), SyntheticFinger(1)
	if !slices.Equal(a.Minutiae, b.Minutiae) || len(a.Minutiae) < 25 {
		t.Fatalf("not seeded, or too few minutiae: %d", len(a.Minutiae))
	}
	var m matcher.FingerMatcher
	ta, err := matcher.PrepareFinger(a)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 12; i++ {
		tb, err := matcher.PrepareFinger(SyntheticFinger(i))
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Score(ta, tb); s > 0.2 {
			t.Errorf("synthetic fingers 1 and %d score %.3f: not strangers", i, s)
		}
	}
}

// TestFingerIdentifyNonMated: --non-mated adds synthetic non-mated
// searches, so that an FPIR the real ones cannot resolve becomes
// measurable; the real-only figures stay as they were.
func TestFingerIdentifyNonMated(t *testing.T) {
	samples, err := Scan(LayoutFVC, "../matcher/testdata/fingers/fvc2002_db1_b", "../matcher/testdata/fingers/fvc2002_db3_b")
	if err != nil {
		t.Fatal(err)
	}
	opt := FingerIdentifyOptions{Fingers: []int{1}, Synthetic: 100}
	plain, _, err := EvaluateFingerIdentification(context.Background(), NewFinger(0, 0), samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.NonMated = 300
	runs, _, err := EvaluateFingerIdentification(context.Background(), NewFinger(0, 0), samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	f, p := runs[0], plain[0]
	if f.NonMatedSynthetic != 300 || f.NonMated != p.NonMated+300 || !slices.Equal(f.FNIRAtFPIR, p.FNIRAtFPIR) {
		t.Fatalf("non-mated %d (synthetic %d), real-only points %v against %v", f.NonMated, f.NonMatedSynthetic, f.FNIRAtFPIR, p.FNIRAtFPIR)
	}
	measurable := func(ops []errrate.OperatingPoint, target float64) bool {
		for _, op := range ops {
			if op.Target == target {
				return op.Measurable
			}
		}
		return false
	}
	// 56 real non-mated searches cannot resolve FPIR 1%; 356 can.
	if measurable(p.FNIRAtFPIR, 0.01) || !measurable(f.FNIRAtFPIRWithSynthetic, 0.01) {
		t.Errorf("FPIR 1%% measurable: real only %v, with synthetic %v", p.FNIRAtFPIR, f.FNIRAtFPIRWithSynthetic)
	}
}
