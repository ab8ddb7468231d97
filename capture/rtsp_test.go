package capture

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// enrolCast builds a gallery of the 8 cast members of testdata/faces/bbt
// from their first photo. The gate clip shows leonard's second photo.
func enrolCast(t testing.TB, ex *face.Extractor) *matcher.Index {
	t.Helper()
	ix := matcher.NewIndex(ex.Dim())
	for _, who := range []string{"amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"} {
		b, err := os.ReadFile("../testdata/faces/bbt/" + who + "/1.png")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ex.Extract(b, templates.ExtractOptions{})
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if err := ix.Add(matcher.Entry{SubjectID: who, Vector: f.Template.Vector}); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

func newExtractor(t testing.TB) *face.Extractor {
	t.Helper()
	ex, err := face.NewExtractor(face.Config{ModelsDir: modelsDir(t), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	return ex
}

// TestRTSPBestShotIdentifyAndReconnect: a real RTSP server (GStreamer) on
// loopback streams the gate clip; the best shot identifies the traveller;
// the server is stopped and started again and the source reconnects by
// itself.
func TestRTSPBestShotIdentifyAndReconnect(t *testing.T) {
	before := matCount()
	srv := startRTSP(t, clipFrames(t, gateClip), gateFPS)
	var log stateLog
	src, err := OpenStream(context.Background(), srv.URL(), Options{
		OpenTimeout: 5 * time.Second, ReadTimeout: 2 * time.Second,
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
		OnState: log.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if st := src.Status(); st.State != StateConnected {
		t.Fatalf("after Open: %+v", st)
	}

	sel := newSelector(t)
	// The clip loops every 6 s; the good face shows for 1 s of each loop.
	shot, err := sel.BestShot(context.Background(), src, BestShotOptions{Window: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q := shot.Quality
	t.Logf("best shot: frame %d of %d assessed (%d with a usable face), eyes %.0f px, sharpness %.0f, yaw %.0f°, roll %.0f°, grey %.0f, score %.2f, target %v, %d bytes",
		shot.Seq, shot.Frames, shot.FaceFrames, q.InterEye, q.Sharpness, q.Yaw, q.Roll, q.Brightness, q.Score, q.MeetsTarget, len(shot.JPEG))
	if !q.MeetsTarget {
		t.Errorf("the best shot of the stream does not meet the quality targets: %+v", q)
	}

	ex := newExtractor(t)
	ix := enrolCast(t, ex)
	face, err := ex.Extract(shot.JPEG, templates.ExtractOptions{TakeLargest: true})
	if err != nil {
		t.Fatalf("extracting the best shot: %v", err)
	}
	hits, err := ix.Search(face.Template.Vector, matcher.SearchOptions{K: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("identify: %+v", hits)
	// The default model's built-in threshold.
	thr, ok := engine.DefaultThresholds[ex.Algorithm().String()]
	if !ok {
		t.Fatalf("no built-in threshold of %s", ex.Algorithm())
	}
	if len(hits) == 0 || hits[0].SubjectID != "leonard" || hits[0].Score < thr {
		t.Errorf("the best shot is not identified as leonard at %s's default threshold %.4f: %+v", ex.Algorithm(), thr, hits)
	}

	// The publisher goes away: the source notices, and reconnects once it
	// is back.
	seqBefore := src.Status().FramesRead
	srv.stop()
	waitState(t, src, StateReconnecting, 15*time.Second)
	time.Sleep(500 * time.Millisecond) // some failed attempts against a closed port
	srv.start()
	waitState(t, src, StateConnected, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		f, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("no frames after the reconnection: %v (%+v)", err, src.Status())
		}
		if f.Seq <= seqBefore {
			t.Errorf("frame %d read before the restart returned after it", f.Seq)
		}
		f.Close()
	}
	st := src.Status()
	if st.Reconnects < 1 {
		t.Errorf("Reconnects = %d after a restart", st.Reconnects)
	}
	states := log.get()
	t.Logf("states: %v; status %+v", states, st)
	if !hasSequence(states, StateReconnecting, StateConnected) {
		t.Errorf("state changes %v lack reconnecting → connected", states)
	}
	src.Close()
	if got := src.Status().State; got != StateClosed {
		t.Errorf("after Close: %v", got)
	}
	sel.Close()
	checkMats(t, before)
}

// hasSequence reports whether want occurs in states in order (not
// necessarily adjacent).
func hasSequence(states []State, want ...State) bool {
	i := 0
	for _, s := range states {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}
