package errrate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var (
	inf  = math.Inf(1)
	ninf = math.Inf(-1)
	nan  = math.NaN()
)

// same compares floats with NaN equal to NaN and a small tolerance for
// values computed by interpolation.
func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b || math.Abs(a-b) <= 1e-12
}

func sameDET(a, b []DETPoint) bool {
	return slices.EqualFunc(a, b, func(p, q DETPoint) bool {
		return same(p.Threshold, q.Threshold) && same(p.FMR, q.FMR) && same(p.FNMR, q.FNMR)
	})
}

func TestRates(t *testing.T) {
	for _, c := range []struct {
		name   string
		scores []float64
		t      float64
		fmr    float64 // FMR(scores, t)
		fnmr   float64 // FNMR(scores, t)
	}{
		{"tie at threshold matches", []float64{0.1, 0.3, 0.3, 0.5}, 0.3, 3.0 / 4, 1.0 / 4},
		{"below all", []float64{0.1, 0.3}, 0, 1, 0},
		{"above all", []float64{0.1, 0.3}, 0.31, 0, 1},
		{"-Inf never matches", []float64{ninf, 0.2}, 0.1, 1.0 / 2, 1.0 / 2},
		{"-Inf never matches at -Inf", []float64{ninf, 0.2}, ninf, 1.0 / 2, 1.0 / 2},
		{"NaN is a failure", []float64{nan, 0.2, 0.4, 0.6}, 0.3, 2.0 / 4, 2.0 / 4},
		{"+Inf always matches", []float64{inf, 0.2}, 1e300, 1.0 / 2, 1.0 / 2},
		{"single", []float64{0.5}, 0.5, 1, 0},
		{"empty", nil, 0.5, nan, nan},
	} {
		if got := FMR(c.scores, c.t); !same(got, c.fmr) {
			t.Errorf("%s: FMR = %v, want %v", c.name, got, c.fmr)
		}
		if got := FNMR(c.scores, c.t); !same(got, c.fnmr) {
			t.Errorf("%s: FNMR = %v, want %v", c.name, got, c.fnmr)
		}
	}
}

