package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Prometheus metrics, served with /livez, /readyz and (with --pprof) pprof
// on matchd's metrics listener (--metrics-listen), apart from the gRPC port.
// One registry per process: a matchd process serves one gallery.
var (
	Registry = prometheus.NewRegistry()

	rpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bordermatch_rpc_duration_seconds",
		Help: "Latency of gRPC calls by method and status code.",
		// 0.5 ms (a cached 1:1) to 30 s (an enrolment of many photos, a
		// restore's wait).
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
	}, []string{"rpc", "code"})

	// captureState is set by the capture package through SetCaptureState.
	captureState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bordermatch_capture_source_state",
		Help: "Capture sources (gate cameras, scanners): 1 for the state each source is in, 0 for states it was in before.",
	}, []string{"source", "state"})

	// gallery is the service whose gallery sizes are reported.
	gallery atomic.Pointer[Service]
)

func init() {
	size := func(name, help string, f func(*Service) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if s := gallery.Load(); s != nil {
				return float64(f(s))
			}
			return 0
		})
	}
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		rpcDuration, captureState,
		size("bordermatch_gallery_face_templates", "Face templates in the search index.", func(s *Service) int { return s.index.Len() }),
		size("bordermatch_gallery_finger_templates", "Finger templates in the search index.", func(s *Service) int { return s.fingers.Len() }),
		size("bordermatch_gallery_subjects", "Subjects with at least one searchable template.", (*Service).Subjects),
	)
}

var (
	captureMu     sync.Mutex
	captureStates = map[string]string{} // source → current state
)

// SetCaptureState records that a capture source (a camera or scanner name)
// is now in state ("ok", "degraded", "offline", … as the capture package
// defines them): bordermatch_capture_source_state{source,state} becomes 1 and
// the source's previous state 0. Safe for concurrent use; its signature fits
// a plain callback, so the capture package need not import this one.
func SetCaptureState(source, state string) {
	captureMu.Lock()
	defer captureMu.Unlock()
	if prev, ok := captureStates[source]; ok && prev != state {
		captureState.WithLabelValues(source, prev).Set(0)
	}
	captureStates[source] = state
	captureState.WithLabelValues(source, state).Set(1)
}

// observeUnary and observeStream record every call's latency in
// bordermatch_rpc_duration_seconds.
var observeUnary, observeStream = observeRPCs()

func observeRPCs() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		rpcDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		rpcDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return err
	}
	return unary, stream
}

// metricsServer is the HTTP side: /metrics, /livez, /readyz and, when
// enabled, /debug/pprof/ to loopback peers only.
type metricsServer struct {
	ready atomic.Bool
	srv   *http.Server
	addr  net.Addr
}

func startMetrics(addr string, withPprof bool, log zerolog.Logger) (*metricsServer, error) {
	m := &metricsServer{}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "not ready: loading the index or shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if withPprof {
		loopback := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				host, _, err := net.SplitHostPort(r.RemoteAddr)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
					http.Error(w, "pprof is served to loopback clients only", http.StatusForbidden)
					return
				}
				h.ServeHTTP(w, r)
			})
		}
		mux.Handle("/debug/pprof/", loopback(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", loopback(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", loopback(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", loopback(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", loopback(http.HandlerFunc(pprof.Trace)))
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.New("--metrics-listen: " + err.Error())
	}
	m.addr = lis.Addr()
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics listener")
		}
	}()
	log.Info().Str("metrics_listen", m.addr.String()).Bool("pprof", withPprof).Msg("serving /metrics, /livez, /readyz")
	return m, nil
}

func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
}

func (m *metricsServer) setReady(v bool) {
	if m != nil {
		m.ready.Store(v)
	}
}
