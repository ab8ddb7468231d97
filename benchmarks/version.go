package benchmarks

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// toolVersion names the code a report was measured with: the module, its
// version and the commit, e.g. "bordermatch (devel) commit 0b9f31f0a1b2
// (modified)". A figure is only reproducible from the exact code, and a
// module version alone is "(devel)" for every build from a checkout.
func toolVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (the binary carries no build information)"
	}
	return versionOf(bi, workTreeRevision)
}

// versionOf is toolVersion of bi. The commit is the one go build stamped
// (vcs.revision, vcs.modified); go run and go test stamp none, and then
// it is tree's, the git work tree bmbench runs in, if that is this module's.
func versionOf(bi *debug.BuildInfo, tree func(module string) (rev string, modified, ok bool)) string {
	name, version := path.Base(bi.Main.Path), bi.Main.Version
	if name == "." || name == "/" {
		name = "bmbench"
	}
	if version == "" {
		version = "(devel)"
	}
	var rev string
	modified, stamped := false, false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev, stamped = s.Value, true
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if !stamped {
		var ok bool
		if rev, modified, ok = tree(bi.Main.Path); !ok {
			return name + " " + version + ", commit unknown (built without VCS information, run outside its git work tree)"
		}
	}
	v := name + " " + version + " commit " + rev[:min(12, len(rev))]
	if modified {
		v += " (modified)"
	}
	return v
}

// workTreeRevision is the HEAD of the git work tree around the current
// directory, and whether tracked files differ from it, when that tree
// holds module.
func workTreeRevision(module string) (rev string, modified, ok bool) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel", "HEAD").Output()
	if err != nil {
		return "", false, false
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 || len(lines[1]) < 12 {
		return "", false, false
	}
	mod, err := os.ReadFile(filepath.Join(lines[0], "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module "+module+"\n")) {
		return "", false, false
	}
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return "", false, false
	}
	return lines[1], len(bytes.TrimSpace(st)) > 0, true
}
