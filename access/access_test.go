package access

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func TestParseTokens(t *testing.T) {
	sum := sha256.Sum256([]byte("officer-12-secret-token"))
	file := "# token identity role\n\n" +
		"gate-07-secret-token-abc  gate-07  gate\n" +
		"\tsha256:" + hex.EncodeToString(sum[:]) + "\tofficer-12\tofficer\n"
	tk, err := ParseTokens([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ tok, id, role string }{
		{"gate-07-secret-token-abc", "gate-07", "gate"},
		{"officer-12-secret-token", "officer-12", "officer"},
		{"gate-07-secret-token-abd", "", ""},
		{"", "", ""},
		{"sha256:" + hex.EncodeToString(sum[:]), "", ""}, // the hash is not the token
	} {
		id, role, ok := tk.Lookup(tc.tok)
		if id != tc.id || role != tc.role || ok != (tc.id != "") {
			t.Errorf("Lookup(%q) = %q %q %v, want %q %q", tc.tok, id, role, ok, tc.id, tc.role)
		}
	}
	for _, tc := range []struct{ file, err string }{
		{"short gate-1 gate", "shorter than 16"},
		{"aaaaaaaaaaaaaaaaaaaa gate-1", "found 2 fields"},
		{"aaaaaaaaaaaaaaaaaaaa gate-1 root", `unknown role "root"`},
		{"sha256:abcd gate-1 gate", "64 hex"},
		{"aaaaaaaaaaaaaaaaaaaa a gate\naaaaaaaaaaaaaaaaaaaa b admin", "line 2: same token as line 1"},
		{"# nothing\n", "no tokens"},
	} {
		if _, err := ParseTokens([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseTokens(%q): %v, want %q", tc.file, err, tc.err)
		}
	}
}

// TestTable: every RPC of the services matchd serves (and of those being
// added) is in the role table, admin may call all of them, and anything
// else is denied.
func TestTable(t *testing.T) {
	for _, sd := range []struct {
		name    string
		methods []string
	}{
		{pb.Matcher_ServiceDesc.ServiceName, names(pb.Matcher_ServiceDesc.Methods)},
		{pb.Audit_ServiceDesc.ServiceName, names(pb.Audit_ServiceDesc.Methods)},
		{"bordermatch.v1.Gates", []string{"CaptureAndIdentify", "GateStatus", "IdentifyFrames"}},
		{"bordermatch.v1.Admin", []string{"Backup", "Restore"}},
	} {
		for _, m := range sd.methods {
			full := "/" + sd.name + "/" + m
			if _, ok := Methods[full]; !ok {
				t.Errorf("%s is not in the role table", full)
			}
			if !Allowed(Methods, full, Admin) {
				t.Errorf("admin may not call %s", full)
			}
		}
	}
	for _, tc := range []struct {
		method, role string
		want         bool
	}{
		{"/bordermatch.v1.Matcher/Identify", Gate, true},
		{"/bordermatch.v1.Matcher/Identify", Officer, true},
		{"/bordermatch.v1.Matcher/Enroll", Gate, false},
		{"/bordermatch.v1.Matcher/Enroll", Officer, false},
		{"/bordermatch.v1.Matcher/DeleteSubject", Officer, false},
		{"/bordermatch.v1.Matcher/GetSubject", Gate, false},
		{"/bordermatch.v1.Gates/CaptureAndIdentify", Officer, false},
		{"/bordermatch.v1.Audit/List", Officer, false},
		{"/bordermatch.v1.Matcher/Identify", "", false},
		{"/grpc.health.v1.Health/Check", "", true},
		{"/bordermatch.v1.Matcher/NewThing", Admin, false},
		{"/grpc.channelz.v1.Channelz/GetServers", Admin, false},
	} {
		if got := Allowed(Methods, tc.method, tc.role); got != tc.want {
			t.Errorf("Allowed(%s, %q) = %v", tc.method, tc.role, got)
		}
	}
}

func names(ms []grpc.MethodDesc) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MethodName
	}
	return out
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("gate-07-secret-token-abc gate-07 gate\n"))
	f.Add([]byte("# c\nsha256:" + strings.Repeat("ab", 32) + " o officer\n"))
	f.Add([]byte("x y z\n\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := ParseTokens(b)
		if err != nil {
			return
		}
		if tk.Len() == 0 {
			t.Fatal("parsed a file with no tokens")
		}
		for _, e := range tk.entries {
			if e.identity == "" || (e.role != Gate && e.role != Officer && e.role != Admin) {
				t.Fatalf("entry %+v", e)
			}
		}
		// Every plain token in an accepted file looks up to its own line.
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "sha256:") {
				if id, role, ok := tk.Lookup(f[0]); !ok || id != f[1] || role != f[2] {
					t.Fatalf("token %q looks up to %q %q %v", f[0], id, role, ok)
				}
			}
		}
	})
}
