package capture

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
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
