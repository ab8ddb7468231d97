package matcher

import (
	"bytes"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestNewCalibration(t *testing.T) {
	ninf, inf := math.Inf(-1), math.Inf(1)
	for _, c := range []struct {
		name     string
		impostor []float64
		want     []CalibrationPoint
	}{
		// 5 comparisons, one failed: >= 0.1: 4, >= 0.2: 3, >= 0.5: 1.
		{"ties and a failure", []float64{0.2, 0.5, ninf, 0.1, 0.2}, []CalibrationPoint{{0.1, 0.8}, {0.2, 0.6}, {0.5, 0.2}}},
		{"NaN is a failure", []float64{math.NaN(), 0.3}, []CalibrationPoint{{0.3, 0.5}}},
		// +Inf matches everywhere but is no point.
		{"+Inf", []float64{inf, 0.3, 0.1, 0.2}, []CalibrationPoint{{0.1, 1}, {0.2, 0.75}, {0.3, 0.5}}},
		{"single", []float64{0.7}, []CalibrationPoint{{0.7, 1}}},
		{"all failed", []float64{ninf, ninf}, nil},
		{"empty", nil, nil},
	} {
		got := NewCalibration(c.impostor)
		exact := 0.0 // fewer than 1000 distinct scores: all exact
		if len(c.want) > 0 {
			exact = c.want[0].Score
		}
		if got.ImpostorCount != len(c.impostor) || got.Version != CalibrationVersion || !slices.Equal(got.Points, c.want) ||
			got.ExactFrom != exact {
			t.Errorf("%s: NewCalibration = %+v, want %d impostors, points %v", c.name, got, len(c.impostor), c.want)
		}
	}
}

func small() Calibration {
	c := NewCalibration([]float64{0.2, 0.5, math.Inf(-1), 0.1, 0.2}) // {0.1 .8} {0.2 .6} {0.5 .2}
	c.Modality, c.Algorithm = "face", "test/v1"
	return c
}

func TestThresholdForFMR(t *testing.T) {
	c := small()
	for _, tc := range []struct {
		target float64
		want   float32
		err    string
	}{
		// 3/5: the smallest measurable. Met at 0.2; no impostor scored
		// between 0.1 and 0.2, so the lowest threshold is just above 0.1:
		// float32(0.1) is 0.100000001490116.
		{0.6, float32(0.1), ""},
		{0.7, float32(0.1), ""},
		{0.8, float32(0.1), ""}, // the lowest point
		{0.99, float32(0.1), ""},
		{0.59, 0, "3/5 = 0.6"},
		{0, 0, "outside (0, 1)"},
		{1, 0, "outside (0, 1)"},
		{math.NaN(), 0, "outside (0, 1)"},
	} {
		got, err := c.ThresholdForFMR(tc.target)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ThresholdForFMR(%v) = %v, %v; want error %q", tc.target, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ThresholdForFMR(%v) = %v, %v; want %v", tc.target, got, err, tc.want)
		}
	}
	if _, err := (Calibration{}).ThresholdForFMR(0.5); err == nil || !strings.Contains(err.Error(), "0 impostor") {
		t.Errorf("empty calibration: %v", err)
	}
	// Every impostor tied at the top: no point has FMR <= 0.75, so the
	// threshold is just above the highest score.
	tied := NewCalibration([]float64{0.5, 0.5, 0.5, 0.5})
	if got, err := tied.ThresholdForFMR(0.75); err != nil || got != math.Nextafter32(0.5, 1) {
		t.Errorf("tied: ThresholdForFMR = %v, %v; want the float32 after 0.5", got, err)
	}
	// Float32 scores: just above the point below.
	f32 := NewCalibration([]float64{0.25, 0.25, 0.5, 0.75})
	if got, err := f32.ThresholdForFMR(0.75); err != nil || got != math.Nextafter32(0.25, 1) {
		t.Errorf("float32 scores: ThresholdForFMR(0.75) = %v, %v; want the float32 after 0.25", got, err)
	}
	// In the thinned part of a table (below ExactFrom) impostors may have
	// scored between two points: the threshold is the point's own score,
	// rounded up (never down: a float32 score just below it would match).
	thin := Calibration{ImpostorCount: 4, ExactFrom: 0.30000001, Points: []CalibrationPoint{{0.1, 1}, {0.30000001, 0.25}}}
	got, err := thin.ThresholdForFMR(0.75)
	if err != nil || float64(got) < 0.30000001 || float64(math.Nextafter32(got, 0)) >= 0.30000001 {
		t.Errorf("thinned: ThresholdForFMR rounds 0.30000001 to %v, %v", got, err)
	}
}

