package benchmarks

import (
	"os"
	"path/filepath"
	"testing"
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
