package capture

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestFolderReplaysAllImagesThenEnds(t *testing.T) {
	before := matCount()
	src, err := OpenFolder(context.Background(), "../testdata/faces/idols/jimin", Options{FPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for {
		f, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Mat.Empty() || f.Seq != uint64(n+1) {
			t.Errorf("frame %d: empty=%v seq=%d", n, f.Mat.Empty(), f.Seq)
		}
		f.Close()
		n++
	}
	st := src.Status()
	const want = 4 // testdata/faces/idols/jimin holds 4 photos
	if n != want || st.FramesRead != want || st.FramesDropped != 0 || st.State != StateEnded {
		t.Errorf("read %d frames, status %+v; want %d frames, none dropped, ended", n, st, want)
	}
	src.Close()
	checkMats(t, before)
}
