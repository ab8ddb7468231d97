package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// Concurrent enrolments (sharing group commits) and deletes of the same ids
// leave the index exactly as the store: every stored subject indexed,
// nothing else, before and after a restart.
func TestConcurrentEnrolDelete(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	tpls := faceTemplates(t, 64)
	ids := make([]string, 24)
	for i := range ids {
		ids[i] = fmt.Sprintf("id%02d", i)
	}
	ctx := context.Background()
	var mu sync.Mutex
	enrolled, exists := 0, 0
	var wg sync.WaitGroup
	for g := range 48 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 40 {
				id := ids[r.IntN(len(ids))]
				if g%4 == 3 && i%2 == 1 {
					_, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: id})
					if c := status.Code(err); c != codes.OK && c != codes.NotFound {
						t.Errorf("delete %s: %v", id, err)
						return
					}
					continue
				}
				_, err := ts.client.Enroll(ctx, &pb.EnrollRequest{
					SubjectId:  id,
					Watchlists: []string{"l"},
					Samples:    []*pb.Sample{{Kind: &pb.Sample_Template{Template: tpls[r.IntN(len(tpls))]}}},
				})
				mu.Lock()
				switch status.Code(err) {
				case codes.OK:
					enrolled++
				case codes.AlreadyExists:
					exists++
				default:
					t.Errorf("enrol %s: %v", id, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st := ts.store.CommitStats()
	t.Logf("%d enrolled, %d already existed; %d creates in %d groups", enrolled, exists, st.Creates, st.Groups)
	if enrolled == 0 || exists == 0 {
		t.Fatalf("%d enrolled, %d refused as existing: the test did not race", enrolled, exists)
	}
	check := func(ts *testServer) {
		t.Helper()
		stored := 0
		for _, id := range ids {
			_, err := ts.store.Get(id)
			inStore := err == nil
			if inStore {
				stored++
			}
			if inIndex := ts.svc.eng.Indexed(id); inStore != inIndex {
				t.Fatalf("%s: stored %v, indexed %v", id, inStore, inIndex)
			}
		}
		if ts.svc.eng.IndexSize() != stored {
			t.Fatalf("%d templates indexed, %d subjects stored with one each", ts.svc.eng.IndexSize(), stored)
		}
	}
	check(ts)
	ts.stop()
	check(startServer(t, dir))
}