// Each case was worked out by hand; the comments show the arithmetic.
var verifyCases = []struct {
	name          string
	gen, imp      []float64
	det           []DETPoint
	eer, eerT     float64
	eerOK         bool
	op            []OperatingPoint // FNMRAtFMR at op[i].Target
	eerThrBetween [2]float64       // when non-zero: the EER threshold lies in this range instead of == eerT
}{
	{
		name: "overlap with ties",
		gen:  []float64{0.3, 0.6, 0.6, 0.9},
		imp:  []float64{0.1, 0.3, 0.6, 0.7},
		det: []DETPoint{
			{0.1, 4.0 / 4, 0.0 / 4},
			{0.3, 3.0 / 4, 0.0 / 4}, // genuine 0.3 matches at 0.3
			{0.6, 2.0 / 4, 1.0 / 4}, // impostor 0.6 matches, genuine 0.6s match
			{0.7, 1.0 / 4, 3.0 / 4},
			{0.9, 0, 3.0 / 4},
			{math.Nextafter(0.9, 2), 0, 1},
		},
		// Crossing between 0.6 (FMR-FNMR = 1/4) and 0.7 (FNMR-FMR = 1/2):
		// a = (1/4)/(3/4) = 1/3; EER = 1/2 + 1/3·(1/4-1/2) = 5/12;
		// threshold = 0.6 + 0.1/3.
		eer: 5.0 / 12, eerT: 0.6 + 0.1/3, eerOK: true,
		op: []OperatingPoint{
			{Target: 1, Rate: 0, FMR: 1, Threshold: 0.1, Measurable: true},
			{Target: 0.75, Rate: 0, FMR: 0.75, Threshold: 0.3, Measurable: true}, // 4 impostors ≥ 3/0.75
			{Target: 0.5, Rate: 0.25, FMR: 0.5, Threshold: 0.6},
			{Target: 0.3, Rate: 0.75, FMR: 0.25, Threshold: 0.7},
			{Target: 0, Rate: 0.75, FMR: 0, Threshold: 0.9},
		},
	},
	{
		name: "perfectly separated",
		gen:  []float64{0.8, 0.9},
		imp:  []float64{0.1, 0.2},
		det: []DETPoint{
			{0.1, 1, 0}, {0.2, 0.5, 0}, {0.8, 0, 0}, {0.9, 0, 0.5}, {math.Nextafter(0.9, 2), 0, 1},
		},
		eer: 0, eerT: 0.8, eerOK: true,
		op: []OperatingPoint{
			{Target: 0.001, Rate: 0, FMR: 0, Threshold: 0.8},
			{Target: 0.5, Rate: 0, FMR: 0.5, Threshold: 0.2},
		},
	},
	{
		name: "reversed: every impostor above every genuine",
		gen:  []float64{0.1, 0.2},
		imp:  []float64{0.8, 0.9},
		det: []DETPoint{
			{0.1, 1, 0}, {0.2, 1, 0.5}, {0.8, 1, 1}, {0.9, 0.5, 1}, {math.Nextafter(0.9, 2), 0, 1},
		},
		eer: 1, eerT: 0.8, eerOK: true, // FMR = FNMR = 1 at 0.8
		op: []OperatingPoint{
			{Target: 0.5, Rate: 1, FMR: 0.5, Threshold: 0.9},
			{Target: 0.1, Rate: 1, FMR: 0, Threshold: math.Nextafter(0.9, 2)},
		},
	},
	{
		name: "identical sets",
		gen:  []float64{0.1, 0.2, 0.3},
		imp:  []float64{0.3, 0.2, 0.1},
		det: []DETPoint{
			{0.1, 1, 0}, {0.2, 2.0 / 3, 1.0 / 3}, {0.3, 1.0 / 3, 2.0 / 3}, {math.Nextafter(0.3, 1), 0, 1},
		},
		// Crossing halfway between 0.2 and 0.3 (differences -1/3, +1/3).
		eer: 0.5, eerT: 0.25, eerOK: true,
		op: []OperatingPoint{
			{Target: 1, Rate: 0, FMR: 1, Threshold: 0.1, Measurable: true},
			{Target: 0.5, Rate: 2.0 / 3, FMR: 1.0 / 3, Threshold: 0.3},
		},
	},
	{
		name: "single identical scores",
		gen:  []float64{0.5},
		imp:  []float64{0.5},
		det:  []DETPoint{{0.5, 1, 0}, {math.Nextafter(0.5, 1), 0, 1}},
		// Halfway between 0.5 and the next float: EER 1/2.
		eer: 0.5, eerOK: true, eerThrBetween: [2]float64{0.5, math.Nextafter(0.5, 1)},
		op: []OperatingPoint{{Target: 0.5, Rate: 1, FMR: 0, Threshold: math.Nextafter(0.5, 1)}},
	},
	{
		name: "single genuine above impostor",
		gen:  []float64{0.7},
		imp:  []float64{0.4},
		det:  []DETPoint{{0.4, 1, 0}, {0.7, 0, 0}, {math.Nextafter(0.7, 1), 0, 1}},
		eer:  0, eerT: 0.7, eerOK: true,
	},
	{
		name: "single impostor above genuine",
		gen:  []float64{0.4},
		imp:  []float64{0.7},
		det:  []DETPoint{{0.4, 1, 0}, {0.7, 1, 1}, {math.Nextafter(0.7, 1), 0, 1}},
		eer:  1, eerT: 0.7, eerOK: true,
	},
	{
		name: "failures are non-matches everywhere",
		gen:  []float64{ninf, 0.9, 0.8},
		imp:  []float64{ninf, 0.1, 0.85},
		det: []DETPoint{
			{0.1, 2.0 / 3, 1.0 / 3}, // the failed genuine is already a non-match
			{0.8, 1.0 / 3, 1.0 / 3},
			{0.85, 1.0 / 3, 2.0 / 3},
			{0.9, 0, 2.0 / 3},
			{math.Nextafter(0.9, 1), 0, 1},
		},
		eer: 1.0 / 3, eerT: 0.8, eerOK: true,
		op: []OperatingPoint{
			{Target: 0, Rate: 2.0 / 3, FMR: 0, Threshold: 0.9},
			{Target: 1, Rate: 1.0 / 3, FMR: 2.0 / 3, Threshold: 0.1, Measurable: true},
		},
	},
	{
		name: "NaN counts as -Inf",
		gen:  []float64{nan, 0.9, 0.8},
		imp:  []float64{0.1, nan, 0.85},
		det: []DETPoint{
			{0.1, 2.0 / 3, 1.0 / 3}, {0.8, 1.0 / 3, 1.0 / 3}, {0.85, 1.0 / 3, 2.0 / 3}, {0.9, 0, 2.0 / 3},
			{math.Nextafter(0.9, 1), 0, 1},
		},
		eer: 1.0 / 3, eerT: 0.8, eerOK: true,
	},
	{
		name: "no crossing: genuine failures exceed impostor matches",
		gen:  []float64{ninf, ninf, 0.9},
		imp:  []float64{ninf, ninf, ninf, 0.1},
		det:  []DETPoint{{0.1, 1.0 / 4, 2.0 / 3}, {0.9, 0, 2.0 / 3}, {math.Nextafter(0.9, 1), 0, 1}},
		eer:  nan, eerT: nan, eerOK: false,
		op: []OperatingPoint{{Target: 0.5, Rate: 2.0 / 3, FMR: 0.25, Threshold: 0.1}},
	},
	{
		name: "no crossing: +Inf impostor",
		gen:  []float64{inf},
		imp:  []float64{inf, 0.5},
		det:  []DETPoint{{0.5, 1, 0}, {inf, 0.5, 0}}, // no point above +Inf
		eer:  nan, eerT: nan, eerOK: false,
		// FMR 0.1 cannot be met: report the strictest threshold there is.
		op: []OperatingPoint{{Target: 0.1, Rate: 0, FMR: 0.5, Threshold: inf}},
	},
	{
		name: "every comparison failed",
		gen:  []float64{ninf},
		imp:  []float64{ninf, nan},
		det:  nil,
		eer:  nan, eerT: nan, eerOK: false,
		op: []OperatingPoint{{Target: 0.01, Rate: 1, FMR: 0, Threshold: nan}},
	},
	{
		name: "no genuine",
		imp:  []float64{0.1, 0.2},
		eer:  nan, eerT: nan, eerOK: false,
		op: []OperatingPoint{{Target: 0.5, Rate: nan, FMR: 0.5, Threshold: 0.2}},
	},
	{
		name: "no impostors",
		gen:  []float64{0.1, 0.2},
		eer:  nan, eerT: nan, eerOK: false,
		op: []OperatingPoint{{Target: 0.5, Rate: nan, FMR: nan, Threshold: nan}},
	},
	{
		name: "nothing",
		eer:  nan, eerT: nan, eerOK: false,
		op: []OperatingPoint{{Target: 0.5, Rate: nan, FMR: nan, Threshold: nan}},
	},
}

