package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

type adminServer struct {
	matcher pb.MatcherClient
	admin   pb.AdminClient
	svc     *Service
	store   *store.Store
	metrics *Metrics
}

// startAdminServer serves the Matcher and Admin services of a real Service
// over loopback gRPC, on a real (encrypted) Badger directory.
func startAdminServer(t *testing.T) *adminServer { return startAdminServerWith(t, nil) }

// startAdminServerWith is startAdminServer with a configuration hook.
func startAdminServerWith(t *testing.T, configure func(*engine.Config)) *adminServer {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop(), EncryptionKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	var svc *Service // set before any scrape
	m := NewMetrics(func() (int, int, int) {
		st := svc.eng.Stats()
		return st.FaceTemplates, st.FingerTemplates, st.Subjects
	})
	cfg := engine.Config{Store: st, Faces: sharedExtractor(t), Threshold: matcher.DefaultFaceThreshold, Logger: zerolog.Nop(),
		ObserveSearchBatch: m.ObserveSearchBatch}
	if configure != nil {
		configure(&cfg)
	}
	svc, err = newService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetAlgorithmSizes(func() map[string]int { return algorithmSizesOf(svc.eng) })
	gs, _ := NewGRPCServer(svc, GRPCOptions{Logger: zerolog.Nop(), Metrics: m})
	pb.RegisterAdminServer(gs, NewAdmin(svc.Engine()))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); gs.GracefulStop(); svc.eng.Close(); st.Close() })
	return &adminServer{matcher: pb.NewMatcherClient(conn), admin: pb.NewAdminClient(conn), svc: svc, store: st, metrics: m}
}

