package benchmarks

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	noTree := func(string) (string, bool, bool) { return "", false, false }
	tree := func(string) (string, bool, bool) { return "1234567890abcdef1234", true, true }
	main := debug.Module{Path: "github.com/bordermatch/bordermatch", Version: "(devel)"}
	for _, c := range []struct {
		name string
		bi   debug.BuildInfo
		tree func(string) (string, bool, bool)
		want string
	}{
		{"go build, modified", debug.BuildInfo{Main: main, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0b9f31f0a1b2c3d4e5f6"}, {Key: "vcs.modified", Value: "true"}}}, tree,
			"bordermatch (devel) commit 0b9f31f0a1b2 (modified)"},
		{"go build, clean", debug.BuildInfo{Main: main, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0b9f31f0a1b2c3d4e5f6"}, {Key: "vcs.modified", Value: "false"}}}, noTree,
			"bordermatch (devel) commit 0b9f31f0a1b2"},
		{"a tagged module", debug.BuildInfo{Main: debug.Module{Path: main.Path, Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0b9f31f0a1b2c3d4e5f6"}}}, noTree,
			"bordermatch v1.4.0 commit 0b9f31f0a1b2"},
		{"go test in a work tree", debug.BuildInfo{Main: main}, tree, "bordermatch (devel) commit 1234567890ab (modified)"},
		{"nothing known", debug.BuildInfo{Main: main}, noTree,
			"bordermatch (devel), commit unknown (built without VCS information, run outside its git work tree)"},
	} {
		if got := versionOf(&c.bi, c.tree); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestReportVersion: a report names the module version and the commit
// it was measured with.
func TestReportVersion(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git work tree: %v", err)
	}
	dir := t.TempDir()
	bmbench(t, ExitOK, "verify", "--modality", "finger", "--data", "../matcher/testdata/fingers/fvc2002_db1_b", "--quiet", "--out", dir)
	r, err := ReadReport(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := "bordermatch (devel) commit " + string(head[:12])
	if !strings.HasPrefix(r.Version, want) {
		t.Errorf("report version %q, want %q…", r.Version, want)
	}
}