func TestFloat32Rounding(t *testing.T) {
	for _, c := range []struct {
		v         float64
		up, above float32
	}{
		{0.25, 0.25, math.Nextafter32(0.25, 1)},                                     // exact in float32
		{0.1, float32(0.1), float32(0.1)},                                           // float32(0.1) > 0.1
		{0.7, math.Nextafter32(float32(0.7), 1), math.Nextafter32(float32(0.7), 1)}, // float32(0.7) < 0.7
		{-0.5, -0.5, math.Nextafter32(-0.5, 0)},
	} {
		if got := roundUp32(c.v); got != c.up {
			t.Errorf("roundUp32(%v) = %v, want %v", c.v, got, c.up)
		}
		if got := above32(c.v); got != c.above {
			t.Errorf("above32(%v) = %v, want %v", c.v, got, c.above)
		}
	}
}

func TestFMRAt(t *testing.T) {
	c := small() // {0.1 .8} {0.2 .6} {0.5 .2}
	for _, tc := range []struct{ score, want float64 }{
		{-5, 0.8}, {0.1, 0.8}, {0.15, 0.7}, {0.2, 0.6}, {0.35, 0.4}, {0.5, 0.2}, {0.9, 0.2}, {math.Inf(1), 0.2},
	} {
		if got := c.FMRAt(tc.score); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("FMRAt(%v) = %v, want %v", tc.score, got, tc.want)
		}
	}
	if got := c.FMRAt(math.NaN()); !math.IsNaN(got) {
		t.Errorf("FMRAt(NaN) = %v", got)
	}
	if got := (Calibration{}).FMRAt(0.5); !math.IsNaN(got) {
		t.Errorf("FMRAt without points = %v", got)
	}
}

// exactFMR counts impostor scores >= t in sorted scores.
func exactFMR(sorted []float64, t float64) float64 {
	i, _ := slices.BinarySearch(sorted, t)
	return float64(len(sorted)-i) / float64(len(sorted))
}

// A million impostor scores: the table is small, exact at the low-FMR end
// and never wrong anywhere; FMRAt is monotone.
func TestCalibrationLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	imp := make([]float64, 1000000)
	for i := range imp {
		imp[i] = float64(float32(0.84 + 0.05*r.NormFloat64())) // float32 scores, as the matcher makes
	}
	c := NewCalibration(imp)
	sorted := slices.Sorted(slices.Values(imp))
	if len(c.Points) > 2000 || len(c.Points) < 1900 {
		t.Errorf("%d points, want at most 2000 and close to it", len(c.Points))
	}
	for i, p := range c.Points {
		if p.FMR != exactFMR(sorted, p.Score) {
			t.Fatalf("points[%d] = %v, exact FMR %v", i, p, exactFMR(sorted, p.Score))
		}
	}
	// The 1000 highest distinct scores are all there.
	distinct := slices.Compact(slices.Clone(sorted))
	top := distinct[len(distinct)-1000:]
	for i, p := range c.Points[len(c.Points)-1000:] {
		if p.Score != top[i] {
			t.Fatalf("top point %d: score %v, want %v", i, p.Score, top[i])
		}
	}
	if c.ExactFrom != top[0] {
		t.Errorf("ExactFrom %v, want %v", c.ExactFrom, top[0])
	}
	if c.Points[0].Score != sorted[0] || c.Points[0].FMR != 1 {
		t.Errorf("lowest point %v, want {%v 1}", c.Points[0], sorted[0])
	}
	for _, target := range []float64{3e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 0.5} {
		thr, err := c.ThresholdForFMR(target)
		if err != nil {
			t.Fatal(err)
		}
		fmr := exactFMR(sorted, float64(thr))
		// The exact lowest threshold: the lowest score s with FMR(s) <= target.
		// It is just above distinct[k-1] in the exact part of the table.
		k := slices.IndexFunc(distinct, func(s float64) bool { return exactFMR(sorted, s) <= target })
		switch {
		case fmr > target:
			t.Errorf("target %v: threshold %v has FMR %v", target, thr, fmr)
		case target*1e6 <= 1000 && (float64(thr) <= distinct[k-1] || float64(math.Nextafter32(thr, 0)) > distinct[k-1]):
			t.Errorf("target %v (exact region): threshold %v, want the float32 after %v", target, thr, distinct[k-1])
		case fmr < target*0.95:
			t.Errorf("target %v: threshold %v has FMR %v, needlessly strict", target, thr, fmr)
		}
	}
	if _, err := c.ThresholdForFMR(2.9e-6); err == nil || !strings.Contains(err.Error(), "1000000 impostor") {
		t.Errorf("FMR below 3/N: %v", err)
	}
	prev := 1.0
	for s := 0.5; s < 1.1; s += 0.0001 {
		f := c.FMRAt(s)
		if f > prev || f < 0 {
			t.Fatalf("FMRAt(%v) = %v after %v", s, f, prev)
		}
		prev = f
	}
}

func golden() Calibration {
	c := small()
	c.GenuineCount = 2
	c.DataSet = "synthetic: 5 impostor scores (sha256 0123abcd)"
	c.Created = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c.Note = "hand-computed test table"
	return c
}

func TestCalibrationGolden(t *testing.T) {
	path := filepath.Join("testdata", "calibration.golden.json")
	c := golden()
	out := filepath.Join(t.TempDir(), "cal.json")
	if err := c.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("WriteFile wrote\n%s\nwant (%s)\n%s", got, path, want)
	}
	back, err := ReadCalibration(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("ReadCalibration(golden) = %+v, want %+v", back, c)
	}
	// WriteFile leaves no temporary file behind and replaces an old file.
	if err := c.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("directory holds %d files after two writes", len(ents))
	}
}

