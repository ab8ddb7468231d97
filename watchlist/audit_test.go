package watchlist

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestAuditTableFits: the audit table fits the terminal's width ($COLUMNS
// when stdout is not one), the decisions wrapped whole and other cells
// cut with "…", and shows times with their zone (issue 18).
func TestAuditTableFits(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := audit.Open(st.AuditTrail(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	long := "probe: invalid request: several faces found: 6 faces in the image and none clearly the face of interest (the largest, 1.4x the area of any other, nearest the centre)"
	for _, r := range []audit.Record{
		{Identity: "officer-jane.roe@border.example", Role: "officer", RPC: "/bordermatch.v1.Matcher/Identify", Decision: "error", Code: "InvalidArgument", Detail: long},
		{Identity: "gate-07", KeyID: "0123456789abcdef", Role: "gate", Gate: "gate-07", RPC: "/bordermatch.v1.Matcher/Identify", Decision: "hit", Code: "OK",
			Hits: []audit.Hit{{SubjectID: "P1234"}, {SubjectID: "P1235"}, {SubjectID: "P1236"}, {SubjectID: "P1237"}}},
	} {
		r.Time = time.Now()
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterAuditServer(s, &audit.Service{Log: l})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn := []string{"--insecure", "--server", lis.Addr().String(), "--timeout", "10s"}

	t.Setenv("COLUMNS", "80")
	out, errs, code := runCLI(t, append(conn, "audit")...)
	if code != 0 {
		t.Fatalf("audit: exit %d %q", code, errs)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("a line of %d characters at 80 columns: %q", n, line)
		}
	}
	zone := time.Now().Format("MST")
	if !strings.Contains(out, time.Now().Format("2006-01-02")) || !strings.Contains(out, " "+zone+" ") || !strings.Contains(out, "P1234") || !strings.Contains(out, "dentify") {
		t.Errorf("audit at 80 columns (zone %s):\n%s", zone, out)
	}
	// The decision is wrapped, whole.
	if words := strings.Join(strings.Fields(out), " "); !strings.Contains(words, "error (InvalidArgument: "+long+")") {
		t.Errorf("the decision is not all there at 80 columns:\n%s", out)
	}
	// Wide enough: nothing is cut.
	t.Setenv("COLUMNS", "400")
	// The caller is named with its key id (issue 19).
	if out, _, _ = runCLI(t, append(conn, "audit")...); !strings.Contains(out, "error (InvalidArgument: "+long+")") || strings.Contains(out, "…") || strings.Count(out, "\n") != 4 ||
		!strings.Contains(out, "gate-07 (0123456789abcdef)") {
		t.Errorf("audit at 400 columns:\n%s", out)
	}
}
