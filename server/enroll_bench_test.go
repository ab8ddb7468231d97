package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
)

// faceTemplates returns n encoded face templates of random unit vectors,
// as a client that extracted them elsewhere would send them.
func faceTemplates(b testing.TB, n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		v := make([]float32, templates.FaceDim)
		var norm float64
		for j := range v {
			v[j] = float32(r.NormFloat64())
			norm += float64(v[j]) * float64(v[j])
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(norm))
		}
		t := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
		enc, err := t.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = enc
	}
	return out
}

// BenchmarkEnrollTemplates measures enrolments with the face template given
// (no extraction) through a real server on a real Badger directory, over
// gRPC on loopback, from concurrent clients. Each RPC returns once its
// subject is durable and indexed, so the figure is what group commit
// (store/commit.go) buys: concurrent enrolments share a sync.
//
// The clients share sharedConns connections (several kiosks behind a
// gateway, say); they, the server and Badger share this machine's cores.
func BenchmarkEnrollTemplates(b *testing.B) {
	const sharedConns = 8
	tpls := faceTemplates(b, 1024)
	for _, clients := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("clients-%d", clients), func(b *testing.B) {
			ts := startServer(b, b.TempDir())
			addr := ts.conn.Target()
			var conns []pb.MatcherClient
			for range min(clients, sharedConns) {
				conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { conn.Close() })
				conns = append(conns, pb.NewMatcherClient(conn))
			}
			ctx := context.Background()
			var n, failed atomic.Int64
			var client atomic.Int64
			st0 := ts.store.CommitStats()
			cpu0 := cpuTime(b)
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			if clients < runtime.GOMAXPROCS(0) {
				// RunParallel starts at least GOMAXPROCS goroutines;
				// a lone client is a loop.
				b.ResetTimer()
				for b.Loop() {
					i := n.Add(1)
					if err := enrolOne(ctx, conns[0], i, tpls); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.ResetTimer()
				b.RunParallel(func(p *testing.PB) {
					c := conns[int(client.Add(1))%len(conns)]
					for p.Next() {
						i := n.Add(1)
						if err := enrolOne(ctx, c, i, tpls); err != nil {
							failed.Add(1)
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrols/s")
			if st := ts.store.CommitStats(); st.Groups > st0.Groups {
				b.ReportMetric(float64(st.Creates-st0.Creates)/float64(st.Groups-st0.Groups), "enrols/group")
			}
			// CPU per enrolment, client and server together: on a busy
			// machine a steadier figure than the rate.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/enrol")
			b.StopTimer()
			// Every acknowledged enrolment is stored and indexed.
			stored, err := ts.store.Count()
			if err != nil {
				b.Fatal(err)
			}
			if want := int(n.Load() - failed.Load()); stored != want || ts.svc.eng.IndexSize() != want {
				b.Fatalf("%d stored, %d indexed, %d acknowledged", stored, ts.svc.eng.IndexSize(), want)
			}
		})
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func enrolOne(ctx context.Context, c pb.MatcherClient, i int64, tpls [][]byte) error {
	_, err := c.Enroll(ctx, &pb.EnrollRequest{
		SubjectId:  fmt.Sprintf("s%09d", i),
		Name:       "Benchmark Subject",
		Watchlists: []string{"wanted"},
		Samples:    []*pb.Sample{{Kind: &pb.Sample_Template{Template: tpls[int(i)%len(tpls)]}}},
	})
	return err
}
