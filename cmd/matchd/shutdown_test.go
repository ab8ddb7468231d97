package main

// A stop is bounded: a gallery on a failed disk cannot keep matchd alive.

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// TestStopBoundedWithDiskGone removes the data directory under a running
// matchd (as a failed disk would take it) with a write not yet flushed to
// Badger's tables: closing the gallery then retries its flush forever. The
// stop ends within --shutdown-grace all the same, and the log names what
// did not finish.
func TestStopBoundedWithDiskGone(t *testing.T) {
	data := t.TempDir()
	const grace = 3 * time.Second
	d := startMatchd(t, data, "--shutdown-grace", grace.String())
	conn := dialMatchd(t, d.addr)
	defer conn.Close()
	waitServing(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pb.NewMatcherClient(conn).Enroll(ctx, &pb.EnrollRequest{SubjectId: "s1",
		Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: crashFace(1, 0)}}}}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	const margin = 2 * time.Second
	select {
	case err := <-d.done:
		took := time.Since(start)
		t.Logf("matchd exited %v after SIGTERM (%v)", took, err)
		if err == nil {
			t.Errorf("matchd exited 0 though its gallery was not closed")
		}
	case <-time.After(grace + margin):
		t.Fatalf("matchd still running %v after SIGTERM with --shutdown-grace %v\n%s", grace+margin, grace, tail(d.log.String(), 3000))
	}
	log := d.log.String()
	if !strings.Contains(log, "stop did not finish within the shutdown grace") || !strings.Contains(log, `"unfinished":"closing the gallery`) {
		t.Errorf("the log does not say what did not finish:\n%s", tail(log, 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
