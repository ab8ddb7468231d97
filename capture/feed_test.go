package capture

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFeed polls the feed until ok says yes, for at most 20s.
func waitFeed(t *testing.T, f *Feed, what string, ok func(FeedStatus) bool) FeedStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := f.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFeed drives a gate feed with the gate clip replayed in a loop at its
// own rate (10 fps): the lookback holds frames by time, a frame evicted
// from it can no longer be cloned (a clone taken before stays usable),
// Newer waits for the next frame, and Close wakes a waiter and frees
// every frame.
func TestFeed(t *testing.T) {
	before := matCount()
	var mu sync.Mutex
	var states []State
	f := NewFeed(FeedConfig{
		Source:   gateClip,
		Options:  Options{Loop: true},
		Lookback: 600 * time.Millisecond,
		OnState: func(st FeedStatus) {
			mu.Lock()
			if n := len(states); n == 0 || states[n-1] != st.State {
				states = append(states, st.State)
			}
			mu.Unlock()
		},
	})
	if st := f.Status(); st.State != StateConnecting || st.Opened || st.Latest != 0 {
		t.Errorf("before Start: %+v", st)
	}
	f.Start()
	// 600ms at 5 a second, the newest beside: the ring fills within a
	// second of frames.
	st := waitFeed(t, f, "a full lookback", func(st FeedStatus) bool { return st.Latest >= 12 })
	if st.State != StateConnected || !st.Opened || st.Attempts != 1 {
		t.Errorf("status %+v", st)
	}
	if f.Name() != gateClip {
		t.Errorf("name %q", f.Name())
	}

	t.Run("lookback by time", func(t *testing.T) {
		all, latest := f.Lookback(time.Time{})
		if len(all) < 3 || all[0] != latest {
			t.Fatalf("held %v, latest %d", all, latest)
		}
		// At 5 kept a second over 600ms: the newest and at most 3+2 others.
		if len(all) > 6 {
			t.Errorf("%d frames held for a 600ms lookback: %v", len(all), all)
		}
		var times []time.Time
		for i, seq := range all {
			fr, ok := f.Clone(seq)
			if !ok {
				continue // evicted meanwhile
			}
			if fr.Seq != seq || fr.Mat.Cols() != 640 || fr.Mat.Rows() != 480 {
				t.Errorf("clone of %d: seq %d, %dx%d", seq, fr.Seq, fr.Mat.Cols(), fr.Mat.Rows())
			}
			if i > 0 && seq >= all[i-1] {
				t.Errorf("not newest first: %v", all)
			}
			times = append(times, fr.Time)
			fr.Close()
		}
		for i := 1; i < len(times); i++ {
			if d := times[i-1].Sub(times[i]); d < 150*time.Millisecond && i > 1 {
				t.Errorf("kept frames %v apart, want about 200ms: %v", d, times)
			}
		}
		if len(times) > 1 && times[0].Sub(times[len(times)-1]) > 600*time.Millisecond+250*time.Millisecond {
			t.Errorf("held frames span %v, lookback 600ms", times[0].Sub(times[len(times)-1]))
		}
		// A time between frames selects the newer ones only.
		if len(times) >= 2 {
			since := times[1].Add(time.Millisecond)
			recent, _ := f.Lookback(since)
			for _, seq := range recent {
				fr, ok := f.Clone(seq)
				if ok && fr.Time.Before(since) {
					t.Errorf("frame %d read %v, before %v", seq, fr.Time, since)
				}
				fr.Close()
			}
		}
	})
	t.Run("clone after eviction", func(t *testing.T) {
		all, _ := f.Lookback(time.Time{})
		oldest := all[len(all)-1]
		kept, ok := f.Clone(oldest)
		if !ok {
			t.Fatalf("frame %d not held", oldest)
		}
		defer kept.Close()
		waitFeed(t, f, "the oldest frame to leave the lookback", func(FeedStatus) bool {
			held, _ := f.Lookback(time.Time{})
			return len(held) > 0 && held[len(held)-1] > oldest
		})
		if fr, ok := f.Clone(oldest); ok {
			fr.Close()
			t.Errorf("frame %d cloned after it left the lookback", oldest)
		}
		// The copy taken before is the caller's and still whole.
		if kept.Mat.Empty() || kept.Mat.Cols() != 640 || kept.Seq != oldest {
			t.Errorf("earlier clone: %dx%d seq %d", kept.Mat.Cols(), kept.Mat.Rows(), kept.Seq)
		}
	})
	t.Run("newer", func(t *testing.T) {
		_, latest := f.Lookback(time.Time{})
		fr, err := f.Newer(context.Background(), latest)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Seq <= latest {
			t.Errorf("Newer(%d) gave frame %d", latest, fr.Seq)
		}
		fr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := f.Newer(ctx, 1<<62); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Newer past the deadline: %v", err)
		}
	})
	t.Run("close during a wait", func(t *testing.T) {
		errs := make(chan error, 1)
		go func() {
			_, err := f.Newer(context.Background(), 1<<62)
			errs <- err
		}()
		time.Sleep(100 * time.Millisecond)
		f.Close()
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Newer at Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Newer still waiting after Close")
		}
		if st := f.Status(); st.Held != 0 || st.Latest != 0 {
			t.Errorf("after Close: %+v", st)
		}
		if _, ok := f.Clone(1); ok {
			t.Error("clone after Close")
		}
	})
	f.Close() // twice is harmless
	mu.Lock()
	if len(states) < 2 || states[0] != StateConnecting || states[1] != StateConnected {
		t.Errorf("states %v", states)
	}
	mu.Unlock()
	checkMats(t, before)
}

