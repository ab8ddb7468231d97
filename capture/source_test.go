package capture

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileReadsEveryFrameThenEnds(t *testing.T) {
	before := matCount()
	for _, c := range []struct {
		clip         string
		frames, w, h int
	}{
		{gateClip, gateFrames, 640, 480},
		{"../testdata/video/faces.mp4", 5, 820, 460},
	} {
		src, err := Open(context.Background(), c.clip, Options{FPS: -1})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			f, err := src.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Mat.Cols() != c.w || f.Mat.Rows() != c.h || f.Mat.Channels() != 3 {
				t.Errorf("%s frame %d: %dx%d×%d", c.clip, n, f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels())
			}
			f.Close()
			n++
		}
		st := src.Status()
		if n != c.frames || st.FramesRead != uint64(c.frames) || st.FramesDropped != 0 || st.State != StateEnded {
			t.Errorf("%s: %d frames, %+v; want %d, none dropped, ended", c.clip, n, st, c.frames)
		}
		// Once ended, Next keeps saying so.
		if _, err := src.Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Errorf("Next after the end: %v", err)
		}
		src.Close()
		if _, err := src.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v", err)
		}
	}
	checkMats(t, before)
}

// TestFileAtItsRateDropsForASlowConsumer: a file replayed at its own frame
// rate behaves as a camera: a consumer slower than the camera gets the
// newest frame and the others are dropped (and freed), never queued.
func TestFileAtItsRateDropsForASlowConsumer(t *testing.T) {
	before := matCount()
	src, err := OpenFile(context.Background(), gateClip, Options{FPS: 50, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := 0; i < 20; i++ {
		f, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq <= last {
			t.Errorf("frame %d after %d", f.Seq, last)
		}
		last = f.Seq
		f.Close()
		time.Sleep(100 * time.Millisecond) // a detector slower than the camera
	}
	st := src.Status()
	t.Logf("%+v", st)
	if st.FramesDropped == 0 || st.FramesRead <= uint64(gateFrames) {
		t.Errorf("a consumer at 10 fps of a looped 50 fps file: %+v; want drops and more than one loop", st)
	}
	if held := st.FramesRead - st.FramesDropped - 20; held > 1 {
		t.Errorf("%d frames held, the queue holds 1", held)
	}
	src.Close()
	checkMats(t, before)
}

func TestFolderSkipsUndecodableImages(t *testing.T) {
	before := matCount()
	dir := t.TempDir()
	b, err := os.ReadFile("../testdata/faces/bbt/amy/1.png")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "1.png"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "2.jpg"), []byte("not a JPEG"), 0o644)
	os.WriteFile(filepath.Join(dir, "3.png"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	src, err := Open(context.Background(), "folder:"+dir, Options{FPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		f, err := src.Next(context.Background())
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		f.Close()
		n++
	}
	st := src.Status()
	if n != 2 || st.DecodeErrors != 1 || !strings.Contains(st.LastError, "2.jpg") {
		t.Errorf("%d frames, %+v; want 2 frames and one decode error naming 2.jpg", n, st)
	}
	src.Close()
	checkMats(t, before)
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	notVideo := filepath.Join(empty, "clip.mp4")
	os.WriteFile(notVideo, []byte("this is not a video"), 0o644)
	for _, c := range []struct {
		uri     string
		want    error
		mention string
	}{
		{"/dev/video99", ErrNoDevice, "/dev/video99"},
		{"v4l2:98", ErrNoDevice, "/dev/video98"},
		{"97", ErrNoDevice, "/dev/video97"},
		{"v4l2:camera", ErrBadURI, "camera"},
		{"", ErrBadURI, "empty"},
		{"ftp://example.org/x", ErrBadURI, "ftp"},
		{"/no/such/clip.mp4", ErrOpen, "/no/such/clip.mp4"},
		{notVideo, ErrOpen, notVideo},
		{"folder:" + empty + "/none", ErrOpen, "none"},
		{"folder:" + t.TempDir(), ErrOpen, "no images"},
	} {
		src, err := Open(ctx, c.uri, Options{})
		if err == nil {
			src.Close()
			t.Errorf("Open(%q) succeeded", c.uri)
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("Open(%q): %v; want %v mentioning %q", c.uri, err, c.want, c.mention)
		}
	}
}

// TestStreamBadURLGivesUp: streams that refuse the connection, that accept
// it and never answer, and that do not exist fail Open with a clear error
// within the open timeout instead of hanging.
func TestStreamBadURLGivesUp(t *testing.T) {
	// A TCP server that accepts and then says nothing: the worst case for
	// a blocking open.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	refused, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedAddr := refused.Addr().String()
	refused.Close()
	srv := startRTSP(t, clipFrames(t, gateClip), gateFPS)

	for _, url := range []string{
		"rtsp://" + silent.Addr().String() + "/gate",
		"rtsp://" + refusedAddr + "/gate",
		"http://" + silent.Addr().String() + "/mjpeg",
		srv.URL() + "-no-such-mount",
		"rtsp://user:secret@" + refusedAddr + "/gate",
	} {
		done := make(chan error, 1)
		go func() {
			src, err := Open(context.Background(), url, Options{OpenTimeout: 2 * time.Second})
			if err == nil {
				src.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			t.Logf("%s: %v", url, err)
			if !errors.Is(err, ErrOpen) {
				t.Errorf("%s: %v; want ErrOpen", url, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		case <-time.After(60 * time.Second):
			// Not a speed check: a liveness bound far beyond the 2 s timeout.
			t.Fatalf("%s: Open still blocked after 60s with a 2s open timeout", url)
		}
	}
}

// TestStreamGivesUpAfterMaxReconnects: with MaxReconnects set, a stream
// whose server is gone for good ends in StateFailed and Next says why.
func TestStreamGivesUpAfterMaxReconnects(t *testing.T) {
	before := matCount()
	srv := startRTSP(t, clipFrames(t, gateClip), gateFPS)
	src, err := OpenStream(context.Background(), srv.URL(), Options{
		ReadTimeout: time.Second, OpenTimeout: time.Second,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, MaxReconnects: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	srv.stop()
	waitState(t, src, StateFailed, 30*time.Second)
	ctx := context.Background()
	for {
		f, err := src.Next(ctx)
		if err == nil {
			f.Close() // frames read before the server stopped
			continue
		}
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Next on a failed source: %v", err)
		}
		break
	}
	src.Close()
	checkMats(t, before)
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:hunter2@10.0.0.5:554/stream1": "rtsp://admin:xxxxx@10.0.0.5:554/stream1",
		"rtsp://10.0.0.5/a@b":                       "rtsp://10.0.0.5/a@b",
		"http://cam/video":                          "http://cam/video",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