func TestVerificationMetrics(t *testing.T) {
	for _, c := range verifyCases {
		t.Run(c.name, func(t *testing.T) {
			if got := DET(c.gen, c.imp); !sameDET(got, c.det) {
				t.Errorf("DET\n got %v\nwant %v", got, c.det)
			}
			eer, thr, ok := EER(c.gen, c.imp)
			if ok != c.eerOK || !same(eer, c.eer) {
				t.Errorf("EER = %v, %v, %v; want %v, %v, %v", eer, thr, ok, c.eer, c.eerT, c.eerOK)
			}
			if r := c.eerThrBetween; r != [2]float64{} {
				if thr < r[0] || thr > r[1] {
					t.Errorf("EER threshold %v outside %v", thr, r)
				}
			} else if !same(thr, c.eerT) {
				t.Errorf("EER threshold = %v, want %v", thr, c.eerT)
			}
			for _, want := range c.op {
				got := FNMRAtFMR(c.gen, c.imp, want.Target)
				if got.Measurable != want.Measurable || !same(got.Rate, want.Rate) ||
					!same(got.FMR, want.FMR) || !same(got.Threshold, want.Threshold) {
					t.Errorf("FNMRAtFMR(%v)\n got %+v\nwant %+v", want.Target, got, want)
				}
			}
		})
	}
}