// TestFeedEnds: a finite source read to its end stops the feed; the last
// frame is still held and Newer then says why nothing newer will come.
func TestFeedEnds(t *testing.T) {
	before := matCount()
	f := NewFeed(FeedConfig{Source: gateClip, Options: Options{FPS: 100}, Lookback: time.Second})
	f.Start()
	st := waitFeed(t, f, "the end", func(st FeedStatus) bool { return st.Ended != "" })
	if st.Latest != gateFrames || st.State != StateEnded || !strings.Contains(st.LastError, "end") {
		t.Errorf("ended: %+v", st)
	}
	fr, err := f.Newer(context.Background(), 0)
	if err != nil || fr.Seq != gateFrames {
		t.Errorf("Newer(0) after the end: frame %d, %v", fr.Seq, err)
	}
	fr.Close()
	if _, err := f.Newer(context.Background(), gateFrames); !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "end") {
		t.Errorf("Newer after the end: %v", err)
	}
	f.Close()
	checkMats(t, before)
}

// TestFeedRetries: a source that is not there is retried with backoff
// (the error without the password); one that cannot be read as described
// is given up at once.
func TestFeedRetries(t *testing.T) {
	f := NewFeed(FeedConfig{Source: "rtsp://user:secret@127.0.0.1:1/stream", RetryMin: 50 * time.Millisecond,
		Options: Options{OpenTimeout: time.Second}})
	f.Start()
	st := waitFeed(t, f, "two attempts", func(st FeedStatus) bool { return st.Attempts >= 2 })
	if st.State != StateConnecting || st.Opened || st.Permanent || st.LastError == "" || strings.Contains(st.LastError, "secret") {
		t.Errorf("unreachable stream: %+v", st)
	}
	if f.Name() != "rtsp://user:xxxxx@127.0.0.1:1/stream" {
		t.Errorf("name %q", f.Name())
	}
	f.Close()

	var last FeedStatus
	var mu sync.Mutex
	f = NewFeed(FeedConfig{Source: "ftp://cam/stream", OnState: func(st FeedStatus) { mu.Lock(); last = st; mu.Unlock() }})
	f.Start()
	st = waitFeed(t, f, "giving up", func(st FeedStatus) bool { return st.Permanent })
	if st.State != StateFailed || st.Attempts != 1 || !strings.Contains(st.LastError, "unsupported scheme") {
		t.Errorf("unsupported scheme: %+v", st)
	}
	mu.Lock()
	if last.State != StateFailed || !last.Permanent {
		t.Errorf("last reported %+v", last)
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.Newer(ctx, 0); !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Errorf("Newer on a feed that gave up: %v", err)
	}
	f.Close()
}

func TestScrub(t *testing.T) {
	uri := "rtsp://admin:hunter2@10.0.0.5:554/stream1"
	got := scrub("cannot open "+uri+" (admin:hunter2@10.0.0.5)", uri)
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "rtsp://admin:xxxxx@10.0.0.5:554/stream1") {
		t.Errorf("scrub: %q", got)
	}
	if got := scrub("plain", "v4l2:0"); got != "plain" {
		t.Errorf("scrub without a password: %q", got)
	}
}
