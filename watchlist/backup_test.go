package watchlist

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupKeepsAnExistingFile: backup refuses a file that exists,
// before asking the server, unless --force (issue 18: it was replaced
// without a word).
func TestBackupKeepsAnExistingFile(t *testing.T) {
	m := startMatchd(t)
	dir := t.TempDir()
	old := writeFile(t, filepath.Join(dir, "gallery.bmbackup"), []byte("last week's backup"))

	_, errs, code := runCLI(t, append(m.conn(), "backup", old)...)
	if code != ExitBadInput || !strings.Contains(errs, old) || !strings.Contains(errs, "--force") {
		t.Errorf("backup over a file: exit %d %q", code, errs)
	}
	if b, _ := os.ReadFile(old); string(b) != "last week's backup" {
		t.Errorf("the existing file now holds %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the one there was", len(entries))
	}

	out, errs, code := runCLI(t, append(m.conn(), "backup", old, "--force")...)
	if b, _ := os.ReadFile(old); code != 0 || !strings.Contains(out, "Backed up the gallery to "+old) || len(b) == 0 || string(b) == "last week's backup" {
		t.Errorf("backup --force: exit %d %q %q, file of %d bytes", code, out, errs, len(b))
	}
	fresh := filepath.Join(dir, "new.bmbackup")
	if out, errs, code = runCLI(t, append(m.conn(), "backup", fresh)...); code != 0 {
		t.Errorf("backup to a new file: exit %d %q %q", code, out, errs)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new backup: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the directory, want the two backups (no partial file left)", len(entries))
	}
}
