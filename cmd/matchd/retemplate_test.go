package main

// Re-templating in the real binary, SIGKILLed part way.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
)

// TestRetemplateKilled enrols subjects from photos, starts re-templating
// with the CLI, SIGKILLs matchd part way through the job, restarts it, and
// checks that the job resumed by itself and finished with every subject
// done once, each with one face template, still found by its photo.
//
// matchd loads one face algorithm until its second network is wired
// (--face-models), so the job re-extracts the gallery with the algorithm
// it was enrolled with (dlib to dlib: what a change of --detector calls
// for); the engine tests move a gallery between two algorithms.
func TestRetemplateKilled(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data, "--rate-limit", "0")
	conn := dialMatchd(t, d.addr)
	waitServing(t, conn)
	c := pb.NewMatcherClient(conn)
	ctx := context.Background()
	var photos []string
	for _, name := range []string{"amy", "bernadette", "howard", "leonard", "raj", "sheldon"} {
		for n := 1; n <= 5; n++ {
			photos = append(photos, fmt.Sprintf("bbt/%s/%d.png", name, n))
		}
	}
	// Each photo enrolled as four subjects: enough work that the kill
	// lands inside the job.
	const copies = 4
	ids := map[string]string{} // subject id: photo
	for _, p := range photos {
		img, err := os.ReadFile(photo(p))
		if err != nil {
			t.Fatal(err)
		}
		for k := range copies {
			id := fmt.Sprintf("%s-%s-%d", strings.Split(p, "/")[1], strings.TrimSuffix(strings.Split(p, "/")[2], ".png"), k)
			if _, err := c.Enroll(ctx, &pb.EnrollRequest{SubjectId: id, Samples: []*pb.Sample{{Kind: &pb.Sample_FaceImage{FaceImage: img}}}}); err != nil {
				t.Fatalf("enrol %s: %v", id, err)
			}
			ids[id] = p
		}
	}
	total := len(ids)
	if s, err := c.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: "amy-1-0"}); err != nil || s.GetSubject().GetSampleCount() != 1 {
		t.Fatalf("kept samples: %v, %v", s, err)
	}

	out := mustCLI(t, d.addr, "retemplate", "--algorithm", templates.FaceAlgorithm.ID, "--wait=false", "--json")
	var started struct {
		State, Algorithm string
		Total            int
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil || started.Algorithm != templates.FaceAlgorithm.String() || started.Total != total {
		t.Fatalf("retemplate --json: %q, %v", out, err)
	}
	admin := pb.NewAdminClient(conn)
	var before *pb.RetemplateStatusResponse
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := admin.RetemplateStatus(ctx, &pb.RetemplateStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetDone() >= 10 || st.GetState() != "running" {
			before = st
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not get going: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.cmd.Process.Kill() // SIGKILL: no graceful stop
	<-d.done
	conn.Close()
	if before.GetState() != "running" || before.GetDone() >= int64(total) {
		t.Fatalf("the kill came after the job: %v", before)
	}
	t.Logf("killed at %d of %d subjects", before.GetDone(), total)

	d = startMatchd(t, data, "--rate-limit", "0")
	conn = dialMatchd(t, d.addr)
	defer conn.Close()
	waitServing(t, conn)
	if !strings.Contains(d.log.String(), "re-templating resumed") {
		t.Errorf("matchd's log does not say the job resumed:\n%s", d.log)
	}
	// The CLI waits for it (no terminal: progress lines on stderr).
	out, errs, code := cli(t, d.addr, "retemplate", "--algorithm", templates.FaceAlgorithm.String(), "--wait", "--every", "200ms")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("retemplate --wait: exit %d\n%s\n%s", code, out, errs)
	}
	out = mustCLI(t, d.addr, "retemplate", "status", "--json")
	var st struct {
		State     string `json:"state"`
		Total     int    `json:"total"`
		Done      int    `json:"done"`
		Templated int    `json:"templated"`
		Failed    int    `json:"failed"`
		Started   string `json:"started"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "done" || st.Done != total || st.Templated != total || st.Failed != 0 || st.Total != total {
		t.Fatalf("after the restart: %s", out)
	}
	if want := before.GetStartedAt().AsTime().UTC().Format(time.RFC3339); st.Started != want {
		t.Errorf("the resumed job started at %s, the killed one at %s: not the same job", st.Started, want)
	}
	c = pb.NewMatcherClient(conn)
	for id, p := range ids {
		s, err := c.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: id})
		if err != nil || len(s.GetSubject().GetTemplates()) != 1 {
			t.Fatalf("%s after the job: %v, %v", id, s, err)
		}
		if !strings.HasSuffix(id, "-0") {
			continue
		}
		img, _ := os.ReadFile(photo(p))
		res, err := c.Identify(ctx, &pb.IdentifyRequest{Probe: &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: img}}, TopK: copies})
		if err != nil || len(res.GetCandidates()) != copies || !strings.HasPrefix(res.GetCandidates()[0].GetSubjectId(), strings.TrimSuffix(id, "-0")) {
			t.Errorf("%s's photo finds %v, %v", id, res.GetCandidates(), err)
		}
	}
	d.stop(t)
}