func TestMeasurable(t *testing.T) {
	for _, c := range []struct {
		n      int
		target float64
		want   bool
	}{
		{3000, 0.001, true}, // exactly 3/N despite 0.001 not being binary
		{2999, 0.001, false},
		{300, 0.01, true},
		{299, 0.01, false},
		{30000, 0.0001, true},
		{29999, 0.0001, false},
		{3, 1, true},
		{1 << 30, 0, false},
		{1 << 30, -0.1, false},
		{1 << 30, nan, false},
	} {
		if got := measurable(c.n, c.target); got != c.want {
			t.Errorf("%d impostors, target %v: measurable = %v", c.n, c.target, got)
		}
	}
}

func TestIdentificationMetrics(t *testing.T) {
	s := []SearchOutcome{
		{Mated: true, MateRank: 1, MateScore: 0.9, TopNonMateScore: 0.5},
		{Mated: true, MateRank: 2, MateScore: 0.7, TopNonMateScore: 0.8},
		{Mated: true, MateRank: 0, MateScore: 0.95, TopNonMateScore: 0.6}, // mate not returned: its score is ignored
		{Mated: true, MateRank: 3, MateScore: 0.4, TopNonMateScore: 0.75},
		{TopNonMateScore: 0.85},
		{TopNonMateScore: 0.6},
		{TopNonMateScore: ninf}, // failed search: no candidate
		{TopNonMateScore: 0.3},
	}
	if got, want := CMC(s, 4), []float64{0.25, 0.5, 0.75, 0.75}; !slices.Equal(got, want) {
		t.Errorf("CMC = %v, want %v", got, want)
	}
	if got := CMC(s, 0); got != nil {
		t.Errorf("CMC(s, 0) = %v", got)
	}
	if got := CMC(s[4:], 2); !math.IsNaN(got[0]) || !math.IsNaN(got[1]) {
		t.Errorf("CMC without mated searches = %v, want NaN", got)
	}
	for _, c := range []struct {
		t    float64
		want float64
	}{{0.6, 0.5}, {0.85, 0.25}, {0.86, 0}, {0.3, 0.75}, {ninf, 0.75}} {
		if got := FPIR(s, c.t); got != c.want {
			t.Errorf("FPIR(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	if got := FPIR(s[:4], 0.5); !math.IsNaN(got) {
		t.Errorf("FPIR without non-mated searches = %v, want NaN", got)
	}
	for _, c := range []struct {
		t    float64
		rank int
		want float64
	}{
		{0.6, 1, 0.75},  // only the rank-1 mate at 0.9
		{0.6, 2, 0.5},   // + the rank-2 mate at 0.7
		{0.6, 0, 0.5},   // any rank: the rank-3 mate at 0.4 is below 0.6
		{0.4, 0, 0.25},  // only the unreturned mate misses
		{0.4, 20, 0.25}, // rank limit above every rank
		{0.4, 3, 0.25},
		{0.91, 0, 1},
	} {
		if got := FNIR(s, c.t, c.rank); got != c.want {
			t.Errorf("FNIR(%v, rank %d) = %v, want %v", c.t, c.rank, got, c.want)
		}
	}
	if got := FNIR(s[4:], 0.5, 1); !math.IsNaN(got) {
		t.Errorf("FNIR without mated searches = %v, want NaN", got)
	}
	// Non-mated best scores {0.85, 0.6, -Inf, 0.3}; mate scores at any rank
	// {0.9, 0.7, -Inf, 0.4}. FPIR/FNIR: 0.3: 3/4, 1/4; 0.4: 2/4, 1/4;
	// 0.6: 2/4, 2/4; 0.7: 1/4, 2/4.
	for _, c := range []struct {
		target float64
		rank   int
		want   OperatingPoint
	}{
		{0.25, 0, OperatingPoint{Target: 0.25, Rate: 0.5, FMR: 0.25, Threshold: 0.7}},
		{0.5, 0, OperatingPoint{Target: 0.5, Rate: 0.25, FMR: 0.5, Threshold: 0.4}},
		{0.75, 0, OperatingPoint{Target: 0.75, Rate: 0.25, FMR: 0.75, Threshold: 0.3, Measurable: true}},
		// Rank 1: mate scores {0.9, -Inf, -Inf, -Inf}.
		{0.5, 1, OperatingPoint{Target: 0.5, Rate: 0.75, FMR: 0.5, Threshold: 0.6}},
		{0, 1, OperatingPoint{Target: 0, Rate: 0.75, FMR: 0, Threshold: 0.9}},
	} {
		if got := FNIRAtFPIR(s, c.target, c.rank); got != c.want {
			t.Errorf("FNIRAtFPIR(%v, rank %d)\n got %+v\nwant %+v", c.target, c.rank, got, c.want)
		}
	}
}

// bruteDET evaluates FMR and FNMR by scanning every score at every
// candidate threshold: O(n²), obviously right.
func bruteDET(gen, imp []float64) []DETPoint {
	var ts []float64
	for _, s := range append(slices.Clone(gen), imp...) {
		if !failed(s) && !slices.Contains(ts, s) {
			ts = append(ts, s)
		}
	}
	slices.Sort(ts)
	if n := len(ts); n > 0 && !math.IsInf(ts[n-1], 1) {
		ts = append(ts, math.Nextafter(ts[n-1], inf))
	}
	var p []DETPoint
	for _, t := range ts {
		p = append(p, DETPoint{t, FMR(imp, t), FNMR(gen, t)})
	}
	return p
}

func randomScores(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		switch k := r.IntN(20); {
		case k == 0:
			s[i] = ninf
		case k == 1:
			s[i] = nan
		default:
			s[i] = float64(r.IntN(12)) / 10 // few distinct values: many ties
		}
	}
	return s
}

func TestAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	targets := []float64{0, 0.01, 0.1, 0.25, 1.0 / 3, 0.5, 0.9, 1}
	for iter := range 3000 {
		gen, imp := randomScores(r, r.IntN(12)), randomScores(r, r.IntN(40))
		want := bruteDET(gen, imp)
		if len(gen) == 0 || len(imp) == 0 {
			want = nil
		}
		p := DET(gen, imp)
		if !sameDET(p, want) {
			t.Fatalf("%d: DET(%v, %v)\n got %v\nwant %v", iter, gen, imp, p, want)
		}
		for k := 1; k < len(p); k++ {
			if !(p[k].FNMR-p[k].FMR > p[k-1].FNMR-p[k-1].FMR) {
				t.Fatalf("%d: FNMR-FMR not strictly increasing at %d: %v", iter, k, p)
			}
		}
		eer, thr, ok := EER(gen, imp)
		if ok {
			checkEER(t, p, eer, thr)
		} else if len(p) > 0 && p[0].FNMR <= p[0].FMR && p[len(p)-1].FNMR >= p[len(p)-1].FMR {
			t.Fatalf("%d: no EER but the rates cross: %v", iter, p)
		}
		for _, target := range targets {
			op := FNMRAtFMR(gen, imp, target)
			if len(imp) == 0 || len(p) == 0 {
				continue // covered by the hand-computed cases
			}
			// The lowest candidate threshold meeting the target, by brute force.
			k := slices.IndexFunc(want, func(q DETPoint) bool { return q.FMR <= target })
			if k < 0 || op.Threshold != want[k].Threshold || op.FMR != FMR(imp, op.Threshold) ||
				!same(op.Rate, FNMR(gen, op.Threshold)) {
				t.Fatalf("%d: FNMRAtFMR(%v) = %+v; brute force %d %v", iter, target, op, k, want)
			}
			// The previous candidate misses the target, and every
			// threshold between it and this one has the same error rates.
			if k > 0 {
				prev, lower := want[k-1].Threshold, math.Nextafter(want[k-1].Threshold, inf)
				if FMR(imp, prev) <= target || FMR(imp, lower) != op.FMR || !same(FNMR(gen, lower), op.Rate) {
					t.Fatalf("%d: FNMRAtFMR(%v) = %+v, but at %v: FMR %v FNMR %v", iter, target, op,
						lower, FMR(imp, lower), FNMR(gen, lower))
				}
			}
		}
	}
}

