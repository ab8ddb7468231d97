package server

// Access control and audit over real TLS: the real Service on a real
// Badger directory, served by NewGRPCServer with the local CA's
// certificates on a loopback port, called by clients holding certificates
// (or tokens) of each role.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

type secureServer struct {
	addr  string
	tls   string // the local CA directory
	store *store.Store
	audit *audit.Log
}

// startSecure serves the real Service with TLS (unless acc.Insecure),
// access control and the audit trail, and issues client certificates:
// gate-1 (gate), officer-1 (officer) and norole (no role) beside the local
// CA's admin certificate. more may change the server's options (a logger,
// metrics).
func startSecure(t *testing.T, acc access.Config, more ...func(*GRPCOptions)) *secureServer {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(engine.Config{Store: st, Faces: sharedExtractor(t), Threshold: matcher.DefaultFaceThreshold, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := audit.Open(st.AuditTrail(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auditLog.Close() })
	s := &secureServer{tls: filepath.Join(dir, "tls"), store: st, audit: auditLog}
	if _, err := pki.EnsureLocal(s.tls, []string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(s.tls, pki.CAFile), filepath.Join(s.tls, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, role := range map[string]string{"gate-1": "gate", "officer-1": "officer", "norole": ""} {
		c, k, err := ca.Issue(pki.Request{CommonName: name, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(s.tls, name+".pem"), c, 0o600)
		os.WriteFile(filepath.Join(s.tls, name+"-key.pem"), k, 0o600)
	}
	var srvTLS *tls.Config
	if !acc.Insecure {
		srvTLS, err = pki.ServerConfig(filepath.Join(s.tls, pki.ServerFile), filepath.Join(s.tls, pki.ServerKeyFile),
			filepath.Join(s.tls, pki.CAFile), acc.Tokens == nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	gopt := GRPCOptions{MaxMessageBytes: 4 << 20, Logger: zerolog.Nop(), TLS: srvTLS, Access: &acc, Audit: s.audit}
	for _, f := range more {
		f(&gopt)
	}
	gs, _ := NewGRPCServer(svc, gopt)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	go gs.Serve(lis)
	t.Cleanup(func() {
		gs.Stop()
		st.Close()
	})
	return s
}

// dial connects as the holder of certificate name ("" for none, "admin"
// for the local CA's admin certificate), with token if set.
func (s *secureServer) dial(t *testing.T, name, token string) *grpc.ClientConn {
	t.Helper()
	return dialWith(t, s.addr, credentials.NewTLS(s.clientTLS(t, name)), token)
}

// clientTLS is the TLS configuration of a client holding certificate name
// ("" for none, "admin" for the local CA's admin certificate).
func (s *secureServer) clientTLS(t *testing.T, name string) *tls.Config {
	t.Helper()
	cert, key := "", ""
	switch name {
	case "":
	case "admin":
		cert, key = filepath.Join(s.tls, pki.AdminFile), filepath.Join(s.tls, pki.AdminKeyFile)
	default:
		cert, key = filepath.Join(s.tls, name+".pem"), filepath.Join(s.tls, name+"-key.pem")
	}
	cfg, err := pki.ClientConfig(filepath.Join(s.tls, pki.CAFile), cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func dialWith(t *testing.T, addr string, creds credentials.TransportCredentials, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64 << 20))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

func auditRecords(t *testing.T, l *audit.Log) []audit.Record {
	t.Helper()
	recs, _, err := l.List(audit.Filter{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// findRecord returns the last record of rpc by identity.
func findRecord(t *testing.T, l *audit.Log, identity, rpc string) audit.Record {
	t.Helper()
	recs := auditRecords(t, l)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Identity == identity && strings.HasSuffix(recs[i].RPC, rpc) {
			return recs[i]
		}
	}
	t.Fatalf("no audit record of %s by %s in %+v", rpc, identity, recs)
	return audit.Record{}
}

func TestAccessRolesAndAudit(t *testing.T) {
	s := startSecure(t, access.Config{})
	ctx := metadata.AppendToOutgoingContext(context.Background(), audit.GateHeader, "T5-GATE-03")
	admin := pb.NewMatcherClient(s.dial(t, "admin", ""))
	gate := pb.NewMatcherClient(s.dial(t, "gate-1", ""))
	officer := pb.NewMatcherClient(s.dial(t, "officer-1", ""))

	photoBytes, err := os.ReadFile(enrolB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Enroll(ctx, &pb.EnrollRequest{SubjectId: "sheldon", Samples: []*pb.Sample{photo(t, enrolB)}, Watchlists: []string{"wanted"}}); err != nil {
		t.Fatalf("admin enrol: %v", err)
	}
	if _, err := admin.Enroll(ctx, &pb.EnrollRequest{SubjectId: "tzuyu", Samples: []*pb.Sample{photo(t, enrolA)}}); err != nil {
		t.Fatalf("admin enrol: %v", err)
	}
	// A gate may not enrol: refused and audited.
	_, err = gate.Enroll(ctx, &pb.EnrollRequest{SubjectId: "x", Samples: []*pb.Sample{photo(t, enrolB)}})
	wantCode(t, err, codes.PermissionDenied)
	if !strings.Contains(status.Convert(err).Message(), "gate-1") {
		t.Errorf("denial does not name the caller: %v", err)
	}
	if r := findRecord(t, s.audit, "gate-1", "Matcher/Enroll"); r.Decision != "denied" || r.Role != "gate" || r.Code != "PermissionDenied" ||
		r.Auth != "cert" || len(r.Hits) != 1 || r.Hits[0].SubjectID != "x" || r.Gate != "T5-GATE-03" {
		t.Errorf("denial record %+v", r)
	}
	if _, err := s.store.Get("x"); err == nil {
		t.Fatal("a refused enrolment was stored")
	}

	// The gate identifies; the record names the gate, the hits and scores.
	id, err := gate.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, faces+"/bbt/sheldon/3.png")})
	if err != nil || len(id.GetCandidates()) == 0 || id.GetCandidates()[0].GetSubjectId() != "sheldon" {
		t.Fatalf("gate identify: %v %v", id, err)
	}
	r := findRecord(t, s.audit, "gate-1", "Matcher/Identify")
	if r.Gate != "T5-GATE-03" || r.Decision != "hit" || len(r.Hits) == 0 || r.Hits[0].SubjectID != "sheldon" ||
		r.Hits[0].Score == nil || float32(*r.Hits[0].Score) != id.GetCandidates()[0].GetScore() || r.RequestID == "" {
		t.Errorf("identify record %+v", r)
	}
	if _, err := gate.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "sheldon"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gate GetSubject: %v", err)
	}

	// An officer searches and looks subjects up, but changes nothing.
	if _, err := officer.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)}); err != nil {
		t.Fatalf("officer search: %v", err)
	}
	if _, err := officer.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "sheldon"}); err != nil {
		t.Fatalf("officer show: %v", err)
	}
	v, err := officer.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Reference: &pb.VerifyRequest_SubjectId{SubjectId: "tzuyu"}})
	if err != nil || !v.GetMatch() {
		t.Fatalf("officer verify: %v %v", v, err)
	}
	if r := findRecord(t, s.audit, "officer-1", "Matcher/Verify"); r.Decision != "match" || r.Hits[0].SubjectID != "tzuyu" || *r.Hits[0].Score < 0.9 {
		t.Errorf("verify record %+v", r)
	}
	_, err = officer.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "sheldon"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = pb.NewAuditClient(s.dial(t, "officer-1", "")).List(ctx, &pb.ListAuditRequest{})
	wantCode(t, err, codes.PermissionDenied)

	// A certificate of the CA without a role has no rights.
	_, err = pb.NewMatcherClient(s.dial(t, "norole", "")).Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)})
	wantCode(t, err, codes.PermissionDenied)

	if _, err := admin.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "tzuyu"}); err != nil {
		t.Fatal(err)
	}
	if r := findRecord(t, s.audit, "local-admin", "Matcher/DeleteSubject"); r.Decision != "deleted" || r.Hits[0].SubjectID != "tzuyu" {
		t.Errorf("delete record %+v", r)
	}
	// A failed call is audited with its code.
	_, err = admin.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, faces+"/reference/white.png")})
	wantCode(t, err, codes.InvalidArgument)
	if r := findRecord(t, s.audit, "local-admin", "Matcher/Identify"); r.Decision != "error" || r.Code != "InvalidArgument" || r.Detail == "" {
		t.Errorf("failed identify record %+v", r)
	}
	// Messages over the limit are refused before any handler reads them.
	_, err = admin.Enroll(ctx, &pb.EnrollRequest{SubjectId: "big", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: make([]byte, 5<<20)}}}})
	wantCode(t, err, codes.ResourceExhausted)

	// No record holds sample bytes: records are small, and neither the
	// photo's bytes nor their base64 appear in any.
	raw := rawRecords(t, s.store.DB())
	if len(raw) < 9 {
		t.Fatalf("%d audit records, want at least 9", len(raw))
	}
	b64 := base64.StdEncoding.EncodeToString(photoBytes[100:160])
	for i, b := range raw {
		if len(b) > 1024 || bytes.Contains(b, photoBytes[100:160]) || strings.Contains(string(b), b64) {
			t.Errorf("audit record %d (%d bytes) may hold sample data: %.200s", i+1, len(b), b)
		}
	}

	// The admin reads the trail and checks the chain over gRPC.
	ac := pb.NewAuditClient(s.dial(t, "admin", ""))
	list, err := ac.List(ctx, &pb.ListAuditRequest{SubjectId: "sheldon"})
	// The enrolment, the gate's search, and the refused look-up by the gate
	// and deletion by the officer.
	if err != nil || len(list.GetRecords()) != 4 || list.GetRecords()[3].GetIdentity() != "officer-1" ||
		list.GetRecords()[3].GetDecision() != "denied" || list.GetRecords()[3].GetHits()[0].GetSubjectId() != "sheldon" {
		t.Fatalf("audit list for sheldon: %d records, %v", len(list.GetRecords()), err)
	}
	page, err := ac.List(ctx, &pb.ListAuditRequest{PageSize: 2})
	if err != nil || len(page.GetRecords()) != 2 || page.GetNextPageToken() != "2" {
		t.Fatalf("audit page: %v %v", page, err)
	}
	ver, err := ac.Verify(ctx, &pb.VerifyAuditRequest{})
	if err != nil || !ver.GetOk() || ver.GetRecords() != uint64(len(rawRecords(t, s.store.DB()))) || len(ver.GetHeadHash()) != 32 {
		t.Fatalf("audit verify: %v %v", ver, err)
	}

	// No certificate, a certificate of another CA, or plaintext: refused.
	cfg, _ := pki.ClientConfig(filepath.Join(s.tls, pki.CAFile), "", "")
	_, err = pb.NewMatcherClient(dialWith(t, s.addr, credentials.NewTLS(cfg), "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.Unavailable)
	other := t.TempDir()
	if _, err := pki.EnsureLocal(other, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ = pki.ClientConfig(filepath.Join(s.tls, pki.CAFile), filepath.Join(other, pki.AdminFile), filepath.Join(other, pki.AdminKeyFile))
	_, err = pb.NewMatcherClient(dialWith(t, s.addr, credentials.NewTLS(cfg), "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.Unavailable)
	_, err = pb.NewMatcherClient(dialWith(t, s.addr, insecure.NewCredentials(), "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.Unavailable)
}

func rawRecords(t *testing.T, db *badger.DB) [][]byte {
	t.Helper()
	var out [][]byte
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("a/r/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAccessTokens(t *testing.T) {
	tokens, err := access.ParseTokens([]byte("gate-token-0123456789 gate-9 gate\nadmin-token-0123456789 ops admin\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := startSecure(t, access.Config{Tokens: tokens})
	ctx := context.Background()
	gate := pb.NewMatcherClient(s.dial(t, "", "gate-token-0123456789"))
	if _, err := gate.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)}); err != nil {
		t.Fatalf("gate token identify: %v", err)
	}
	_, err = gate.Enroll(ctx, &pb.EnrollRequest{SubjectId: "x", Samples: []*pb.Sample{photo(t, enrolB)}})
	wantCode(t, err, codes.PermissionDenied)
	tokenKey := sha256.Sum256([]byte("gate-token-0123456789"))
	if r := findRecord(t, s.audit, "gate-9", "Matcher/Enroll"); r.Auth != "token" || r.Decision != "denied" || r.KeyID != hex.EncodeToString(tokenKey[:8]) {
		t.Errorf("token denial record %+v", r)
	}
	admin := pb.NewMatcherClient(s.dial(t, "", "admin-token-0123456789"))
	if _, err := admin.ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
		t.Fatalf("admin token: %v", err)
	}
	// A wrong token, or none, is Unauthenticated (and audited); health
	// needs no credentials.
	wrong := s.dial(t, "", "gate-token-0123456788")
	_, err = pb.NewMatcherClient(wrong).Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)})
	wantCode(t, err, codes.Unauthenticated)
	recs := auditRecords(t, s.audit)
	if r := recs[len(recs)-1]; r.Decision != "unauthenticated" || r.Auth != "none" || !strings.HasSuffix(r.RPC, "/Identify") || r.Peer == "" {
		t.Errorf("wrong-token record %+v", r)
	}
	none := s.dial(t, "", "")
	_, err = pb.NewMatcherClient(none).ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.Unauthenticated)
	h, err := healthpb.NewHealthClient(none).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without credentials: %v %v", h, err)
	}
	// Certificates still work beside tokens.
	if _, err := pb.NewMatcherClient(s.dial(t, "officer-1", "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
		t.Fatalf("officer certificate with tokens enabled: %v", err)
	}
}

func TestInsecureOnlyWhenAsked(t *testing.T) {
	s := startSecure(t, access.Config{Insecure: true})
	ctx := context.Background()
	if _, err := pb.NewMatcherClient(dialWith(t, s.addr, insecure.NewCredentials(), "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
		t.Fatalf("plaintext to an --insecure server: %v", err)
	}
	_, err := pb.NewMatcherClient(s.dial(t, "admin", "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.Unavailable)
	// Every plaintext caller is an audited "insecure" admin.
	_, err = pb.NewMatcherClient(dialWith(t, s.addr, insecure.NewCredentials(), "")).DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "nobody"})
	wantCode(t, err, codes.NotFound)
	if r := findRecord(t, s.audit, "insecure", "DeleteSubject"); r.Role != "admin" || r.Auth != "insecure" || r.Code != "NotFound" {
		t.Errorf("insecure record %+v", r)
	}
}

func TestRateLimit(t *testing.T) {
	s := startSecure(t, access.Config{Rate: 0.001, Burst: 3})
	ctx := context.Background()
	gate := pb.NewMatcherClient(s.dial(t, "officer-1", ""))
	for i := range 3 {
		if _, err := gate.ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	_, err := gate.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	// The limit is the caller's own: another caller is not held back.
	if _, err := pb.NewMatcherClient(s.dial(t, "admin", "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
		t.Fatalf("another caller: %v", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	s := startSecure(t, access.Config{MaxConcurrent: 1})
	ctx := context.Background()
	adminConn := s.dial(t, "admin", "")
	admin := pb.NewMatcherClient(adminConn)
	// An open reflection stream is a call in flight until it ends; one
	// answered request proves the server admitted it.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(adminConn).ServerReflectionInfo(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("reflection as admin: %v", err)
	}
	_, err = admin.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	if _, err := pb.NewMatcherClient(s.dial(t, "officer-1", "")).ListWatchlists(ctx, &pb.ListWatchlistsRequest{}); err != nil {
		t.Fatalf("another caller: %v", err)
	}
	// Concurrent calls beyond the limit are refused, never queued.
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = admin.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("after the stream ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[codes.Code]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := admin.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)})
			mu.Lock()
			seen[status.Code(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if seen[codes.OK] < 1 || seen[codes.OK]+seen[codes.ResourceExhausted] != 8 {
		t.Fatalf("8 concurrent searches with a limit of 1: %v", seen)
	}
	t.Logf("8 concurrent searches, limit 1: %v", seen)
}
