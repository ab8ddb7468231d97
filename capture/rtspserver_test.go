package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// clipFrames writes the frames of a clip as PNGs into a new directory, for
// the RTSP server to loop over, and returns the file pattern.
func clipFrames(t testing.TB, clip string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := OpenFile(context.Background(), clip, Options{FPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; ; i++ {
		f, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ok := gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("frame%03d.png", i)), f.Mat)
		f.Close()
		if !ok {
			t.Fatal("cannot write a frame")
		}
	}
	return filepath.Join(dir, "frame%03d.png")
}

// rtspServer is GStreamer's RTSP server (testdata/rtsp_server.py) run as a
// child process on loopback.
type rtspServer struct {
	t       testing.TB
	pattern string
	fps     int
	port    int
	cmd     *exec.Cmd
	done    chan struct{}
	stderr  *strings.Builder
	mu      sync.Mutex
}

// The system interpreter: python3-gi is installed for it, not for any
// other Python on the PATH.
const systemPython = "/usr/bin/python3"

func startRTSP(t testing.TB, pattern string, fps int) *rtspServer {
	t.Helper()
	s := &rtspServer{t: t, pattern: pattern, fps: fps}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *rtspServer) URL() string { return fmt.Sprintf("rtsp://127.0.0.1:%d/gate", s.port) }

func (s *rtspServer) start() {
	s.t.Helper()
	cmd := exec.Command(systemPython, "testdata/rtsp_server.py", fmt.Sprint(s.port), s.pattern, fmt.Sprint(s.fps))
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	s.stderr = &strings.Builder{}
	cmd.Stderr = &lockedWriter{w: s.stderr, mu: &s.mu}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting the RTSP server (make deps installs python3-gi and gir1.2-gst-rtsp-server-1.0): %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var port int
			if _, err := fmt.Sscanf(sc.Text(), "ready %d", &port); err == nil {
				ready <- port
			}
		}
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case port := <-ready:
		s.port = port
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		s.t.Fatalf("the RTSP server exited: %s", s.stderr.String())
	case <-time.After(30 * time.Second):
		s.stop()
		s.t.Fatal("the RTSP server did not start within 30s")
	}
}

func (s *rtspServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// restart stops the server and starts it again on the same port.
func (s *rtspServer) restart() {
	s.stop()
	s.start()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// stateLog records a Source's state changes.
type stateLog struct {
	mu     sync.Mutex
	states []State
}

func (l *stateLog) record(st Status) {
	l.mu.Lock()
	l.states = append(l.states, st.State)
	l.mu.Unlock()
}

func (l *stateLog) get() []State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]State(nil), l.states...)
}

// waitState polls src until it is in state want.
func waitState(t testing.TB, src Source, want State, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if src.Status().State == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("source %s did not reach state %v within %v: %+v", src.Name(), want, within, src.Status())
}

func init() {
	// The tests run from the package directory; the server script is a
	// file of it.
	if _, err := os.Stat("testdata/rtsp_server.py"); err != nil {
		panic("capture tests must run in the package directory")
	}
}
