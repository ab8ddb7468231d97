package server

import (
	"context"
	"crypto/tls"
	"errors"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
)

// Metrics are one server's Prometheus metrics, in a registry of its own, so
// that two servers in one process (tests, benchmarks) do not share gauges.
// Serve makes one and serves it on the metrics listener (--metrics-listen),
// apart from the gRPC port, with /livez, /readyz and (with --pprof) pprof.
// A nil *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	rpcDuration  *prometheus.HistogramVec
	captureState *prometheus.GaugeVec
	searchBatch  prometheus.Histogram
	refused      *prometheus.CounterVec
	algoSizes    atomic.Pointer[AlgorithmSizes]
	quarantined  atomic.Pointer[func() int]

	captureMu     sync.Mutex
	captureStates map[string]string // source → current state

	cluster clusterMetrics
}

// GallerySizes reports the size of a gallery for the gallery gauges: face
// and finger templates in the search indexes, and subjects with at least
// one searchable template. It is called at every scrape; it may be called
// before the gallery has loaded and must then report zeros.
type GallerySizes func() (faces, fingers, subjects int)

// NewMetrics returns the metrics of one server, whose gallery sizes sizes
// reports (nil: none are reported).
func NewMetrics(sizes GallerySizes) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bordermatch_rpc_duration_seconds",
			Help: "Latency of gRPC calls by method and status code.",
			// 0.5 ms (a cached 1:1) to 30 s (an enrolment of many photos, a
			// restore's wait).
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"rpc", "code"}),
		captureState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bordermatch_capture_source_state",
			Help: "Capture sources (gate cameras, scanners): 1 for the state each source is in, 0 for states it was in before.",
		}, []string{"source", "state"}),
		searchBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bordermatch_face_search_batch_probes",
			Help:    "Face probes per scan of the face index: concurrent identifications of the same options share a scan.",
			Buckets: []float64{1, 2, 4, 8, 16, 24, 32},
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bordermatch_refused_calls_total",
			Help: "Calls refused by access control, by reason (unauthenticated, permission_denied, rate_limit, in_flight), logged one by one or not.",
		}, []string{"reason"}),
		captureStates: map[string]string{},
	}
	for _, r := range access.Reasons {
		m.refused.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.rpcDuration, m.captureState, m.searchBatch, m.refused,
	)
	if sizes != nil {
		m.reg.MustRegister(gallerySizes{sizes})
	}
	m.reg.MustRegister(algorithmSizes{m})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bordermatch_gallery_quarantined_subjects",
		Help: "Stored subjects left out of the search indexes at load for a template that does not decode or is no face's or finger's (Admin.ListQuarantine); 0 is healthy.",
	}, func() float64 {
		if f := m.quarantined.Load(); f != nil && *f != nil {
			return float64((*f)())
		}
		return 0
	}))
	return m
}

// SetQuarantined sets the callback of the quarantine gauge
// (bordermatch_gallery_quarantined_subjects).
func (m *Metrics) SetQuarantined(f func() int) { m.quarantined.Store(&f) }

// AlgorithmSizes reports the face templates in the search index by face
// algorithm ("dlib-resnet29/v1"), for the per-algorithm gauge; nil or an
// empty map before the gallery has loaded.
type AlgorithmSizes func() map[string]int

// SetAlgorithmSizes sets the callback of the per-algorithm face gauge
// (bordermatch_gallery_face_templates_by_algorithm).
func (m *Metrics) SetAlgorithmSizes(f AlgorithmSizes) { m.algoSizes.Store(&f) }

var algorithmSizeDesc = prometheus.NewDesc("bordermatch_gallery_face_templates_by_algorithm",
	"Face templates in the search index of each face algorithm (a gallery being re-templated holds two).", []string{"algorithm"}, nil)

type algorithmSizes struct{ m *Metrics }

func (algorithmSizes) Describe(ch chan<- *prometheus.Desc) { ch <- algorithmSizeDesc }

