package main

// Crash safety of the real binary: enrolments race SIGKILL.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// crashModel is the default face model's descriptor: the crash test's
// templates are of matchd's default algorithm.
var crashModel = sync.OnceValue(func() face.Model {
	m, err := face.LoadModel(os.Getenv("BORDERMATCH_MODELS"), face.DefaultModel)
	if err != nil {
		m, err = face.LoadModel(filepath.Join(root, "models"), face.DefaultModel)
	}
	if err != nil {
		panic(err)
	}
	return m
})

// crashFace is subject seed's i-th face template: random, so a search with
// it finds that subject and no other.
func crashFace(seed uint64, i int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	m := crashModel()
	v := make([]float32, m.Dim)
	for j := range v {
		v[j] = float32(r.NormFloat64())
	}
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: m.Algorithm(), Vector: v}.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// enrolment is what the crash test sent for one subject.
type enrolment struct {
	seed  uint64
	faces int
	acked bool
}

func dialMatchd(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	// The admin certificate matchd made in its data directory: real mTLS.
	data, ok := dataDirs.Load(addr)
	if !ok {
		t.Fatalf("no data directory known for %s", addr)
	}
	dir := server.TLSDir(data.(string))
	cfg, err := pki.ClientConfig(filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.AdminFile), filepath.Join(dir, pki.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitServing waits for the health service to say SERVING.
func waitServing(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("matchd never reported SERVING")
}

// checkGallery checks the invariants a crash must not break, against a
// running matchd: every acknowledged enrolment is present with all its
// templates and is found by a search with one of them; an enrolment in
// flight at the kill is whole or absent; nothing else is there. Searches
// check every subject when all, else one in ten. Extend it with further
// invariants (e.g. the audit trail) as they come.
func checkGallery(t *testing.T, conn *grpc.ClientConn, sent map[string]*enrolment, all bool) {
	t.Helper()
	c := pb.NewMatcherClient(conn)
	ctx := context.Background()
	present := 0
	for id, e := range sent {
		resp, err := c.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: id})
		switch {
		case status.Code(err) == codes.NotFound && !e.acked:
			continue // in flight when killed, not acknowledged: absent is fine
		case err != nil:
			t.Errorf("%s (acknowledged %t): %v", id, e.acked, err)
			continue
		case len(resp.GetSubject().GetTemplates()) != e.faces:
			t.Errorf("%s (acknowledged %t): %d templates, enrolled with %d: half written", id, e.acked, len(resp.GetSubject().GetTemplates()), e.faces)
			continue
		}
		present++
		if !all && e.seed%10 != 0 {
			continue
		}
		probe := &pb.Sample{Kind: &pb.Sample_Template{Template: crashFace(e.seed, e.faces-1)}}
		res, err := c.Identify(ctx, &pb.IdentifyRequest{Probe: probe, TopK: 1})
		if err != nil || len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetSubjectId() != id {
			t.Errorf("%s is stored but a search with its template finds %v (%v)", id, res.GetCandidates(), err)
		}
	}
	listed := 0
	for tok := ""; ; {
		l, err := c.ListSubjects(ctx, &pb.ListSubjectsRequest{PageSize: 1000, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range l.GetSubjects() {
			if sent[s.GetId()] == nil {
				t.Errorf("listed subject %q was never enrolled", s.GetId())
			}
		}
		listed += len(l.GetSubjects())
		if tok = l.GetNextPageToken(); tok == "" {
			break
		}
	}
	if listed != present {
		t.Errorf("%d subjects listed, %d found one by one", listed, present)
	}
	// Every acknowledged enrolment was audited before its answer, and the
	// chain survived the kills.
	v, err := pb.NewAuditClient(conn).Verify(ctx, &pb.VerifyAuditRequest{})
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	if !v.GetOk() {
		t.Errorf("audit chain broken after the kills: %v", v)
	}
	acked := 0
	for _, e := range sent {
		if e.acked {
			acked++
		}
	}
	if v.GetRecords() < uint64(acked) {
		t.Errorf("audit chain holds %d records, fewer than the %d acknowledged enrolments", v.GetRecords(), acked)
	}
}

// TestCrashDuringEnrolments enrols concurrently into a real matchd, kills it
// with SIGKILL at a random moment, restarts it and checks the gallery, for
// several rounds on the same (encrypted) data directory.
func TestCrashDuringEnrolments(t *testing.T) {
	const rounds, workers = 3, 8
	data := t.TempDir()
	sent := map[string]*enrolment{}
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	total := 0
	for round := range rounds {
		d := startMatchd(t, data, "--rate-limit", "0") // as fast as the clients can: this tests crashes, not limits
		conn := dialMatchd(t, d.addr)
		waitServing(t, conn)
		if round > 0 {
			checkGallery(t, conn, sent, false)
		}
		c := pb.NewMatcherClient(conn)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := 0; ; i++ {
					id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					e := &enrolment{seed: uint64(round*1_000_000 + w*10_000 + i), faces: 1 + i%4}
					mu.Lock()
					sent[id] = e
					mu.Unlock()
					req := &pb.EnrollRequest{SubjectId: id, Name: "Crash " + id, Watchlists: []string{"crash"}}
					for f := range e.faces {
						req.Samples = append(req.Samples, &pb.Sample{Kind: &pb.Sample_Template{Template: crashFace(e.seed, f)}})
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := c.Enroll(ctx, req)
					cancel()
					if err != nil {
						if code := status.Code(err); code != codes.Unavailable && code != codes.Canceled && !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("enrol %s: %v", id, err)
						}
						return // the server is gone
					}
					mu.Lock()
					e.acked = true
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(100+r.IntN(900)) * time.Millisecond)
		d.cmd.Process.Kill() // SIGKILL: no graceful stop, no store close
		<-d.done
		wg.Wait()
		conn.Close()
		acked := 0
		for _, e := range sent {
			if e.acked {
				acked++
			}
		}
		t.Logf("round %d: %d enrolments acknowledged in all, %d sent", round, acked, len(sent))
		if acked == total {
			t.Errorf("round %d: no enrolment acknowledged before the kill", round)
		}
		total = acked
	}
	d := startMatchd(t, data, "--rate-limit", "0")
	conn := dialMatchd(t, d.addr)
	defer conn.Close()
	waitServing(t, conn)
	checkGallery(t, conn, sent, true)
	d.stop(t)
}
