package benchmarks

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/matcher"
)

// TestDefaultOutDirs runs the subcommands without --out in an empty
// directory: each writes into its own documented folder, so runs of
// different subcommands do not overwrite each other.
func TestDefaultOutDirs(t *testing.T) {
	data, err := filepath.Abs("../matcher/testdata/fingers/fvc2002_db1_b")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	finger := []string{"--modality", "finger", "--data", data, "--quiet"}
	for _, c := range []struct {
		args []string
		file string
	}{
		{append([]string{"verify"}, finger...), "bmbench-verify/report.json"},
		{append([]string{"identify"}, finger...), "bmbench-identify/report.json"},
		{append([]string{"calibrate"}, finger...), "bmbench-calibrate/calibration.json"},
		{append([]string{"speed", "--samples", "4", "--gallery", "0"}, finger...), "bmbench-speed/speed.json"},
		{[]string{"scale", "--gallery", "2000", "--dim", "16", "--probes", "8", "--batch", "8", "--models", t.TempDir()}, "bmbench-scale/scale.json"},
		{[]string{"compare", "bmbench-verify/report.json"}, "bmbench-compare/compare.md"},
	} {
		bmbench(t, ExitOK, c.args...)
		if _, err := os.Stat(c.file); err != nil {
			t.Errorf("bmbench %v without --out: %v", c.args, err)
		}
	}
	// cluster starts JetStream servers for seconds: its default is read
	// from the flag it binds, as each run above read its own.
	root := (&cli{}).root()
	for sub, want := range map[string]string{"cluster": "bmbench-cluster"} {
		cmd, _, err := root.Find([]string{sub})
		if err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Lookup("out").DefValue; got != want {
			t.Errorf("%s --out default %q, want %q", sub, got, want)
		}
	}
	entries, _ := os.ReadDir(".")
	if len(entries) != 6 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folders written: %v, want one per subcommand run (6)", names)
	}
}

// TestIdentifyFNIRPlot: identify draws FNIR against FPIR (fnir.png), from
// the curve report.json keeps, and report.md shows it.
func TestIdentifyFNIRPlot(t *testing.T) {
	dir := t.TempDir()
	bmbench(t, ExitOK, "identify", "--modality", "finger", "--data", "../matcher/testdata/fingers/fvc2002_db1_b,../matcher/testdata/fingers/fvc2002_db3_b",
		"--quiet", "--out", dir)
	checkPNG(t, filepath.Join(dir, "fnir.png"))
	r, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.FNIRCurve) < 2 {
		t.Fatalf("fnir_curve has %d points", len(r.FNIRCurve))
	}
	for _, q := range r.FNIRCurve {
		if q.FMR < 0 || q.FMR > 1 || q.FNMR < 0 || q.FNMR > 1 {
			t.Errorf("fnir_curve point %+v: rates outside [0, 1]", q)
		}
	}
	// Its operating points lie on it: FNIR at FPIR 10% is the curve's FNIR
	// at the first threshold whose FPIR is at most 10%.
	for _, op := range r.FNIRPoints {
		if op.Target != 0.1 || !op.Measurable {
			continue
		}
		for _, q := range r.FNIRCurve {
			if q.Threshold == op.Threshold && q.FNMR != op.Rate {
				t.Errorf("curve FNIR %v at threshold %v, report %v", q.FNMR, q.Threshold, op.Rate)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "![FNIR against FPIR](fnir.png)") {
		t.Errorf("report.md does not show fnir.png:\n%s", md)
	}
}

// TestCalibrateSuggestsMeasurableFMR: the target FMR calibrate suggests
// is one its own table measures (>= 3/impostor comparisons), which matchd
// then accepts.
func TestCalibrateSuggestsMeasurableFMR(t *testing.T) {
	dir := t.TempDir()
	// 64 records: 1792 impostor comparisons measure FMR down to 0.17%.
	out := bmbench(t, ExitOK, "calibrate", "--modality", "finger", "--quiet", "--out", dir,
		"--data", "../matcher/testdata/fingers/fvc2002_db1_b,../matcher/testdata/fingers/fvc2002_db3_b")
	cal, err := matcher.ReadCalibration(filepath.Join(dir, "calibration.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`use: matchd --finger-calibration \S+ --target-fmr (\S+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no suggested --target-fmr in:\n%s", out)
	}
	fmr, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	if fmr < 3/float64(cal.ImpostorCount) {
		t.Errorf("suggested --target-fmr %v, below 3/%d = %.4g: not measurable", fmr, cal.ImpostorCount, 3/float64(cal.ImpostorCount))
	}
	if _, err := cal.ThresholdForFMR(fmr); err != nil {
		t.Errorf("suggested --target-fmr %v: %v", fmr, err)
	}

	for _, c := range []struct {
		n    int
		want float64
	}{{0, 0}, {5, 0}, {6, 0.5}, {10, 0.5}, {300, 0.01}, {700, 0.005}, {1792, 0.002}, {2999, 0.002}, {3000, 0.001}, {1_000_000, 0.001}} {
		got := SuggestedFMR(c.n)
		if got != c.want {
			t.Errorf("SuggestedFMR(%d) = %v, want %v", c.n, got, c.want)
		}
		if got > 0 {
			if _, err := (matcher.Calibration{ImpostorCount: c.n, Points: cal.Points}).ThresholdForFMR(got); err != nil {
				t.Errorf("SuggestedFMR(%d) = %v: %v", c.n, got, err)
			}
		}
	}
}
