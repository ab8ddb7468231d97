package server

// Caller identities that cannot collide (issue 19): limits and audit
// records follow a caller's key, not the name in its certificate, and a
// storm of refused calls writes a bounded log.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// issueAs issues, from s's local CA, a certificate named cn with role,
// written as file.pem and file-key.pem for dial, and returns its key id.
func (s *secureServer) issueAs(t *testing.T, file, cn, role string) string {
	t.Helper()
	ca, err := pki.LoadCA(filepath.Join(s.tls, pki.CAFile), filepath.Join(s.tls, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := ca.Issue(pki.Request{CommonName: cn, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tls, file+".pem"), c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tls, file+"-key.pem"), k, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyIDOf(t, c)
}

func keyIDOf(t *testing.T, certPEM []byte) string {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pki.KeyID(c)
}

// TestSameNameOwnLimits: a gate certificate named like the admin floods
// the server; the admin's calls still pass, and the audit trail tells the
// two callers apart by key id.
func TestSameNameOwnLimits(t *testing.T) {
	const burst = 10
	s := startSecure(t, access.Config{Rate: 0.001, Burst: burst})
	impostorKey := s.issueAs(t, "impostor", "local-admin", "gate")
	adminPEM, err := os.ReadFile(filepath.Join(s.tls, pki.AdminFile))
	if err != nil {
		t.Fatal(err)
	}
	adminKey := keyIDOf(t, adminPEM)
	ctx := context.Background()
	impostor := pb.NewMatcherClient(s.dial(t, "impostor", ""))
	admin := pb.NewMatcherClient(s.dial(t, "admin", ""))

	// An empty search is answered InvalidArgument once past access
	// control, and costs a token of the caller's bucket.
	refused := 0
	for range 3 * burst {
		_, err := impostor.Identify(ctx, &pb.IdentifyRequest{})
		if status.Code(err) == codes.ResourceExhausted {
			refused++
		} else if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("the gate's search: %v", err)
		}
	}
	if refused != 2*burst {
		t.Errorf("the flooding gate was refused %d of %d calls, want %d", refused, 3*burst, 2*burst)
	}
	// All of the admin's own burst but one, kept for reading the trail.
	for i := range burst - 1 {
		if _, err := admin.Identify(ctx, &pb.IdentifyRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("the admin's call %d while a gate of the same name flooded: %v, want InvalidArgument (admitted)", i+1, err)
		}
	}

	// Both are "local-admin" in the trail, told apart by their key ids,
	// over gRPC as in the store.
	ids := map[string]string{}
	for _, r := range auditRecords(t, s.audit) {
		if strings.HasSuffix(r.RPC, "/Identify") && r.Code == "InvalidArgument" {
			if r.Identity != "local-admin" {
				t.Errorf("record %d: identity %q", r.Seq, r.Identity)
			}
			ids[r.KeyID] = r.Role
		}
	}
	if len(ids) != 2 || ids[impostorKey] != "gate" || ids[adminKey] != "admin" {
		t.Errorf("key ids and roles of the audited searches %v; want the gate's %s and the admin's %s", ids, impostorKey, adminKey)
	}
	list, err := pb.NewAuditClient(s.dial(t, "admin", "")).List(ctx, &pb.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range list.GetRecords() {
		seen[r.GetIdentity()+" "+r.GetKeyId()] = true
	}
	if !seen["local-admin "+impostorKey] || !seen["local-admin "+adminKey] {
		t.Errorf("Audit.List's callers %v lack local-admin with key %s or %s", seen, impostorKey, adminKey)
	}
	// A refusal names the key too, so the operator can find the holder.
	_, err = impostor.Identify(ctx, &pb.IdentifyRequest{})
	if msg := status.Convert(err).Message(); !strings.Contains(msg, impostorKey) {
		t.Errorf("the rate limit's refusal %q does not name key %s", msg, impostorKey)
	}
}

// lineCounter is a log destination that keeps every line.
type lineCounter struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		l.lines = append(l.lines, m)
	}
	return len(p), nil
}

// about counts the lines that concern the calls whose code is one of codes
// (access control's warnings and the per-call lines).
func (l *lineCounter) about(codes ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.lines {
		for _, c := range codes {
			if m["code"] == c {
				n++
				break
			}
		}
	}
	return n
}

// TestRefusalStormBoundedLog: a client retrying a refused call in a loop
// (denied, and over its rate limit) writes a bounded number of log lines,
// and the counter per reason counts every refusal.
func TestRefusalStormBoundedLog(t *testing.T) {
	const storm, perCaller = 200, 3
	var logged lineCounter
	log := zerolog.New(&logged)
	metrics := NewMetrics(nil)
	s := startSecure(t, access.Config{Rate: 0.001, Burst: 2, Logger: log, RefusalLog: access.RefusalLogLimits{PerCaller: perCaller}},
		func(o *GRPCOptions) { o.Logger, o.Metrics = log, metrics })
	ctx := context.Background()

	// The officer may not delete: refused (and audited) every time.
	officer := pb.NewMatcherClient(s.dial(t, "officer-1", ""))
	for range storm {
		_, err := officer.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "x"})
		wantCode(t, err, codes.PermissionDenied)
	}
	// The gate is over its rate limit after 2 calls.
	gate := pb.NewMatcherClient(s.dial(t, "gate-1", ""))
	for range storm {
		_, _ = gate.Identify(ctx, &pb.IdentifyRequest{})
	}

	if n := logged.about("PermissionDenied"); n > perCaller {
		t.Errorf("%d denied calls wrote %d log lines, want at most %d", storm, n, perCaller)
	}
	if n := logged.about("ResourceExhausted"); n > perCaller {
		t.Errorf("%d calls over the rate limit wrote %d log lines, want at most %d", storm-2, n, perCaller)
	}
	mfs, err := metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "bordermatch_refused_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if counts[access.ReasonPermissionDenied] != storm || counts[access.ReasonRateLimit] != storm-2 || counts[access.ReasonUnauthenticated] != 0 {
		t.Errorf("bordermatch_refused_calls_total %v, want %d permission_denied and %d rate_limit", counts, storm, storm-2)
	}
	// The audit trail still holds every denial: it is the log that is
	// sampled, not the record.
	denied := 0
	for _, r := range auditRecords(t, s.audit) {
		if r.Decision == "denied" {
			denied++
		}
	}
	if denied != storm {
		t.Errorf("%d denials audited, want %d", denied, storm)
	}
}