func randomFace(seed uint64) templates.Template {
	r := rand.New(rand.NewPCG(seed, 11))
	v := make([]float32, templates.FaceDim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
}

func enrolRandom(t *testing.T, c pb.MatcherClient, id string, seed uint64, n int, lists ...string) error {
	t.Helper()
	req := &pb.EnrollRequest{SubjectId: id, Name: "Name " + id, Watchlists: lists}
	for i := range n {
		req.Samples = append(req.Samples, templateSample(t, randomFace(seed*100+uint64(i))))
	}
	_, err := c.Enroll(context.Background(), req)
	return err
}

func backupBytes(t *testing.T, c pb.AdminClient) []byte {
	t.Helper()
	stream, err := c.Backup(context.Background(), &pb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(m.GetData())
	}
}

func restoreBytes(c pb.AdminClient, b []byte) (*pb.RestoreResponse, error) {
	stream, err := c.Restore(context.Background())
	if err != nil {
		return nil, err
	}
	for len(b) > 0 {
		n := min(len(b), 64<<10)
		if err := stream.Send(&pb.RestoreChunk{Data: b[:n]}); err != nil {
			break
		}
		b = b[n:]
	}
	return stream.CloseAndRecv()
}

func identifyTop(t *testing.T, c pb.MatcherClient, tpl templates.Template, lists ...string) []*pb.Candidate {
	t.Helper()
	resp, err := c.Identify(context.Background(), &pb.IdentifyRequest{Probe: templateSample(t, tpl), Watchlists: lists, TopK: 3})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCandidates()
}

// TestAdminBackupRestore: a backup taken over gRPC while enrolments and
// searches go on restores into another server, whose searches then find
// the restored subjects; a damaged backup is refused with nothing stored;
// a gallery with subjects refuses a restore.
func TestAdminBackupRestore(t *testing.T) {
	src := startAdminServer(t)
	for i := range 60 {
		lists := []string{"all"}
		if i%4 == 0 {
			lists = append(lists, "wanted")
		}
		if err := enrolRandom(t, src.matcher, fmt.Sprintf("S%03d", i), uint64(i), 1+i%3, lists...); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := enrolRandom(t, src.matcher, fmt.Sprintf("C%04d", i), uint64(1000+i), 3, "all"); err != nil {
				t.Error(err)
				return
			}
			identifyTop(t, src.matcher, randomFace(uint64(i%60)*100))
		}
	})
	backup := backupBytes(t, src.admin)
	close(stop)
	wg.Wait()

	dst := startAdminServer(t)
	// Damaged: refused, InvalidArgument, nothing stored or searchable.
	for _, bad := range [][]byte{backup[:len(backup)/2], backup[:len(backup)-3], append(bytes.Clone(backup[:200]), backup[201:]...)} {
		_, err := restoreBytes(dst.admin, bad)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "nothing was restored") {
			t.Errorf("damaged backup: %v", err)
		}
		if c := identifyTop(t, dst.matcher, randomFace(700)); len(c) != 0 {
			t.Fatalf("a refused restore is searchable: %v", c)
		}
		if n, _ := dst.store.Count(); n != 0 {
			t.Fatalf("a refused restore stored %d subjects", n)
		}
	}
	resp, err := restoreBytes(dst.admin, backup)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSubjects() < 60 {
		t.Errorf("restored %d subjects, want at least 60", resp.GetSubjects())
	}
	// Every restored subject is whole and searchable at once.
	n, _ := dst.store.Count()
	if int64(n) != resp.GetSubjects() || dst.svc.eng.IndexSize() != int(resp.GetTemplates()) {
		t.Errorf("store has %d subjects, index %d templates; restore said %d and %d", n, dst.svc.eng.IndexSize(), resp.GetSubjects(), resp.GetTemplates())
	}
	for _, i := range []int{0, 7, 8, 59} {
		c := identifyTop(t, dst.matcher, randomFace(uint64(i)*100))
		if len(c) == 0 || c[0].GetSubjectId() != fmt.Sprintf("S%03d", i) || c[0].GetScore() < 0.999 {
			t.Errorf("search for S%03d after restore: %v", i, c)
		}
	}
	if c := identifyTop(t, dst.matcher, randomFace(800), "wanted"); len(c) == 0 || c[0].GetSubjectId() != "S008" {
		t.Errorf("watchlist search after restore: %v", c)
	}
	got, err := dst.matcher.GetSubject(context.Background(), &pb.GetSubjectRequest{SubjectId: "S005"})
	if err != nil || got.GetSubject().GetName() != "Name S005" || len(got.GetSubject().GetTemplates()) != 3 {
		t.Errorf("GetSubject after restore: %v %v", got, err)
	}
	// Concurrent C subjects: whole (3 templates) or absent.
	list, err := dst.matcher.ListSubjects(context.Background(), &pb.ListSubjectsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.GetSubjects() {
		if strings.HasPrefix(s.GetId(), "C") {
			g, err := dst.matcher.GetSubject(context.Background(), &pb.GetSubjectRequest{SubjectId: s.GetId()})
			if err != nil || len(g.GetSubject().GetTemplates()) != 3 {
				t.Errorf("%s restored half: %v %v", s.GetId(), g, err)
			}
		}
	}
	// Enrolments go on after a restore.
	if err := enrolRandom(t, dst.matcher, "after", 5000, 1); err != nil {
		t.Fatal(err)
	}
	// Not into a gallery with subjects.
	if _, err := restoreBytes(dst.admin, backup); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("restore into a full gallery: %v", err)
	}

	// The RPCs were observed.
	if c := testutil.CollectAndCount(dst.metrics.rpcDuration, "bordermatch_rpc_duration_seconds"); c == 0 {
		t.Error("no RPC latencies recorded")
	}
}

