package server

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

var (
	fuzzSvcOnce sync.Once
	fuzzSvc     *Service
)

// FuzzRequests unmarshals fuzzed bytes into each request message the
// Matcher service takes and calls the service with it, on an in-memory
// store and the real face and finger extractors: whatever arrives, the
// service answers with a status (never Unknown or Internal) and never
// panics.
func FuzzRequests(f *testing.F) {
	fuzzSvcOnce.Do(func() {
		st, err := store.Open(store.Options{InMemory: true, Logger: zerolog.Nop()})
		if err != nil {
			f.Fatal(err)
		}
		fuzzSvc, err = newService(engine.Config{Store: st, Faces: sharedExtractor(f), Threshold: matcher.DefaultFaceThreshold, Logger: zerolog.Nop()})
		if err != nil {
			f.Fatal(err)
		}
	})
	tpl := templateSample(f, randomFace(1))
	iso, err := os.ReadFile("../templates/minutiae/testdata/fvc2002/db1_b/101_1.iso")
	if err != nil {
		f.Fatal(err)
	}
	png, err := os.ReadFile("../testdata/faces/reference/face1.png")
	if err != nil {
		f.Fatal(err)
	}
	finger := &pb.Sample{Kind: &pb.Sample_Finger{Finger: &pb.FingerSample{Position: pb.FingerPosition_RIGHT_INDEX, Kind: &pb.FingerSample_Record{Record: iso}}}}
	seed := func(kind byte, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kind, b)
	}
	seed(0, &pb.EnrollRequest{SubjectId: "F1", Name: "Fuzz", Watchlists: []string{"w"}, Samples: []*pb.Sample{tpl, finger}})
	seed(0, &pb.EnrollRequest{SubjectId: "F2", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: png}}}})
	seed(1, &pb.IdentifyRequest{Probe: tpl, TopK: 5, Watchlists: []string{"w"}})
	seed(1, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{finger.GetFinger()}})
	seed(2, &pb.VerifyRequest{Probe: tpl, Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: tpl}})
	seed(2, &pb.VerifyRequest{Probe: tpl, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "F1"}})
	seed(3, &pb.ListSubjectsRequest{PageSize: 3, PageToken: "AQBGMQ"})
	seed(4, &pb.GetSubjectRequest{SubjectId: "F1"})
	seed(5, &pb.DeleteSubjectRequest{SubjectId: "F1"})
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		s := fuzzSvc
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var err error
		switch kind % 6 {
		case 0:
			var req pb.EnrollRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.Enroll(ctx, &req)
		case 1:
			var req pb.IdentifyRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.Identify(ctx, &req)
		case 2:
			var req pb.VerifyRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.Verify(ctx, &req)
		case 3:
			var req pb.ListSubjectsRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.ListSubjects(ctx, &req)
		case 4:
			var req pb.GetSubjectRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.GetSubject(ctx, &req)
		case 5:
			var req pb.DeleteSubjectRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			_, err = s.DeleteSubject(ctx, &req)
		}
		if err == nil {
			return
		}
		// The handlers return the engine's errors; the innermost
		// interceptor maps them once per call (status.go), as here.
		st, ok := status.FromError(toStatus(err))
		if !ok || st.Code() == codes.Unknown || st.Code() == codes.Internal {
			t.Fatalf("request kind %d: %v", kind%6, err)
		}
	})
}