func (a algorithmSizes) Collect(ch chan<- prometheus.Metric) {
	f := a.m.algoSizes.Load()
	if f == nil || *f == nil {
		return
	}
	for alg, n := range (*f)() {
		ch <- prometheus.MustNewConstMetric(algorithmSizeDesc, prometheus.GaugeValue, float64(n), alg)
	}
}

// Registry is the registry the metrics are in, to gather them or to add
// more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// SetCaptureState records that a capture source (a gate id) is now in state
// ("ok", "degraded", "offline", … as the capture package defines them):
// bordermatch_capture_source_state{source,state} becomes 1 and the source's
// previous state 0. Safe for concurrent use; it is the gates' callback
// (GatesOptions.CaptureState).
func (m *Metrics) SetCaptureState(source, state string) {
	if m == nil {
		return
	}
	m.captureMu.Lock()
	defer m.captureMu.Unlock()
	if prev, ok := m.captureStates[source]; ok && prev != state {
		m.captureState.WithLabelValues(source, prev).Set(0)
	}
	m.captureStates[source] = state
	m.captureState.WithLabelValues(source, state).Set(1)
}

// ObserveSearchBatch records the number of face probes one scan of the face
// index served (matcher.Coalescer.Observe).
func (m *Metrics) ObserveSearchBatch(probes int) {
	if m != nil {
		m.searchBatch.Observe(float64(probes))
	}
}

// CountRefused counts a call refused by access control
// (access.Config.Refused).
func (m *Metrics) CountRefused(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

// Interceptors return the gRPC interceptors that record every call's
// latency in bordermatch_rpc_duration_seconds (nil Metrics: pass-through).
func (m *Metrics) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observeRPC(info.FullMethod, start, err)
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observeRPC(info.FullMethod, start, err)
		return err
	}
	return unary, stream
}

func (m *Metrics) observeRPC(method string, start time.Time, err error) {
	if m != nil {
		m.rpcDuration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
	}
}

// gallerySizes is the collector of the gallery gauges: one call of the
// callback a scrape.
type gallerySizes struct{ sizes GallerySizes }

var gallerySizeDescs = [3]*prometheus.Desc{
	prometheus.NewDesc("bordermatch_gallery_face_templates", "Face templates in the search index.", nil, nil),
	prometheus.NewDesc("bordermatch_gallery_finger_templates", "Finger templates in the search index.", nil, nil),
	prometheus.NewDesc("bordermatch_gallery_subjects", "Subjects with at least one searchable template.", nil, nil),
}

func (gallerySizes) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range gallerySizeDescs {
		ch <- d
	}
}

func (g gallerySizes) Collect(ch chan<- prometheus.Metric) {
	faces, fingers, subjects := g.sizes()
	for i, v := range [3]int{faces, fingers, subjects} {
		ch <- prometheus.MustNewConstMetric(gallerySizeDescs[i], prometheus.GaugeValue, float64(v))
	}
}

// metricsServer is the HTTP side: /metrics, /livez, /readyz and, when
// enabled, /debug/pprof/ to admins.
type metricsServer struct {
	ready atomic.Bool
	srv   *http.Server
	addr  net.Addr
}

// metricsConfig configures the metrics listener.
type metricsConfig struct {
	Addr string
	// Metrics are served on /metrics; nil: NewMetrics(nil), with no gallery.
	Metrics *Metrics
	// TLS is the gRPC listener's configuration; the metrics listener serves
	// the same certificate, with client certificates optional so that
	// Prometheus and probes without one can read /metrics, /livez and
	// /readyz (which carry no biometric data). Nil: plaintext (--insecure).
	TLS *tls.Config
	// Pprof serves /debug/pprof/ to callers with the admin role (a client
	// certificate or bearer token, as on gRPC), audited like an RPC;
	// without TLS, to loopback callers only.
	Pprof  bool
	Access access.Config
	Audit  *audit.Log
	Logger zerolog.Logger
}

