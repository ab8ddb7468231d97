package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// TestStoreFailureIsUnavailable closes the Badger store under a serving
// engine, as a failing disk would take it away: every call that must read
// or write the gallery answers Unavailable (never InvalidArgument, which
// would blame the caller, nor a dropped error), and once the store is back
// nothing acknowledged is lost and nothing was created.
func TestStoreFailureIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ctx := context.Background()
	gallery := idolsGallery(t)
	const n = 40
	for i := range n {
		tpl := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: gallery[i]}
		if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: fmt.Sprintf("s%02d", i), Samples: []*pb.Sample{templateSample(t, tpl)}}); err != nil {
			t.Fatal(err)
		}
	}
	probe := templateSample(t, templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: gallery[3]})
	if _, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: probe}); err != nil {
		t.Fatalf("identify before the fault: %v", err)
	}

	if err := ts.store.Close(); err != nil {
		t.Fatal(err)
	}
	newTpl := templateSample(t, templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: gallery[n]})
	calls := []struct {
		name string
		call func() error
	}{
		{"Identify", func() error {
			_, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: probe, Threshold: ptr(float32(-1))})
			return err
		}},
		{"Verify by subject", func() error {
			_, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: probe, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "s03"}})
			return err
		}},
		{"Enroll", func() error {
			_, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "new", Samples: []*pb.Sample{newTpl}})
			return err
		}},
		{"GetSubject", func() error {
			_, err := ts.client.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "s03"})
			return err
		}},
		{"DeleteSubject", func() error {
			_, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "s04"})
			return err
		}},
		{"ListSubjects", func() error {
			_, err := ts.client.ListSubjects(ctx, &pb.ListSubjectsRequest{})
			return err
		}},
	}
	for _, c := range calls {
		if code := status.Code(c.call()); code != codes.Unavailable {
			t.Errorf("%s on a failed store: %v, want Unavailable", c.name, code)
		}
	}
	ts.stop()

	st, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.Count(); err != nil || got != n {
		t.Fatalf("after the fault the gallery holds %d subjects (%v), want %d", got, err, n)
	}
	if _, err := st.Get("new"); err == nil {
		t.Fatal("the enrolment refused during the fault was stored")
	}
}
