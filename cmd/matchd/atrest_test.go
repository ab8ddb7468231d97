package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// TestAtRestEndToEnd: matchd generates a master key on first start and
// encrypts the gallery (no name or template bytes in any file of the data
// directory); watchlist backup/restore moves the gallery to another matchd;
// a damaged backup is refused; rotate-key changes the master key.
func TestAtRestEndToEnd(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data)
	conn := dialMatchd(t, d.addr)
	waitServing(t, conn)
	c := pb.NewMatcherClient(conn)
	const name = "Zebulon Quixotic-Marmaduke"
	var needles [][]byte
	for i := range 5 {
		tpl := crashFace(uint64(9000+i), 0)
		needles = append(needles, tpl[40:88])
		_, err := c.Enroll(context.Background(), &pb.EnrollRequest{SubjectId: "z" + string(rune('a'+i)), Name: name,
			Watchlists: []string{"interpol"}, Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: tpl}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	mustCLI(t, d.addr, "add", "--id", "tzuyu", "--name", "Tzuyu Zebulon", "--photo", photo("idols/tzuyu/1.jpg"), "--list", "sample")
	backup := filepath.Join(t.TempDir(), "gallery.bmbackup")
	out := mustCLI(t, d.addr, "backup", backup)
	if !strings.Contains(out, "Backed up") {
		t.Errorf("backup printed %q", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v, want mode 0600", fi.Mode(), err)
	}
	conn.Close()
	d.stop(t)
	if !strings.Contains(d.log.String(), "NEW master key generated") {
		t.Errorf("the log does not say a key was generated:\n%s", d.log)
	}
	key := filepath.Join(data, "master.key")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v, want mode 0600", fi, err)
	}
	needles = append(needles, []byte(name), []byte("Tzuyu Zebulon"))
	filepath.WalkDir(filepath.Join(data, "gallery"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds %q in the clear", p, n)
			}
		}
		return nil
	})

	// Restore into another matchd; a damaged file first.
	d2 := startMatchd(t, t.TempDir(), "--purge-interval", "1s")
	good, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.bmbackup")
	os.WriteFile(bad, good[:len(good)-10], 0o600)
	_, errs, code := cli(t, d2.addr, "restore", bad)
	if code != 4 || !strings.Contains(errs, "truncated") || !strings.Contains(errs, "nothing was restored") {
		t.Errorf("restore of a truncated backup: exit %d %q", code, errs)
	}
	out = mustCLI(t, d2.addr, "restore", backup)
	if !strings.Contains(out, "Restored 6 subject(s)") {
		t.Errorf("restore printed %q", out)
	}
	out = mustCLI(t, d2.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"), "--json")
	if !strings.Contains(out, `"subject_id": "tzuyu"`) {
		t.Errorf("search after restore: %s", out)
	}
	_, errs, code = cli(t, d2.addr, "restore", backup)
	if code != 4 || !strings.Contains(errs, "empty gallery") {
		t.Errorf("second restore: exit %d %q", code, errs)
	}
	// A deletion is purged from disk within the purge interval.
	mustCLI(t, d2.addr, "remove", "zb")
	time.Sleep(3 * time.Second)
	d2.stop(t)
	if !strings.Contains(d2.log.String(), `"deleted_subjects":1`) {
		t.Errorf("no purge logged after a deletion:\n%s", d2.log)
	}

	// Rotate the first gallery's master key.
	newKey := filepath.Join(t.TempDir(), "new.key")
	os.WriteFile(newKey, []byte(strings.Repeat("5a", 32)+"\n"), 0o600)
	rot, err := exec.Command(filepath.Join(binDir, "matchd"), "rotate-key", "--data", data, "--old-key-file", key, "--new-key-file", newKey).CombinedOutput()
	if err != nil {
		t.Fatalf("rotate-key: %v\n%s", err, rot)
	}
	// The old key no longer opens it.
	out2, err := exec.Command(filepath.Join(binDir, "matchd"), "--data", data, "--models", modelsDir(t), "--listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "encryption key does not match") {
		t.Errorf("start with the old key: %v %s", err, out2)
	}
	d = startMatchd(t, data, "--encryption-key-file", newKey)
	out = mustCLI(t, d.addr, "show", "za")
	if !strings.Contains(out, name) {
		t.Errorf("show after rotation: %s", out)
	}
	d.stop(t)
}