// checkEER checks the EER against FVC's bounds and the minimax error.
func checkEER(t *testing.T, p []DETPoint, eer, thr float64) {
	t.Helper()
	// FVC2000: t1 = highest threshold with FNMR <= FMR, t2 = lowest with
	// FNMR >= FMR; the EER lies in [EERlow, EERhigh].
	var t1, t2 DETPoint
	for _, q := range p {
		if q.FNMR <= q.FMR {
			t1 = q
		}
	}
	for i := len(p) - 1; i >= 0; i-- {
		if p[i].FNMR >= p[i].FMR {
			t2 = p[i]
		}
	}
	lo, hi := t1.FNMR, t1.FMR
	if t1.FMR+t1.FNMR > t2.FMR+t2.FNMR {
		lo, hi = t2.FMR, t2.FNMR
	}
	if eer < lo-1e-12 || eer > hi+1e-12 {
		t.Fatalf("EER %v outside FVC bounds [%v, %v] on %v", eer, lo, hi, p)
	}
	// No threshold has both rates below the EER.
	for _, q := range p {
		if math.Max(q.FMR, q.FNMR) < eer-1e-12 {
			t.Fatalf("EER %v above max(FMR, FNMR) at %v", eer, q)
		}
	}
	if thr < t1.Threshold || thr > t2.Threshold {
		t.Fatalf("EER threshold %v outside [%v, %v]", thr, t1.Threshold, t2.Threshold)
	}
}

func TestIdentificationAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 2000 {
		s := make([]SearchOutcome, r.IntN(30))
		for i := range s {
			sc := randomScores(r, 2)
			s[i] = SearchOutcome{Mated: r.IntN(2) == 0, MateRank: r.IntN(5), MateScore: sc[0], TopNonMateScore: sc[1]}
		}
		rank := r.IntN(4)
		target := []float64{0, 0.05, 0.2, 0.5, 1}[r.IntN(5)]
		op := FNIRAtFPIR(s, target, rank)
		// Candidate thresholds: every finite score, ascending.
		var ts []float64
		nonMated := 0
		for _, o := range s {
			if !o.Mated {
				nonMated++
			}
			v := o.TopNonMateScore
			if o.Mated {
				v = mateScore(o, rank)
			}
			if !failed(v) {
				ts = append(ts, v)
			}
		}
		if nonMated == 0 || len(ts) == 0 {
			continue
		}
		slices.Sort(ts)
		if op.Threshold != math.Nextafter(ts[len(ts)-1], 2) {
			k := slices.Index(ts, op.Threshold)
			if k < 0 {
				t.Fatalf("%d: threshold %v is not a score", iter, op.Threshold)
			}
			if k > 0 && ts[k-1] < op.Threshold && FPIR(s, ts[k-1]) <= target {
				t.Fatalf("%d: lower threshold %v meets FPIR %v", iter, ts[k-1], target)
			}
		}
		if got := FPIR(s, op.Threshold); got != op.FMR || got > target {
			t.Fatalf("%d: FNIRAtFPIR FPIR %v, brute %v, target %v", iter, op.FMR, got, target)
		}
		if got := FNIR(s, op.Threshold, rank); !same(got, op.Rate) {
			t.Fatalf("%d: FNIRAtFPIR FNIR %v, brute %v", iter, op.Rate, got)
		}
	}
}

