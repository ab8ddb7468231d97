package watchlist

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImportNamesEveryFolder: against a real matchd, a folder with a
// subject.json and no sample, one with a malformed subject.json and an
// empty one are each a FAILED line naming why, and the good folders are
// enrolled all the same; rerun, the enrolled ones are "already enrolled"
// (issue 18: the first two were skipped unsaid, the malformed file stopped
// the import before anything was enrolled).
func TestImportNamesEveryFolder(t *testing.T) {
	m := startMatchd(t)
	dir := t.TempDir()
	copyFile(t, amyPhoto(), filepath.Join(dir, "amy", "1.png"))
	writeFile(t, filepath.Join(dir, "amy", "subject.json"), []byte(`{"name": "Amy Farrah Fowler"}`))
	writeFile(t, filepath.Join(dir, "nophoto", "subject.json"), []byte(`{"name": "No Photo"}`))
	copyFile(t, amyPhoto(), filepath.Join(dir, "broken", "1.png"))
	writeFile(t, filepath.Join(dir, "broken", "subject.json"), []byte(`{"name": "Broken",`))
	writeFile(t, filepath.Join(dir, "empty", "notes.txt"), []byte("nothing to enrol"))
	writeFile(t, filepath.Join(dir, ".hidden", "1.png"), []byte("not a subject"))

	out, errs, code := runCLI(t, append(m.conn(), "import", dir, "--list", "sample", "--workers", "1")...)
	if code != ExitFailure || !strings.Contains(out, "Imported 1, already enrolled 0, failed 3 (of 4 folders).") {
		t.Fatalf("import: exit %d %q %q", code, out, errs)
	}
	for _, want := range []string{
		"FAILED broken: " + filepath.Join(dir, "broken", "subject.json") + ": unexpected end of JSON input",
		"FAILED empty: " + filepath.Join(dir, "empty") + ": nothing to enrol",
		"FAILED nophoto: " + filepath.Join(dir, "nophoto") + ": nothing to enrol",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	if out, errs, code := runCLI(t, append(m.conn(), "show", "amy")...); code != 0 || !strings.Contains(out, "Amy Farrah Fowler") || !strings.Contains(out, "sample") {
		t.Errorf("show amy: exit %d %q %q", code, out, errs)
	}

	out, errs, code = runCLI(t, append(m.conn(), "import", dir, "--list", "sample", "--json")...)
	if code != ExitFailure || !strings.Contains(out, `"imported": 0`) || !strings.Contains(out, `"exists": 1`) || !strings.Contains(out, `"failed": 3`) {
		t.Errorf("import again: exit %d %q %q", code, out, errs)
	}
}