// TestMetricsEndpoints: the metrics listener serves TLS with the server's
// certificate; /metrics reports the gallery and /readyz follows the
// readiness flag to callers without a client certificate; pprof answers
// only the admin role, and both its grants and its refusals are audited.
func TestMetricsEndpoints(t *testing.T) {
	srv := startAdminServer(t)
	if err := enrolRandom(t, srv.matcher, "m1", 1, 2); err != nil {
		t.Fatal(err)
	}
	sec := startSecure(t, access.Config{})
	srvTLS, err := pki.ServerConfig(filepath.Join(sec.tls, pki.ServerFile), filepath.Join(sec.tls, pki.ServerKeyFile),
		filepath.Join(sec.tls, pki.CAFile), true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := startMetrics(metricsConfig{Addr: "127.0.0.1:0", Metrics: srv.metrics, TLS: srvTLS, Pprof: true, Audit: sec.audit, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	base := "https://" + m.addr.String()
	// client holds certificate name ("" for none).
	client := func(name string) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: sec.clientTLS(t, name)}}
	}
	get := func(c *http.Client, path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	anon := client("")
	if code, _ := get(anon, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d", code)
	}
	m.setReady(true)
	if code, _ := get(anon, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, _ := get(anon, "/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d", code)
	}
	if resp, err := http.Get("http://" + m.addr.String() + "/metrics"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Errorf("/metrics answered over plaintext")
		}
		resp.Body.Close()
	}
	srv.metrics.SetCaptureState("gate-3-camera", "ok")
	srv.metrics.SetCaptureState("gate-3-camera", "offline")
	code, body := get(anon, "/metrics")
	for _, want := range []string{
		"bordermatch_gallery_face_templates 2",
		"bordermatch_gallery_subjects 1",
		`bordermatch_capture_source_state{source="gate-3-camera",state="offline"} 1`,
		`bordermatch_capture_source_state{source="gate-3-camera",state="ok"} 0`,
		`bordermatch_rpc_duration_seconds_count{code="OK",rpc="/bordermatch.v1.Matcher/Enroll"}`,
		"process_resident_memory_bytes",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	for _, tc := range []struct {
		cert     string
		code     int
		identity string // of the audit record
		decision string
	}{
		{"", http.StatusUnauthorized, "127.0.0.1", "unauthenticated"},
		{"officer-1", http.StatusForbidden, "officer-1", "denied"},
		{"gate-1", http.StatusForbidden, "gate-1", "denied"},
		{"admin", http.StatusOK, "local-admin", "ok"},
	} {
		code, body := get(client(tc.cert), "/debug/pprof/goroutine?debug=1")
		if code != tc.code || (code == 200) != strings.Contains(body, "goroutine profile") {
			t.Errorf("pprof as %q: %d %.80q, want %d", tc.cert, code, body, tc.code)
		}
		recs := auditRecords(t, sec.audit)
		last := recs[len(recs)-1]
		if last.RPC != PprofMethod || last.Decision != tc.decision || !strings.HasPrefix(last.Identity, tc.identity) {
			t.Errorf("pprof as %q: last audit record %+v, want %s by %s", tc.cert, last, tc.decision, tc.identity)
		}
		if tc.decision == "ok" && last.Detail != "/debug/pprof/goroutine" {
			t.Errorf("granted pprof record names %q, want the path", last.Detail)
		}
	}
	if res, err := sec.audit.Verify(); err != nil || !res.OK {
		t.Errorf("audit chain after pprof calls: %+v %v", res, err)
	}
}

// TestPprofPlaintext: with --insecure the metrics listener is plaintext,
// and pprof answers loopback callers only, since any peer would be admin.
func TestPprofPlaintext(t *testing.T) {
	h := adminOnly(metricsConfig{Access: access.Config{Insecure: true}, Logger: zerolog.Nop()})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("profile")) }))
	for _, tc := range []struct {
		remote string
		code   int
	}{
		{"127.0.0.1:5000", http.StatusOK},
		{"[::1]:5000", http.StatusOK},
		{"192.0.2.1:5000", http.StatusForbidden},
		{"[2001:db8::1]:5000", http.StatusForbidden},
		{"garbage", http.StatusForbidden},
	} {
		r := httptest.NewRequest("GET", "/debug/pprof/", nil)
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("pprof from %s: %d, want %d", tc.remote, w.Code, tc.code)
		}
	}
}
