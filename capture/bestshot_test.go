package capture

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func modelsDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("BORDERMATCH_MODELS")
	if d == "" {
		d = "../models"
	}
	return d
}

func newSelector(t testing.TB) *Selector {
	t.Helper()
	s, err := NewSelector(SelectorConfig{ModelsDir: modelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const gateClip = "../testdata/video/gate.mp4"

// TestAssessGateClip rates every frame of the generated clip, whose scenes
// are known (gateSceneAt): no face, a small blurred one, a tilted one, a
// blurred one, a dark one, a good one.
func TestAssessGateClip(t *testing.T) {
	before := matCount()
	sel := newSelector(t)
	src, err := OpenFile(context.Background(), gateClip, Options{FPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	for i := 0; ; i++ {
		f, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != gateFrames {
				t.Errorf("read %d frames, the clip has %d", i, gateFrames)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cands, err := sel.Assess(f.Mat)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sc := gateSceneAt(i)
		if len(cands) == 0 {
			t.Logf("frame %2d %+v: no face", i, sc)
			if sc.size >= 200 && sc.roll == 0 {
				t.Errorf("frame %d: no face found in a %d px face", i, sc.size)
			}
			continue
		}
		q := cands[0].Quality
		t.Logf("frame %2d %+v: eyes %.0f px, sharp %.0f, yaw %.0f roll %.0f, grey %.0f clip %.2f range %.0f → score %.2f target %v %s",
			i, sc, q.InterEye, q.Sharpness, q.Yaw, q.Roll, q.Brightness, q.Clipped, q.DynamicRange, q.Score, q.MeetsTarget, q.Reject)
		if sc.size == 0 {
			t.Errorf("frame %d: a face found in an empty scene", i)
		}
		good := i >= gateBestFirst && i <= gateBestLast
		if good && !q.MeetsTarget {
			t.Errorf("frame %d: the sharp, frontal, lit face does not meet the targets", i)
		}
		if !good && q.MeetsTarget {
			t.Errorf("frame %d (%+v): meets the targets", i, sc)
		}
	}
	src.Close()
	sel.Close()
	checkMats(t, before)
}

// TestBestShotStopsAtTarget: read without drops, the selector stops at the
// first frame that meets every target; with FullWindow it sees the whole
// clip and still keeps a frame of the good scene.
func TestBestShotStopsAtTarget(t *testing.T) {
	before := matCount()
	sel := newSelector(t)
	for _, full := range []bool{false, true} {
		src, err := OpenFile(context.Background(), gateClip, Options{FPS: -1})
		if err != nil {
			t.Fatal(err)
		}
		shot, err := sel.BestShot(context.Background(), src, BestShotOptions{Window: time.Minute, FullWindow: full})
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		idx := int(shot.Seq) - 1
		t.Logf("full window %v: frame %d, %d assessed, %d usable, score %.2f", full, idx, shot.Frames, shot.FaceFrames, shot.Quality.Score)
		if idx < gateBestFirst || idx > gateBestLast || !shot.Quality.MeetsTarget {
			t.Errorf("best shot from frame %d (%+v), want one of %d–%d meeting the targets", idx, shot.Quality, gateBestFirst, gateBestLast)
		}
		if !full && shot.Frames != gateBestFirst+1 {
			t.Errorf("assessed %d frames, want to stop at the first good one (%d)", shot.Frames, gateBestFirst+1)
		}
		if full && shot.Frames != gateFrames {
			t.Errorf("assessed %d frames with FullWindow, the clip has %d", shot.Frames, gateFrames)
		}
		if len(shot.JPEG) == 0 || shot.FirstFace.IsZero() {
			t.Errorf("shot without image or first-face time")
		}
	}
	sel.Close()
	checkMats(t, before)
}

// TestBestShotNoUsableFace: the shop clip's faces are too small for the
// detector at this size; the error says so instead of returning a bad shot.
func TestBestShotNoUsableFace(t *testing.T) {
	sel := newSelector(t)
	src, err := OpenFile(context.Background(), "../testdata/video/faces.mp4", Options{FPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = sel.BestShot(context.Background(), src, BestShotOptions{Window: time.Minute})
	if !errors.Is(err, ErrNoShot) || !strings.Contains(err.Error(), "ended after 5 frames") {
		t.Errorf("BestShot of a clip without usable faces: %v", err)
	}
	// A live source showing nothing: the window ends it.
	empty, err := OpenFolder(context.Background(), "../testdata/faces/reference", Options{FPS: 20, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	sel2, err := NewSelector(SelectorConfig{ModelsDir: modelsDir(t), Quality: QualityConfig{MinInterEye: 500, TargetInterEye: 600}})
	if err != nil {
		t.Fatal(err)
	}
	defer sel2.Close()
	_, err = sel2.BestShot(context.Background(), empty, BestShotOptions{Window: 2 * time.Second})
	if !errors.Is(err, ErrNoShot) || !strings.Contains(err.Error(), "too small") {
		t.Errorf("BestShot with faces under the size minimum: %v", err)
	}
}

func TestSelectorConfigErrors(t *testing.T) {
	for _, c := range []SelectorConfig{
		{ModelsDir: t.TempDir()},
		{ModelsDir: modelsDir(t), DetectWidth: 20},
		{ModelsDir: modelsDir(t), Quality: QualityConfig{MinInterEye: 100, TargetInterEye: 50}},
		{ModelsDir: modelsDir(t), Quality: QualityConfig{MinBrightness: 200, MaxBrightness: 100}},
	} {
		if s, err := NewSelector(c); err == nil {
			s.Close()
			t.Errorf("NewSelector(%+v) succeeded", c)
		} else {
			t.Log(err)
		}
	}
}

// TestSelectorsShareLandmarkModel: selectors share one landmark model and
// assess frames on several goroutines at once with the results one
// selector gives alone (that the model is freed with its last user is
// facedetect's TestSharedShapes).
func TestSelectorsShareLandmarkModel(t *testing.T) {
	frame := gocv.IMRead("../testdata/faces/bbt/leonard/2.png", gocv.IMReadColor)
	if frame.Empty() {
		t.Fatal("cannot read the test photo")
	}
	defer frame.Close()
	sels := make([]*Selector, 4)
	took := make([]time.Duration, len(sels))
	for i := range sels {
		start := time.Now()
		s, err := NewSelector(SelectorConfig{ModelsDir: modelsDir(t)})
		if err != nil {
			t.Fatal(err)
		}
		took[i] = time.Since(start)
		sels[i] = s
	}
	t.Logf("NewSelector took %v", took)
	if sels[0].shapes != sels[3].shapes {
		t.Fatal("selectors do not share the model")
	}
	want, err := sels[0].Assess(frame)
	if err != nil || len(want) == 0 {
		t.Fatalf("no face: %v", err)
	}
	var wg sync.WaitGroup
	for _, s := range sels {
		wg.Go(func() {
			for range 5 {
				got, err := s.Assess(frame)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent assessment: %v %v, want %v", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()

	for _, s := range sels[:3] {
		s.Close()
	}
	if got, err := sels[3].Assess(frame); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after the other selectors closed: %v %v", got, err)
	}
	sels[3].Close()
	if _, err := NewSelector(SelectorConfig{ModelsDir: t.TempDir()}); err == nil {
		t.Error("no error for a missing model")
	}
}
