package audit

import (
	"context"
	"errors"
	"slices"
	"testing"

	"google.golang.org/grpc"
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

// TestGateTransactionDescribe: the passive authentication a gate
// controller states is kept with Verify and CaptureAndVerify, and the
// gate transaction's decision names its worst finding.
func TestGateTransactionDescribe(t *testing.T) {
	passed, failed := pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED, pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_FAILED
	identified := pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED
	hit := &pb.IdentifyResponse{Candidates: []*pb.Candidate{{SubjectId: "W1", Score: 0.95}}}
	for _, tc := range []struct {
		name     string
		req      any
		resp     any
		decision string
		pa       string
		hits     int
	}{
		{"verify", &pb.VerifyRequest{PassiveAuth: failed}, &pb.VerifyResponse{Match: true, Score: 0.9}, "match", "failed", 1},
		{"verify, unstated", &pb.VerifyRequest{}, &pb.VerifyResponse{}, "no-match", "", 1},
		{"clear", &pb.CaptureAndVerifyRequest{Gate: "g1", PassiveAuth: passed}, &pb.CaptureAndVerifyResponse{
			Outcome: identified, Clear: true, Verification: &pb.VerifyResponse{Match: true, Score: 0.9}, Identification: &pb.IdentifyResponse{},
		}, "clear", "passed", 1},
		{"hit", &pb.CaptureAndVerifyRequest{Gate: "g1", PassiveAuth: passed}, &pb.CaptureAndVerifyResponse{
			Outcome: identified, Verification: &pb.VerifyResponse{Match: true, Score: 0.9}, Identification: hit,
		}, "hit", "passed", 2},
		{"not the holder", &pb.CaptureAndVerifyRequest{Gate: "g1"}, &pb.CaptureAndVerifyResponse{
			Outcome: identified, Verification: &pb.VerifyResponse{Score: 0.2}, Identification: &pb.IdentifyResponse{},
		}, "no-match", "", 1},
		{"holder, chip not authenticated", &pb.CaptureAndVerifyRequest{Gate: "g1", PassiveAuth: failed}, &pb.CaptureAndVerifyResponse{
			Outcome: identified, Verification: &pb.VerifyResponse{Match: true, Score: 0.9},
		}, "match", "failed", 1},
		{"no face", &pb.CaptureAndVerifyRequest{Gate: "g1"}, &pb.CaptureAndVerifyResponse{Outcome: pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE}, "no-face", "", 0},
	} {
		var r Record
		describe(&r, tc.req, tc.resp, nil)
		if r.Decision != tc.decision || r.PassiveAuth != tc.pa || len(r.Hits) != tc.hits {
			t.Errorf("%s: %+v, want decision %s, passive auth %q, %d hits", tc.name, r, tc.decision, tc.pa, tc.hits)
		}
		if _, ok := tc.req.(*pb.CaptureAndVerifyRequest); ok && r.Gate != "g1" {
			t.Errorf("%s: gate %q", tc.name, r.Gate)
		}
		if p := recordProto(&r); p.PassiveAuth != tc.pa {
			t.Errorf("%s: the listed record says %q", tc.name, p.PassiveAuth)
		}
	}
}

// TestClusterNote: a cluster node's handler names the coordinating node
// and the partitions it asked; the call's record carries them, and a call
// that noted nothing has neither.
func TestClusterNote(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	l := openLog(t, st, Options{})
	rc := &Recorder{Log: l}
	info := &grpc.UnaryServerInfo{FullMethod: "/bordermatch.v1.Matcher/Identify"}
	if !Methods[info.FullMethod] {
		t.Fatalf("%s is not audited", info.FullMethod)
	}
	_, err := rc.Unary()(context.Background(), &pb.IdentifyRequest{}, info, func(ctx context.Context, _ any) (any, error) {
		NoteCluster(ctx, "node-a", 1)
		NoteCluster(ctx, "node-a", 0, 1)
		return &pb.IdentifyResponse{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Unary()(context.Background(), &pb.IdentifyRequest{}, info, func(ctx context.Context, _ any) (any, error) {
		return &pb.IdentifyResponse{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	recs, _, err := l.List(Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Coordinator != "node-a" || !slices.Equal(recs[0].Partitions, []int{0, 1}) ||
		recs[1].Coordinator != "" || recs[1].Partitions != nil {
		t.Fatalf("records: %+v", recs)
	}
	if p := recordProto(&recs[0]); p.Coordinator != "node-a" || !slices.Equal(p.Partitions, []int32{0, 1}) {
		t.Fatalf("as protobuf: %v", p)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatalf("the chain with cluster records: %v", err)
	}
}
