package capture

import (
	"bufio"
	"context"
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

var soak = flag.Duration("soak", 0, "run TestSoak for this long (e.g. 10m): best shots from a real RTSP stream whose server restarts every minute, reporting memory each minute")

// rssBytes reads the resident set size from /proc.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// TestSoak runs a gate for -soak: an RTSP camera (GStreamer, the gate clip
// looped) read continuously; best shots taken back to back, each extracted
// and identified; the camera's server restarted every minute (at half past). Each minute
// it reports RSS, the Go heap and the open Mats, and it fails if they grow
// from the second minute (the first includes warm-up) to the last. Run it
// with -tags matprofile to count Mats.
func TestSoak(t *testing.T) {
	if *soak <= 0 {
		t.Skip("run with -soak 10m (and -tags matprofile -timeout 0)")
	}
	srv := startRTSP(t, clipFrames(t, gateClip), gateFPS)
	src, err := OpenStream(context.Background(), srv.URL(), Options{
		ReadTimeout: 2 * time.Second, ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sel := newSelector(t)
	ex := newExtractor(t)
	ix := enrolCast(t, ex)

	type sample struct {
		rss, heap int64
		mats      int
	}
	var samples []sample
	start := time.Now()
	nextReport, nextRestart := start.Add(time.Minute), start.Add(30*time.Second)
	shots, identified, noShot := 0, 0, 0
	report := func(minute int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := sample{rss: rssBytes(), heap: int64(ms.HeapAlloc), mats: matCount()}
		samples = append(samples, s)
		st := src.Status()
		t.Logf("minute %2d: RSS %6.1f MiB, Go heap %5.1f MiB, Mats %d | shots %d (leonard %d), no shot %d | read %d, dropped %d, reconnects %d, state %v",
			minute, float64(s.rss)/(1<<20), float64(s.heap)/(1<<20), s.mats, shots, identified, noShot,
			st.FramesRead, st.FramesDropped, st.Reconnects, st.State)
	}
	report(0)
	for minute := 1; time.Since(start) < *soak; {
		shot, err := sel.BestShot(context.Background(), src, BestShotOptions{Window: 3 * time.Second})
		if err == nil {
			shots++
			if f, err := ex.Extract(shot.JPEG, templates.ExtractOptions{TakeLargest: true}); err == nil {
				if hits, _ := ix.Search(f.Template.Vector, matcher.SearchOptions{K: 1}); len(hits) > 0 && hits[0].SubjectID == "leonard" {
					identified++
				}
			}
		} else {
			noShot++
		}
		if time.Now().After(nextRestart) {
			srv.restart()
			nextRestart = nextRestart.Add(time.Minute)
		}
		if time.Now().After(nextReport) {
			report(minute)
			minute++
			nextReport = nextReport.Add(time.Minute)
		}
	}
	if len(samples) < 3 {
		return
	}
	first, last := samples[1], samples[len(samples)-1]
	if last.mats > first.mats+4 {
		t.Errorf("open Mats grew from %d to %d", first.mats, last.mats)
	}
	if last.heap > first.heap+16<<20 {
		t.Errorf("Go heap grew from %d to %d bytes", first.heap, last.heap)
	}
	if last.rss > first.rss+64<<20 {
		t.Errorf("RSS grew from %d to %d bytes", first.rss, last.rss)
	}
	if st := src.Status(); st.Reconnects < uint64(len(samples)-2) {
		t.Errorf("%d reconnects over %d server restarts", st.Reconnects, len(samples)-1)
	}
	if identified == 0 || identified < shots*9/10 {
		t.Errorf("%d of %d shots identified as leonard", identified, shots)
	}
}
