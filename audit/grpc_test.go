package audit

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// TestGenericDescribe: responses of services without a special case (the
// gate services) give their hits and decision through the generic reader.
func TestGenericDescribe(t *testing.T) {
	var r Record
	generic(&r, (&pb.IdentifyResponse{Candidates: []*pb.Candidate{
		{SubjectId: "P1", Score: 0.97, FaceScore: new(float32)}, {SubjectId: "P2", Score: 0.95},
	}}).ProtoReflect())
	if r.Decision != "hit" || len(r.Hits) != 2 || r.Hits[1].SubjectID != "P2" || *r.Hits[1].Score != 0.95 {
		t.Fatalf("generic identify: %+v", r)
	}
	r = Record{}
	generic(&r, (&pb.IdentifyResponse{}).ProtoReflect())
	if r.Decision != "no-hit" || len(r.Hits) != 0 {
		t.Fatalf("generic empty identify: %+v", r)
	}
	r = Record{}
	generic(&r, (&pb.VerifyResponse{Score: 0.99, Match: true}).ProtoReflect())
	if r.Decision != "match" {
		t.Fatalf("generic verify: %+v", r)
	}

	// A failed call keeps the subject it was about and says why it failed.
	r = Record{}
	describe(&r, &pb.EnrollRequest{SubjectId: "P3", Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: []byte("JPEG")}}}},
		nil, status.Error(codes.InvalidArgument, "no face found"))
	if r.Decision != "error" || r.Code != "InvalidArgument" || r.Detail != "no face found" || r.Hits[0].SubjectID != "P3" {
		t.Fatalf("failed enrol: %+v", r)
	}
	r = Record{}
	describe(&r, &pb.VerifyRequest{}, nil, errors.New("boom"))
	if r.Decision != "error" || r.Code != "Unknown" {
		t.Fatalf("failed verify: %+v", r)
	}
}
