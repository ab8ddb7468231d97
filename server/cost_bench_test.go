package server

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/rs/zerolog"
)

// BenchmarkBombPeak sends the decompression bombs of issue 19 at once over
// gRPC to a server with the default memory budget and reports the peak heap
// they added (peak-MiB) and the memory the runtime took from the system
// (sys-MiB), with matchd's soft memory limit: photos of 6324² 16-bit RGBA zeros (311 KB, 40 MP: just under
// the face pixel limit), and searches each with ten fingerprint images of
// 4000² 16-bit RGBA zeros (16 MP: the fingerprint limit). Run it with
// -benchtime 1x; BORDERMATCH_MODELS names the face models.
func BenchmarkBombPeak(b *testing.B) {
	for _, bc := range []struct {
		name  string
		calls int
		req   func(b *testing.B) *pb.IdentifyRequest
	}{
		{"faces-6324sq-x4", 4, func(b *testing.B) *pb.IdentifyRequest {
			return &pb.IdentifyRequest{Probe: &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: pngBomb(b, 6324, 6324)}}}
		}},
		{"fingers-10x4000sq-x4", 4, func(b *testing.B) *pb.IdentifyRequest {
			bomb := pngBomb(b, 4000, 4000)
			var fs []*pb.FingerSample
			for i := range 10 {
				fs = append(fs, &pb.FingerSample{Position: pb.FingerPosition(1 + i), Kind: &pb.FingerSample_Image{Image: bomb}})
			}
			return &pb.IdentifyRequest{Fingers: fs}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := startServer(b, b.TempDir())
			// As matchd does (Serve), unless GOMEMLIMIT is set.
			if setMemoryLimit(engine.DefaultMemoryBudget, zerolog.Nop()) != 0 {
				defer debug.SetMemoryLimit(math.MaxInt64)
			}
			req := bc.req(b)
			for b.Loop() {
				base := heapInUse()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				sys0 := ms.Sys
				stop := make(chan struct{})
				peak := heapPeak(stop)
				start := time.Now()
				var wg sync.WaitGroup
				codes := make(chan string, bc.calls)
				for range bc.calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
						defer cancel()
						_, err := ts.client.Identify(ctx, req)
						codes <- status.Code(err).String()
					}()
				}
				wg.Wait()
				close(stop)
				p := <-peak
				runtime.ReadMemStats(&ms)
				close(codes)
				seen := map[string]int{}
				for c := range codes {
					seen[c]++
				}
				extra := float64(int64(p)-int64(base)) / (1 << 20)
				b.ReportMetric(extra, "peak-MiB")
				b.ReportMetric(float64(ms.Sys-sys0)/(1<<20), "sys-MiB")
				b.Logf("%s: %d calls at once in %v: heap rose by %.0f MiB at most, the runtime took %d MiB more from the system; answers %v",
					bc.name, bc.calls, time.Since(start).Round(time.Millisecond), extra, (ms.Sys-sys0)>>20, seen)
			}
		})
	}
}
