package server

import (
	"context"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// qServer is a templates-only matchd over a data directory it can be
// stopped and started again on, with access control (insecure admin) and
// the audit trail, over loopback gRPC.
type qServer struct {
	matcher pb.MatcherClient
	admin   pb.AdminClient
	audit   *audit.Log
	metrics *Metrics
	stop    func()
}

func startQServer(t *testing.T, dir string) *qServer {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatalf("the server does not start: %v", err)
	}
	m := NewMetrics(nil)
	m.SetQuarantined(svc.eng.QuarantinedCount)
	auditLog, err := audit.Open(st.AuditTrail(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	acc := access.Config{Insecure: true}
	gs, _ := NewGRPCServer(svc, GRPCOptions{Logger: zerolog.Nop(), Access: &acc, Audit: auditLog, Metrics: m})
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
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			conn.Close()
			gs.Stop()
			auditLog.Close()
			svc.eng.Close()
			st.Close()
		}
	}
	t.Cleanup(stop)
	return &qServer{matcher: pb.NewMatcherClient(conn), admin: pb.NewAdminClient(conn), audit: auditLog, metrics: m, stop: stop}
}

// writeBadRecords stores, with the server stopped, what a damaged disk or
// an older version leaves: a zero face, a ±FLT_MAX face and a template
// whose bytes do not decode.
func writeBadRecords(t *testing.T, dir string) []string {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	flt := randomFace(7)
	for i, x := range flt.Vector {
		flt.Vector[i] = float32(math.Copysign(math.MaxFloat32, float64(x)))
	}
	zero := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: make([]float32, templates.FaceDim)}
	for id, tpl := range map[string]templates.Template{"bad-zero": zero, "bad-fltmax": flt, "bad-garbled": randomFace(8)} {
		if _, err := st.Create(store.Subject{ID: id, Watchlists: []string{"wl"}, Templates: []templates.Template{tpl}}); err != nil {
			t.Fatal(err)
		}
	}
	key := append([]byte("t/bad-garbled"), 0, 0, 0)
	if err := st.DB().Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key); err != nil {
			return err
		}
		return txn.Set(key, []byte("BMT\x01 damaged"))
	}); err != nil {
		t.Fatal(err)
	}
	return []string{"bad-fltmax", "bad-garbled", "bad-zero"}
}