func TestCalibrationWriteRefusesInvalid(t *testing.T) {
	c := golden()
	c.Modality = ""
	path := filepath.Join(t.TempDir(), "cal.json")
	if err := c.WriteFile(path); err == nil || !strings.Contains(err.Error(), "modality") {
		t.Errorf("WriteFile without modality: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("invalid calibration written: %v", err)
	}
	if err := golden().WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir.json")); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestReadCalibrationRejects(t *testing.T) {
	const head = `"version":1,"modality":"face","algorithm":"a/v1","impostor_count":4,"genuine_count":1,"data_set":"x","created":"2026-03-01T12:00:00Z","exact_from":0.1`
	for _, c := range []struct {
		name, json, err string
	}{
		{"empty", ``, "empty file"},
		{"syntax", `{"version":1,}`, "offset 14"},
		{"truncated", `{"version":1`, "unexpected EOF"},
		{"not an object", `[1,2]`, "cannot unmarshal array"},
		{"wrong type", `{` + head + `,"points":[{"score":"high","fmr":1}]}`, "points.score: offset"},
		{"unknown field", `{` + head + `,"threshold":0.5,"points":[{"score":0.1,"fmr":1}]}`, `unknown field "threshold"`},
		{"misspelt point field", `{` + head + `,"points":[{"score":0.1,"fnr":1}]}`, `unknown field "fnr"`},
		{"trailing data", `{` + head + `,"points":[{"score":0.1,"fmr":1}]} {}`, "data after"},
		{"version", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"version":1`, `"version":2`, 1), "version: 2"},
		{"no version", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"version":1,`, ``, 1), "version: 0"},
		{"modality", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"face"`, `""`, 1), "modality: missing"},
		{"algorithm", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"algorithm":"a/v1",`, ``, 1), "algorithm: missing"},
		{"impostor count", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"impostor_count":4`, `"impostor_count":0`, 1), "impostor_count: 0"},
		{"genuine count", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"genuine_count":1`, `"genuine_count":-1`, 1), "genuine_count: -1"},
		{"no points", `{` + head + `,"points":[]}`, "points: empty"},
		{"fmr above 1", `{` + head + `,"points":[{"score":0.1,"fmr":1.25}]}`, "points[0].fmr: 1.25 is outside [0, 1]"},
		{"fmr negative", `{` + head + `,"points":[{"score":0.1,"fmr":1},{"score":0.2,"fmr":-0.25}]}`, "points[1].fmr: -0.25 is outside"},
		{"fmr not a count", `{` + head + `,"points":[{"score":0.1,"fmr":1},{"score":0.2,"fmr":0.3}]}`, "points[1].fmr: 0.3 is not a count out of impostor_count 4"},
		{"fmr rises", `{` + head + `,"points":[{"score":0.1,"fmr":0.5},{"score":0.2,"fmr":0.75}]}`, "points[1].fmr: 0.75 is above points[0].fmr 0.5"},
		{"score descends", `{` + head + `,"points":[{"score":0.1,"fmr":1},{"score":0.3,"fmr":0.75},{"score":0.2,"fmr":0.5}]}`, "points[2].score: 0.2 is not above points[1].score 0.3"},
		{"exact_from not a point", strings.Replace(`{`+head+`,"points":[{"score":0.1,"fmr":1}]}`, `"exact_from":0.1`, `"exact_from":0.15`, 1), "exact_from: 0.15 is not the score of a point"},
		{"score repeats", `{` + head + `,"points":[{"score":0.1,"fmr":1},{"score":0.1,"fmr":0.75}]}`, "points[1].score: 0.1 is not above"},
	} {
		path := filepath.Join(t.TempDir(), "cal.json")
		if err := os.WriteFile(path, []byte(c.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCalibration(path)
		if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: ReadCalibration error %v, want one naming %q and the path", c.name, err, c.err)
		}
	}
	if _, err := ReadCalibration(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzParseCalibration(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "calibration.golden.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"modality":"face","algorithm":"a","impostor_count":3,"points":[{"score":0,"fmr":1}]}`))
	f.Add([]byte(`{"points":[{"score":1e400}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCalibration(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed calibration invalid: %v", err)
		}
		// What parses is usable: lookups are monotone and in range.
		prev := 1.0
		for _, p := range c.Points {
			f := c.FMRAt(p.Score)
			if f != p.FMR || f > prev {
				t.Fatalf("FMRAt(%v) = %v, point says %v", p.Score, f, p.FMR)
			}
			prev = f
		}
		path := filepath.Join(t.TempDir(), "c.json")
		if err := c.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		back, err := ReadCalibration(path)
		if err == nil && back.Created.Equal(c.Created) {
			back.Created = c.Created // the same instant; the zone may be another *Location
		}
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, back, c)
		}
	})
}