// PprofMethod is access.Pprof: the pprof endpoints' name in the role table
// and in audit records.
const PprofMethod = access.Pprof

func startMetrics(cfg metricsConfig) (*metricsServer, error) {
	m := &metricsServer{}
	mux := http.NewServeMux()
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	mux.Handle("/metrics", cfg.Metrics.Handler())
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "not ready: loading the models and the index, or shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if cfg.Pprof {
		admin := adminOnly(cfg)
		mux.Handle(PprofMethod, admin(http.HandlerFunc(pprof.Index)))
		mux.Handle(PprofMethod+"cmdline", admin(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle(PprofMethod+"profile", admin(http.HandlerFunc(pprof.Profile)))
		mux.Handle(PprofMethod+"symbol", admin(http.HandlerFunc(pprof.Symbol)))
		mux.Handle(PprofMethod+"trace", admin(http.HandlerFunc(pprof.Trace)))
	}
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, errors.New("--metrics-listen: " + err.Error())
	}
	m.addr = lis.Addr()
	if cfg.TLS != nil {
		t := cfg.TLS.Clone()
		t.ClientAuth = tls.VerifyClientCertIfGiven
		t.NextProtos = []string{"h2", "http/1.1"}
		lis = tls.NewListener(lis, t)
	}
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: stdlog.New(warnWriter{cfg.Logger}, "", 0)}
	go func() {
		if err := m.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error().Err(err).Msg("metrics listener")
		}
	}()
	cfg.Logger.Info().Str("metrics_listen", m.addr.String()).Bool("tls", cfg.TLS != nil).Bool("pprof", cfg.Pprof).
		Msg("serving /metrics, /livez, /readyz")
	return m, nil
}

// warnWriter logs the HTTP server's own errors (failed TLS handshakes:
// a scraper without the CA, a client certificate of another CA) as warnings.
type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("listener", "metrics").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// adminOnly puts an HTTP handler behind the gRPC side's access control: the
// caller is authenticated from the TLS client certificate or an
// "Authorization: Bearer" header, must have a role the role table allows
// for access.Pprof (admin), counts against the per-caller limits, and every
// call, granted or refused, is audited (granted ones before they are
// served; without a record there is no answer).
func adminOnly(cfg metricsConfig) func(http.Handler) http.Handler {
	acc := cfg.Access
	var rec *audit.Recorder
	if cfg.Audit != nil {
		rec = &audit.Recorder{Log: cfg.Audit, Logger: cfg.Logger}
		acc.Denied = rec.Denied
	}
	if acc.Refused == nil {
		acc.Refused = cfg.Metrics.CountRefused
	}
	admit := access.New(acc).Unary()
	info := &grpc.UnaryServerInfo{FullMethod: PprofMethod}
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if cfg.TLS == nil && !isLoopback(r.RemoteAddr) {
				// Without TLS any peer is the "insecure" admin.
				http.Error(w, "pprof over plaintext is served to loopback clients only", http.StatusForbidden)
				return
			}
			_, err := admit(httpCallContext(r), nil, info, func(ctx context.Context, _ any) (any, error) {
				if rec != nil {
					if err := rec.Granted(ctx, PprofMethod, r.URL.Path); err != nil {
						return nil, err
					}
				}
				h.ServeHTTP(w, r.WithContext(ctx))
				return nil, nil
			})
			if err != nil {
				st := status.Convert(err)
				http.Error(w, st.Message(), httpStatus(st.Code()))
			}
		})
	}
}

// httpCallContext gives an HTTP request what access control reads from a
// gRPC call: the peer with its TLS state, and the authorization header as
// incoming metadata.
func httpCallContext(r *http.Request) context.Context {
	p := &peer.Peer{Addr: remoteAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	ctx := peer.NewContext(r.Context(), p)
	if v := r.Header.Values("Authorization"); len(v) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.MD{"authorization": v})
	}
	return ctx
}

func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.TCPAddr{}
}

func isLoopback(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
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
