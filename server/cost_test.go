package server

// The cost of a caller: decompression bombs sent at once stay within the
// memory budget, and an abandoned call gives its place back at once.

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// pngBomb is a w×h 16-bit RGBA PNG of zeros: a few hundred KB that decode
// to 8 bytes a pixel (6324² is 311 KB for 320 MB).
func pngBomb(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, image.NewNRGBA64(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ridges is a w×h JPEG of concentric ridges 9 pixels apart (a
// fingerprint at 500 dpi, to the extractor): every stage of the pipeline
// runs on it.
func ridges(t testing.TB, w, h int) []byte {
	t.Helper()
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			r := math.Hypot(float64(x-w/2), float64(y-h/2))
			g.Pix[y*g.Stride+x] = uint8(128 + 100*math.Sin(2*math.Pi*r/9))
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, g, &jpeg.Options{Quality: 75}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// heapPeak samples the heap in use until stop is closed and reports the
// most it saw.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestBombsStayInBudget sends fingerprint decompression bombs at once
// over gRPC: each is under the pixel limit, so only the memory budget
// stands between them and the heap. What they add to the heap stays under
// the budget.
func TestBombsStayInBudget(t *testing.T) {
	const budget = 768 << 20
	ts := startServerWith(t, t.TempDir(), func(c *engine.Config) { c.MemoryBudget = budget })
	// 9 MP of 16-bit RGBA: 72 MB decoded and about 350 MB at the height
	// of its extraction (the engine reckons 470 MB from the header), so
	// the budget takes one at a time; eight at once would take 2.8 GB.
	bomb := pngBomb(t, 3000, 3000)
	t.Logf("bomb: %d KB", len(bomb)>>10)
	// Garbage counts in the heap in use too: collect it at a tenth
	// more than what is live, so the peak measures what is held.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	base := heapInUse()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{
				{Position: pb.FingerPosition(1 + i%10), Kind: &pb.FingerSample_Image{Image: bomb}}}})
			errs <- err
		}()
	}
	wg.Wait()
	close(stop)
	extra := int64(<-peak) - int64(base)
	close(errs)
	for err := range errs {
		// Zeros are no fingerprint: refused as the caller's mistake, and
		// never for want of memory.
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("a bomb: %v, want InvalidArgument (no fingerprint)", err)
		}
	}
	t.Logf("8 bombs at once: heap in use rose by %d MiB at most (budget %d MiB)", extra>>20, budget>>20)
	if extra > budget {
		t.Errorf("8 bombs at once took %d MiB of heap beyond the baseline, over the budget of %d MiB", extra>>20, budget>>20)
	}
}

// TestCancelReleasesSlot: a caller with one call in flight allowed gives
// up on a long search; its next call gets through right after, not after
// the abandoned one would have finished.
func TestCancelReleasesSlot(t *testing.T) {
	s := startSecure(t, access.Config{MaxConcurrent: 1})
	officer := pb.NewMatcherClient(s.dial(t, "officer-1", ""))
	img := ridges(t, 1000, 1000)
	var probe []*pb.FingerSample
	for i := range engine.MaxFingerSamples {
		probe = append(probe, &pb.FingerSample{Position: pb.FingerPosition(1 + i), Kind: &pb.FingerSample_Image{Image: img}})
	}
	// How long the whole search takes when nobody gives up.
	start := time.Now()
	if _, err := officer.Identify(context.Background(), &pb.IdentifyRequest{Fingers: probe}); err != nil {
		t.Fatalf("the search, not given up: %v", err)
	}
	whole := time.Since(start)
	t.Logf("a search with %d fingerprints of 1000² takes %v", len(probe), whole)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := officer.Identify(ctx, &pb.IdentifyRequest{Fingers: probe})
		done <- err
	}()
	time.Sleep(whole / 5) // well into the extraction
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("the search given up: %v, want Canceled", err)
	}
	gaveUp := time.Now()
	// The server learns of the cancellation a moment later: poll briefly.
	const soon = 500 * time.Millisecond
	for {
		_, err := officer.ListWatchlists(context.Background(), &pb.ListWatchlistsRequest{})
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatal(err)
		}
		if time.Since(gaveUp) > soon {
			t.Fatalf("%v after giving up its search (which takes %v whole), the caller still has no slot: %v", soon, whole, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the next call got through %v after giving up", time.Since(gaveUp))
}

// TestMemoryBudgetFlag: --memory-budget takes sizes with units and names
// itself when the value will not do.
func TestMemoryBudgetFlag(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--memory-budget", "lots"}, `"lots" is not a size in bytes`},
		{nil, []string{"--memory-budget", "1MiB"}, `--memory-budget "1MiB": want at least 64 MiB`},
		{map[string]string{"BORDERMATCH_MEMORY_BUDGET": "-2GiB"}, nil, `BORDERMATCH_MEMORY_BUDGET="-2GiB"`},
	} {
		_, errs, code := runMatchd(tc.env, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("matchd %v with %v: exit %d %q, want exit 2 naming %q", tc.args, tc.env, code, errs, tc.want)
		}
	}
	for in, want := range map[string]int64{"2GiB": 2 << 30, "512MiB": 512 << 20, "1.5G": 3 << 29, "100000000": 1e8, "300MB": 3e8} {
		var v int64
		if err := (byteSize{&v}).Set(in); err != nil || v != want {
			t.Errorf("%q: %d, %v; want %d", in, v, err, want)
		}
	}
	if s := (byteSize{ptr(int64(2 << 30))}).String(); s != "2GiB" {
		t.Errorf("2 GiB prints as %q", s)
	}
}

// TestImageOverBudgetRefused: an image that alone would take more than the
// whole budget is refused from its header, naming the budget, instead of
// waiting for ever or being decoded anyway.
func TestImageOverBudgetRefused(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), func(c *engine.Config) { c.MemoryBudget = engine.MinMemoryBudget })
	bomb := pngBomb(t, 3000, 3000)
	_, err := ts.client.Identify(context.Background(), &pb.IdentifyRequest{Fingers: []*pb.FingerSample{
		{Position: pb.FingerPosition_RIGHT_INDEX, Kind: &pb.FingerSample_Image{Image: bomb}}}})
	wantCode(t, err, codes.ResourceExhausted)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "3000×3000") || !strings.Contains(msg, "memory budget of 64 MiB") {
		t.Errorf("the refusal says %q: it should name the image's size and the budget", msg)
	}
}
