package watchlist

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bordermatch/bordermatch/audit"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

// auditServer serves the Audit service of a gallery whose first six
// records have been moved to the archive, in plaintext.
func auditServer(t *testing.T) (addr, archive string) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	adir := filepath.Join(t.TempDir(), "audit")
	l, err := audit.Open(st.AuditTrail(), audit.Options{ArchiveDir: adir, Retention: time.Hour, RetentionInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	old := time.Now().Add(-10 * time.Hour)
	for i := range 9 {
		at := old.Add(time.Duration(i) * time.Minute)
		if i >= 6 {
			at = time.Now()
		}
		if _, err := l.Append(audit.Record{Time: at, Identity: "gate-07", RPC: "/x", Decision: "ok", Code: "OK"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Retain(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterAuditServer(s, &audit.Service{Log: l})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String(), filepath.Join(adir, audit.ArchiveFile)
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errs bytes.Buffer
	code := Main(args, &out, &errs)
	return out.String(), errs.String(), code
}

func TestAuditVerifyArchive(t *testing.T) {
	addr, archive := auditServer(t)
	conn := []string{"--insecure", "--server", addr, "--timeout", "10s"}

	out, errs, code := runCLI(t, append(conn, "audit", "verify")...)
	if code != 0 || !strings.Contains(out, "intact: 9 record(s)") || !strings.Contains(out, "records 1-6; in the gallery: records 7-9") {
		t.Fatalf("audit verify: exit %d %q %q", code, out, errs)
	}

	copyPath := filepath.Join(t.TempDir(), "copy.jsonl")
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(copyPath, b, 0o600)
	out, errs, code = runCLI(t, "audit", "verify", "--archive", copyPath, "--offline")
	if code != 0 || !strings.Contains(out, "intact: 6 record(s), last 6") {
		t.Fatalf("offline: exit %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, append(conn, "audit", "verify", "--archive", copyPath)...)
	if code != 0 || !strings.Contains(out, "is the chain's records 1-6") {
		t.Fatalf("copy against the server: exit %d %q %q", code, out, errs)
	}
	// A shorter copy (an older one) links too.
	lines := bytes.SplitAfter(b, []byte("\n"))
	os.WriteFile(copyPath, bytes.Join(lines[:4], nil), 0o600)
	if out, errs, code = runCLI(t, append(conn, "audit", "verify", "--archive", copyPath)...); code != 0 || !strings.Contains(out, "records 1-4") {
		t.Fatalf("older copy: exit %d %q %q", code, out, errs)
	}

	// An edited copy: named, offline and online.
	edited := append([][]byte{}, lines...)
	edited[1] = bytes.Replace(edited[1], []byte("gate-07"), []byte("gate-08"), 1)
	os.WriteFile(copyPath, bytes.Join(edited, nil), 0o600)
	for _, args := range [][]string{{"audit", "verify", "--archive", copyPath, "--offline"}, append(conn, "audit", "verify", "--archive", copyPath)} {
		if _, errs, code = runCLI(t, args...); code != 1 || !strings.Contains(errs, copyPath) || !strings.Contains(errs, "record 2 was altered") {
			t.Fatalf("edited copy %v: exit %d %q", args, code, errs)
		}
	}
	// The last record edited: the copy is a chain, but not the server's.
	os.WriteFile(copyPath, bytes.Join(append(lines[:5:5], bytes.Replace(lines[5], []byte("gate-07"), []byte("gate-08"), 1)), nil), 0o600)
	if _, errs, code = runCLI(t, append(conn, "audit", "verify", "--archive", copyPath)...); code != 1 || !strings.Contains(errs, "record 6 differs") {
		t.Fatalf("copy with its last record edited: exit %d %q", code, errs)
	}
	if _, errs, code = runCLI(t, "audit", "verify", "--offline"); code != 2 {
		t.Fatalf("--offline without --archive: exit %d %q", code, errs)
	}
}