func BenchmarkDET(b *testing.B) {
	// Normal scores like dlib's on a hard population.
	r := rand.New(rand.NewPCG(1, 2))
	gen, imp := make([]float64, 10000), make([]float64, 1000000)
	for i := range gen {
		gen[i] = 0.95 + 0.02*r.NormFloat64()
	}
	for i := range imp {
		imp[i] = 0.84 + 0.05*r.NormFloat64()
	}
	b.ReportAllocs()
	for b.Loop() {
		DET(gen, imp)
	}
}

// The cases the accuracy tests' own EER helpers (now gone) were checked
// on, with the interpolated EER and its threshold.
func TestEERKnownValues(t *testing.T) {
	for _, c := range []struct {
		name     string
		gen, imp []float64
		eer, thr float64
	}{
		{"separated", []float64{0.9, 0.8, 0.7}, []float64{0.1, 0.2, 0.3}, 0, 0.7},
		{"reversed", []float64{0.1, 0.2}, []float64{0.8, 0.9}, 1, 0.8},
		// At 0.6: FMR 1/2 (0.6 matches), FNMR 1/2 (0.5 does not).
		{"half", []float64{0.5, 0.9}, []float64{0.1, 0.6}, 0.5, 0.6},
		// FVC's ghost: a failed extraction scores 0 against everything.
		// At 0.4: FMR 1/4 (0.5), FNMR 1/4 (0); at 0.5: FMR 1/4, FNMR 2/4 —
		// so the rates meet at 0.4.
		{"ghost", []float64{0, 0.4, 0.7, 0.8}, []float64{0, 0.1, 0.2, 0.5}, 0.25, 0.4},
	} {
		eer, thr, ok := EER(c.gen, c.imp)
		if !ok || !same(eer, c.eer) || !same(thr, c.thr) {
			t.Errorf("%s: EER %v at %v (ok %v), want %v at %v", c.name, eer, thr, ok, c.eer, c.thr)
		}
	}
}

// FNIRCurve's points are FPIR and FNIR (at the rank) at their thresholds.
func TestFNIRCurve(t *testing.T) {
	inf := math.Inf(-1)
	s := []SearchOutcome{
		{Mated: true, MateRank: 1, MateScore: 0.9, TopNonMateScore: 0.3},
		{Mated: true, MateRank: 2, MateScore: 0.6, TopNonMateScore: 0.7},
		{Mated: true, MateRank: 0, MateScore: inf, TopNonMateScore: 0.5},
		{TopNonMateScore: 0.7, MateScore: inf},
		{TopNonMateScore: 0.4, MateScore: inf},
		{TopNonMateScore: 0.2, MateScore: inf},
	}
	for _, rank := range []int{1, 2} {
		c := FNIRCurve(s, rank)
		if len(c) == 0 {
			t.Fatalf("rank %d: no curve", rank)
		}
		for _, q := range c {
			if fp, fn := FPIR(s, q.Threshold), FNIR(s, q.Threshold, rank); q.FMR != fp || q.FNMR != fn {
				t.Errorf("rank %d, threshold %v: curve FPIR %v FNIR %v, want %v %v", rank, q.Threshold, q.FMR, q.FNMR, fp, fn)
			}
		}
	}
	if FNIRCurve(s[:3], 1) != nil {
		t.Error("a curve without non-mated searches")
	}
}