func listQuarantine(t *testing.T, c pb.AdminClient) []string {
	t.Helper()
	resp, err := c.ListQuarantine(context.Background(), &pb.ListQuarantineRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, q := range resp.GetSubjects() {
		if q.GetReason() == "" || q.GetSince() == nil {
			t.Errorf("%s listed without a reason or a time", q.GetSubjectId())
		}
		ids = append(ids, q.GetSubjectId())
	}
	return ids
}

// findsGood fails unless each of the good subjects is found first by its
// own template.
func findsGood(t *testing.T, c pb.MatcherClient, n int) {
	t.Helper()
	for i := range n {
		resp, err := c.Identify(context.Background(), &pb.IdentifyRequest{Probe: templateSample(t, randomFace(uint64(i+1)*100))})
		if err != nil {
			t.Fatal(err)
		}
		if want := "good" + string(rune('a'+i)); len(resp.GetCandidates()) == 0 || resp.GetCandidates()[0].GetSubjectId() != want {
			t.Errorf("%s not found by its own template: %v", want, resp.GetCandidates())
		}
	}
}

func enrolGoodOverGRPC(t *testing.T, c pb.MatcherClient, n int) {
	t.Helper()
	for i := range n {
		if err := enrolRandom(t, c, "good"+string(rune('a'+i)), uint64(i+1), 1, "wl"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnrollZeroTemplateIsInvalidArgument(t *testing.T) {
	s := startQServer(t, t.TempDir())
	zero := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: make([]float32, templates.FaceDim)}
	_, err := s.matcher.Enroll(context.Background(), &pb.EnrollRequest{SubjectId: "z", Samples: []*pb.Sample{templateSample(t, zero)}})
	wantCode(t, err, codes.InvalidArgument)
	_, err = s.matcher.GetSubject(context.Background(), &pb.GetSubjectRequest{SubjectId: "z"})
	wantCode(t, err, codes.NotFound)
}

func TestQuarantineAtStartListedAndRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	s := startQServer(t, dir)
	enrolGoodOverGRPC(t, s.matcher, 3)
	s.stop()
	bad := writeBadRecords(t, dir)

	s = startQServer(t, dir) // refused to start with "loading index" before
	if got := listQuarantine(t, s.admin); !slices.Equal(got, bad) {
		t.Fatalf("quarantine lists %v, want %v", got, bad)
	}
	if n := quarantineGauge(t, s.metrics); n != float64(len(bad)) {
		t.Errorf("bordermatch_gallery_quarantined_subjects %v, want %d", n, len(bad))
	}
	findsGood(t, s.matcher, 3)
	_, err := s.admin.RemoveQuarantined(context.Background(), &pb.RemoveQuarantinedRequest{SubjectId: "gooda"})
	wantCode(t, err, codes.NotFound)
	_, err = s.admin.RemoveQuarantined(context.Background(), &pb.RemoveQuarantinedRequest{})
	wantCode(t, err, codes.InvalidArgument)
	for _, id := range bad {
		resp, err := s.admin.RemoveQuarantined(context.Background(), &pb.RemoveQuarantinedRequest{SubjectId: id})
		if err != nil || resp.GetSubjectId() != id {
			t.Fatalf("remove %s: %v %v", id, resp, err)
		}
		_, err = s.matcher.GetSubject(context.Background(), &pb.GetSubjectRequest{SubjectId: id})
		wantCode(t, err, codes.NotFound)
	}
	if got := listQuarantine(t, s.admin); len(got) != 0 {
		t.Errorf("still quarantined: %v", got)
	}
	if n := quarantineGauge(t, s.metrics); n != 0 {
		t.Errorf("bordermatch_gallery_quarantined_subjects %v after removal", n)
	}
	removals := 0
	for _, r := range auditRecords(t, s.audit) {
		if strings.HasSuffix(r.RPC, "/RemoveQuarantined") && r.Code == codes.OK.String() {
			removals++
		}
	}
	if removals != len(bad) {
		t.Errorf("%d audit records of removals, want %d", removals, len(bad))
	}
	findsGood(t, s.matcher, 3)
	s.stop()
	s = startQServer(t, dir)
	if got := listQuarantine(t, s.admin); len(got) != 0 {
		t.Errorf("quarantined after a restart: %v", got)
	}
	findsGood(t, s.matcher, 3)
}

// quarantineGauge reads bordermatch_gallery_quarantined_subjects from the
// server's registry.
func quarantineGauge(t *testing.T, m *Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "bordermatch_gallery_quarantined_subjects" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no bordermatch_gallery_quarantined_subjects gauge")
	return 0
}

func TestRestoreQuarantinesBadRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	a := startQServer(t, dir)
	enrolGoodOverGRPC(t, a.matcher, 2)
	a.stop()
	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	zero := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: make([]float32, templates.FaceDim)}
	if _, err := st.Create(store.Subject{ID: "bad-zero", Templates: []templates.Template{zero}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	a = startQServer(t, dir)
	backup := backupBytes(t, a.admin)

	bdir := filepath.Join(t.TempDir(), "db")
	b := startQServer(t, bdir)
	stream, err := b.admin.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.RestoreChunk{Data: backup}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if resp.GetSubjects() != 3 {
		t.Errorf("restored %d subjects, want 3", resp.GetSubjects())
	}
	if got := listQuarantine(t, b.admin); !slices.Equal(got, []string{"bad-zero"}) {
		t.Errorf("quarantine lists %v after restore", got)
	}
	findsGood(t, b.matcher, 2)
	b.stop()
	b = startQServer(t, bdir)
	findsGood(t, b.matcher, 2)
}

func TestVerifyFLTMaxTemplate(t *testing.T) {
	s := startQServer(t, t.TempDir())
	enrolGoodOverGRPC(t, s.matcher, 1)
	ref := randomFace(100)
	crafted := ref
	crafted.Vector = make([]float32, len(ref.Vector))
	for i, x := range ref.Vector {
		crafted.Vector[i] = float32(math.Copysign(math.MaxFloat32, float64(x)))
	}
	one := float32(1)
	for _, req := range []*pb.VerifyRequest{
		{Probe: templateSample(t, crafted), Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: templateSample(t, ref)}, Threshold: &one},
		{Probe: templateSample(t, crafted), Reference: &pb.VerifyRequest_SubjectId{SubjectId: "gooda"}, Threshold: &one},
	} {
		resp, err := s.matcher.Verify(context.Background(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("verify: %v (score %v, match %t), want InvalidArgument", err, resp.GetScore(), resp.GetMatch())
		}
	}
	n := 0
	for _, r := range auditRecords(t, s.audit) {
		if strings.HasSuffix(r.RPC, "/Verify") && r.Code == codes.InvalidArgument.String() {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d audit records of the refused verifications, want 2", n)
	}
}
