package server

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// TestRetemplateRPC: Admin Retemplate and RetemplateStatus over gRPC move
// a gallery enrolled from photos with dlib to mobilefacenet-192, loaded
// beside it; GetSubject counts the kept samples; Identify names the
// algorithm of its face score.
func TestRetemplateRPC(t *testing.T) {
	newFaces := sharedModel(t, face.DefaultModel)
	newAlg := newFaces.Algorithm()
	as := startAdminServerWith(t, func(cfg *engine.Config) {
		cfg.MoreFaces = []engine.FaceExtractor{newFaces}
	})
	ctx := context.Background()
	st, err := as.admin.RetemplateStatus(ctx, &pb.RetemplateStatusRequest{})
	if err != nil || st.GetState() != "none" {
		t.Fatalf("status before any job: %v, %v", st, err)
	}
	for _, p := range []string{"sheldon/1.png", "amy/1.png", "raj/1.png"} {
		if _, err := as.matcher.Enroll(ctx, &pb.EnrollRequest{SubjectId: p[:len(p)-6], Samples: []*pb.Sample{photo(t, faces+"/bbt/"+p)}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := as.matcher.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "amy"})
	if err != nil || got.GetSubject().GetSampleCount() != 1 {
		t.Fatalf("GetSubject: %v, %v", got, err)
	}
	_, err = as.admin.Retemplate(ctx, &pb.RetemplateRequest{Algorithm: "no-such-net"})
	wantCode(t, err, codes.InvalidArgument)

	st, err = as.admin.Retemplate(ctx, &pb.RetemplateRequest{Algorithm: newAlg.ID})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetAlgorithm() != newAlg.String() || st.GetTotal() != 3 {
		t.Errorf("started: %v", st)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for st.GetState() == "running" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if st, err = as.admin.RetemplateStatus(ctx, &pb.RetemplateStatusRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if st.GetState() != "done" || st.GetDone() != 3 || st.GetTemplated() != 3 || st.GetCleaned() != 3 || st.GetFailed() != 0 ||
		st.GetStartedAt() == nil || st.GetFinishedAt() == nil {
		t.Fatalf("job: %v", st)
	}
	// The per-algorithm gauge: every template under the new algorithm.
	if n := algorithmGauge(t, as.metrics, newAlg.String()); n != 3 {
		t.Errorf("face templates of %s by the gauge: %v", newAlg, n)
	}
	probe, err := os.ReadFile(faces + "/bbt/amy/2.png")
	if err != nil {
		t.Fatal(err)
	}
	res, err := as.matcher.Identify(ctx, &pb.IdentifyRequest{Probe: &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: probe}}})
	if err != nil || len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetSubjectId() != "amy" ||
		res.GetCandidates()[0].GetFaceAlgorithm() != newAlg.String() {
		t.Fatalf("identify after the move: %v, %v", res, err)
	}
	// A template probe of the algorithm the gallery no longer holds.
	sub, err := as.store.Get("raj")
	if err != nil || len(sub.Templates) != 1 || sub.Templates[0].Algorithm != newAlg {
		t.Fatalf("raj's templates: %+v, %v", sub.Templates, err)
	}
	old := sub.Templates[0]
	old.Algorithm = templates.Algorithm{ID: "gone", Version: 1}
	_, err = as.matcher.Identify(ctx, &pb.IdentifyRequest{Probe: templateSample(t, old)})
	wantCode(t, err, codes.FailedPrecondition)
	if err != nil && !bytes.Contains([]byte(err.Error()), []byte(newAlg.String())) {
		t.Errorf("the refusal does not name the gallery's algorithms: %v", err)
	}
}

// algorithmGauge scrapes the per-algorithm face gauge of one algorithm.
func algorithmGauge(t *testing.T, m *Metrics, alg string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "bordermatch_gallery_face_templates_by_algorithm" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "algorithm" && l.GetValue() == alg {
					return mt.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no face template gauge of %s", alg)
	return 0
}
