package server

import (
	"context"
	"testing"
	"time"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"google.golang.org/grpc/codes"
)

// clusterWatchlists: a list only one partition has anyone on is searched
// and listed from every node (the other partition does not refuse it); a
// list none has is NotFound naming the lists of all, for Identify and
// ListSubjects alike.
func clusterWatchlists(t *testing.T, nodes []*testNode, n int) {
	t.Helper()
	ctx := context.Background()
	solo, err := nodes[0].client.Enroll(ctx, &pb.EnrollRequest{SubjectId: synthID(n), Watchlists: []string{"solo"},
		Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: synthTemplate(t, n)}}}})
	if err != nil {
		t.Fatal(err)
	}
	probe := &pb.Sample{Kind: &pb.Sample_Template{Template: synthTemplate(t, n)}}
	for i, nd := range nodes {
		res, err := nd.client.Identify(ctx, &pb.IdentifyRequest{Probe: probe, Watchlists: []string{"solo"}, ConsistencyToken: solo.GetConsistencyToken()})
		if err != nil || len(res.GetCandidates()) == 0 || res.GetCandidates()[0].GetSubjectId() != synthID(n) || res.GetSearched() != 1 {
			t.Fatalf("node %d: identify on solo: %v, %v", i, res, err)
		}
		// With solo's token, so that every answering replica has applied it
		// and names it among the lists there are.
		_, err = nd.client.Identify(ctx, &pb.IdentifyRequest{Probe: probe, Watchlists: []string{"wl1", "sol"}, ConsistencyToken: solo.GetConsistencyToken()})
		wantStatus(t, err, codes.NotFound, `"sol"`, `"solo"`, `"wl0"`)
		_, err = nd.client.ListSubjects(ctx, &pb.ListSubjectsRequest{Watchlist: "sol"})
		// No token for a listing: solo may not be applied yet where it asks.
		wantStatus(t, err, codes.NotFound, `"sol"`, `"wl2"`)
	}
	// The replica of solo's partition that a listing asks may still be
	// applying it: the list exists once both replicas have it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := nodes[3].client.ListSubjects(ctx, &pb.ListSubjectsRequest{Watchlist: "solo"})
		if err == nil && len(page.GetSubjects()) == 1 && page.GetSubjects()[0].GetId() == synthID(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listing solo: %v, %v", page, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
