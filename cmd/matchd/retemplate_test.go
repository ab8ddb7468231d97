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
)

// TestRetemplateKilled: a gallery enrolled from photos with dlib's network
// (--face-model dlib) moves to mobilefacenet-192 in the real binary.
// matchd restarted on the new model alone warns that the dlib templates are
// not searched by photo; restarted with --more-face-models dlib it finds
// them; re-templating starts with the CLI, matchd is SIGKILLed part way
// through, restarted, and the job resumes by itself and finishes with every
// subject done once, each with one template of the new model. A photo finds
// its person at rank 1 before, during (both runs) and after the move, and
// its own subjects first after it.
func TestRetemplateKilled(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data, "--rate-limit", "0", "--face-model", "dlib")
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
	ids := map[string]string{}  // subject id: photo
	imgs := map[string][]byte{} // photo: bytes
	for _, p := range photos {
		img, err := os.ReadFile(photo(p))
		if err != nil {
			t.Fatal(err)
		}
		imgs[p] = img
		for k := range copies {
			id := fmt.Sprintf("%s-%d", photoID(p), k)
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
	conn.Close()
	d.stop(t)

	// The new model alone: the dlib templates load, but are not searched by
	// photo, and the log says what to do.
	d = startMatchd(t, data, "--rate-limit", "0", "--face-model", "mobilefacenet-192")
	conn = dialMatchd(t, d.addr)
	waitServing(t, conn)
	c = pb.NewMatcherClient(conn)
	if log := d.log.String(); !strings.Contains(log, "whose model is not loaded") || !strings.Contains(log, "--more-face-models dlib") {
		t.Errorf("no warning of the unloaded dlib templates:\n%s", log)
	}
	if res, err := c.Identify(ctx, &pb.IdentifyRequest{Probe: faceSample(imgs[photos[0]])}); err != nil || len(res.GetCandidates()) != 0 {
		t.Errorf("identify with dlib not loaded: %v, %v", res.GetCandidates(), err)
	}
	conn.Close()
	d.stop(t)

	// Both loaded: found by photo (through dlib) before the move.
	newModel := []string{"--rate-limit", "0", "--face-model", "mobilefacenet-192", "--more-face-models", "dlib"}
	d = startMatchd(t, data, newModel...)
	conn = dialMatchd(t, d.addr)
	waitServing(t, conn)
	c = pb.NewMatcherClient(conn)
	for _, p := range photos {
		res, err := c.Identify(ctx, &pb.IdentifyRequest{Probe: faceSample(imgs[p]), TopK: copies})
		if err != nil || len(res.GetCandidates()) != copies || !strings.HasPrefix(res.GetCandidates()[0].GetSubjectId(), photoID(p)+"-") ||
			res.GetCandidates()[0].GetFaceAlgorithm() != "dlib-resnet29/v1" {
			t.Fatalf("before the move, %s finds %v, %v", p, res.GetCandidates(), err)
		}
	}

	searcher := startSearching(t, c, imgs)
	out := mustCLI(t, d.addr, "retemplate", "--algorithm", "mobilefacenet-192", "--wait=false", "--json")
	var started struct {
		State, Algorithm string
		Total            int
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil || started.Algorithm != "mobilefacenet-192/v1" || started.Total != total {
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
	t.Logf("%d searches during the job before the kill", searcher.stop())
	d.cmd.Process.Kill() // SIGKILL: no graceful stop
	<-d.done
	conn.Close()
	if before.GetState() != "running" || before.GetDone() >= int64(total) {
		t.Fatalf("the kill came after the job: %v", before)
	}
	t.Logf("killed at %d of %d subjects", before.GetDone(), total)

	d = startMatchd(t, data, newModel...)
	conn = dialMatchd(t, d.addr)
	defer conn.Close()
	waitServing(t, conn)
	if !strings.Contains(d.log.String(), "re-templating resumed") {
		t.Errorf("matchd's log does not say the job resumed:\n%s", d.log)
	}
	c = pb.NewMatcherClient(conn)
	searcher = startSearching(t, c, imgs)
	// The CLI waits for it (no terminal: progress lines on stderr).
	out, errs, code := cli(t, d.addr, "retemplate", "--algorithm", "mobilefacenet-192/v1", "--wait", "--every", "200ms")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("retemplate --wait: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("%d searches during the resumed job", searcher.stop())
	out = mustCLI(t, d.addr, "retemplate", "status", "--json")
	var st struct {
		State     string `json:"state"`
		Total     int    `json:"total"`
		Done      int    `json:"done"`
		Templated int    `json:"templated"`
		Failed    int    `json:"failed"`
		Cleaned   int    `json:"cleaned"`
		Started   string `json:"started"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "done" || st.Done != total || st.Templated != total || st.Failed != 0 || st.Total != total || st.Cleaned != total {
		t.Fatalf("after the restart: %s", out)
	}
	if want := before.GetStartedAt().AsTime().UTC().Format(time.RFC3339); st.Started != want {
		t.Errorf("the resumed job started at %s, the killed one at %s: not the same job", st.Started, want)
	}
	for id, p := range ids {
		s, err := c.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: id})
		if err != nil || len(s.GetSubject().GetTemplates()) != 1 || s.GetSubject().GetTemplates()[0].GetAlgorithm() != "mobilefacenet-192" ||
			s.GetSubject().GetTemplates()[0].GetAlgorithmVersion() != 1 {
			t.Fatalf("%s after the job: %v, %v", id, s, err)
		}
		if !strings.HasSuffix(id, "-0") {
			continue
		}
		// After the move, the photo's own copies come first.
		res, err := c.Identify(ctx, &pb.IdentifyRequest{Probe: faceSample(imgs[p]), TopK: copies})
		if err != nil || len(res.GetCandidates()) != copies {
			t.Fatalf("%s's photo finds %v, %v", id, res.GetCandidates(), err)
		}
		for _, cd := range res.GetCandidates() {
			if !strings.HasPrefix(cd.GetSubjectId(), photoID(p)+"-") || cd.GetFaceAlgorithm() != "mobilefacenet-192/v1" {
				t.Errorf("%s's photo finds %v", id, res.GetCandidates())
				break
			}
		}
	}
	d.stop(t)
}

// photoID is the subject id prefix of a bbt photo: bbt/amy/1.png is amy-1.
func photoID(p string) string {
	parts := strings.Split(p, "/")
	return parts[1] + "-" + strings.TrimSuffix(parts[2], ".png")
}

func faceSample(img []byte) *pb.Sample { return &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: img}} }

// searcher identifies the photos in a loop and checks that the first
// candidate is the probe's person (mid-move, another photo of the person
// may rank above the probe's own: they are scored by different
// algorithms, each at the floor of its calibration).
type searcher struct {
	t    *testing.T
	halt chan struct{}
	done chan struct{}
	n    int
	errs []string
}

func startSearching(t *testing.T, c pb.MatcherClient, imgs map[string][]byte) *searcher {
	s := &searcher{t: t, halt: make(chan struct{}), done: make(chan struct{})}
	var photos []string
	for p := range imgs {
		photos = append(photos, p)
	}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.halt:
				return
			default:
			}
			p := photos[i%len(photos)]
			res, err := c.Identify(context.Background(), &pb.IdentifyRequest{Probe: faceSample(imgs[p]), TopK: 3})
			s.n++
			switch {
			case err != nil:
				s.errs = append(s.errs, fmt.Sprintf("%s: %v", p, err))
			case len(res.GetCandidates()) == 0 || !strings.HasPrefix(res.GetCandidates()[0].GetSubjectId(), strings.Split(p, "/")[1]+"-"):
				s.errs = append(s.errs, fmt.Sprintf("%s: %v", p, res.GetCandidates()))
			}
		}
	}()
	return s
}

// stop ends the loop, fails the test on a failed search, and returns the
// number of searches.
func (s *searcher) stop() int {
	s.t.Helper()
	close(s.halt)
	<-s.done
	if len(s.errs) > 0 {
		s.t.Errorf("%d of %d searches failed: %v", len(s.errs), s.n, s.errs[:min(5, len(s.errs))])
	}
	return s.n
}
