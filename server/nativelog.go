package server

// Native libraries' stderr. OpenCV, its FFmpeg and GStreamer backends and
// dlib write their warnings straight to file descriptor 2 ("[mov,mp4,…]
// moov atom not found"), between matchd's records, so a JSON log is no
// longer one JSON object per line (issue 18). Their levels are not ours to
// set for every library, and silencing them would hide why a camera does
// not open; so matchd with a JSON log takes fd 2 over: the log goes to the
// original stderr, and each line written to fd 2 becomes a record of its
// own, at warn level (error for OpenCV's "[ERROR…" lines), with
// "source":"native". Go's own crash output still reaches the original
// stderr (debug.SetCrashOutput): a fatal error must not be lost in a pipe
// whose reader died with the process.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
)

// nativeStderr is fd 2 taken over: orig is the original stderr, r the
// pipe fd 2 now writes into.
type nativeStderr struct {
	orig *os.File
	r    *os.File
	done chan struct{}
}

// captureNativeStderr points fd 2 at a pipe, if stderr is fd 2; nil when
// it is not (a test's buffer). The caller logs to orig, then calls forward
// with that logger, and restore before it writes to stderr itself.
func captureNativeStderr(stderr io.Writer) (*nativeStderr, error) {
	if f, ok := stderr.(*os.File); !ok || f.Fd() != 2 {
		return nil, nil
	}
	fd, err := syscall.Dup(2)
	if err != nil {
		return nil, fmt.Errorf("native stderr: %w", err)
	}
	syscall.CloseOnExec(fd)
	orig := os.NewFile(uintptr(fd), "/dev/stderr")
	r, w, err := os.Pipe()
	if err != nil {
		orig.Close()
		return nil, fmt.Errorf("native stderr: %w", err)
	}
	err = syscall.Dup3(int(w.Fd()), 2, 0)
	w.Close()
	if err != nil {
		r.Close()
		orig.Close()
		return nil, fmt.Errorf("native stderr: %w", err)
	}
	if err := debug.SetCrashOutput(orig, debug.CrashOptions{}); err != nil {
		fmt.Fprintf(orig, "matchd: crash output stays on fd 2: %v\n", err)
	}
	return &nativeStderr{orig: orig, r: r, done: make(chan struct{})}, nil
}

// forward logs every line written to fd 2, until restore.
func (n *nativeStderr) forward(log zerolog.Logger) {
	go func() {
		defer close(n.done)
		br := bufio.NewReaderSize(n.r, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); strings.TrimSpace(line) != "" {
				ev := log.Warn()
				if strings.HasPrefix(line, "[ERROR") {
					ev = log.Error()
				}
				ev.Str("source", "native").Msg(line)
			}
			if err != nil {
				return
			}
		}
	}()
}

// restore points fd 2 back at the original stderr and returns once the
// lines written before are logged. forward must have been called.
func (n *nativeStderr) restore() {
	// Dup3 closes fd 2's end of the pipe, its last writer: the reader
	// reaches EOF after the last line.
	if err := syscall.Dup3(int(n.orig.Fd()), 2, 0); err != nil {
		fmt.Fprintf(n.orig, "matchd: restoring stderr: %v\n", err)
		return
	}
	<-n.done
	n.r.Close()
	debug.SetCrashOutput(nil, debug.CrashOptions{})
}
