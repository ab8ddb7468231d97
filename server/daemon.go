package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// Options are the settings of a matchd process.
type Options struct {
	Listen    string // host:port
	DataDir   string // Badger directory
	ModelsDir string // dlib model files
	Detector  face.Detector
	Threshold float32
	// TargetFMR is the decision threshold as a false match rate: the
	// fused-scale threshold (0: DefaultMaxFMR) and, when FaceThresholdFromFMR
	// is set, also the face cosine threshold, looked up in the face
	// calibration (Threshold is then ignored).
	TargetFMR            float64
	FaceThresholdFromFMR bool
	// FaceCalibration and FingerCalibration are calibration files written by
	// bmbench calibrate (matcher.ReadCalibration); empty takes the built-in
	// ones.
	FaceCalibration, FingerCalibration string
	// FingerQualityFloor is the lowest fingerprint image quality (0-100)
	// accepted at enrolment; 0 takes finger.DefaultQualityFloor, negative
	// accepts any.
	FingerQualityFloor int
	// FingerDPI is the resolution assumed for fingerprint images that
	// declare none and come without one (0: 500).
	FingerDPI       int
	MaxMessageBytes int
	MaxImagePixels  int
	// ShutdownGrace is how long a graceful stop waits for in-flight calls.
	ShutdownGrace time.Duration
	Logger        zerolog.Logger
	// Ready, if set, is called with the bound address once the server accepts
	// calls (tests listen on port 0).
	Ready func(addr net.Addr)

	// Access and transport security (see access, pki and audit).
	//
	// Insecure serves plaintext; otherwise the listener is TLS with
	// TLSCert/TLSKey, and client certificates must chain to ClientCA. With
	// none of the three given, matchd uses <DataDir>/tls, creating there a
	// local CA, a server certificate and an admin client certificate on
	// first start.
	Insecure                  bool
	TLSCert, TLSKey, ClientCA string
	// TokensFile, if set, is a bearer token file (access.ParseTokens);
	// client certificates are then optional at the handshake.
	TokensFile string
	// Per-caller limits (access.Config): calls per second, burst, calls in
	// flight; 0: none.
	RateLimit     float64
	RateBurst     int
	MaxConcurrent int

	// Gates are the e-gates whose cameras the Gates service reads; their
	// sources are opened in the background once the server listens.
	Gates []GateConfig

	// EncryptionKeyFile is the gallery's master key file (hex); empty takes
	// BORDERMATCH_ENCRYPTION_KEY or DATA/master.key (see GalleryOptions).
	EncryptionKeyFile string
	// PurgeInterval is how often deleted subjects' bytes are purged from
	// disk (store.Purge) when there were deletions; 0: never.
	PurgeInterval time.Duration
	// MetricsListen is the host:port of /metrics, /livez, /readyz and
	// pprof, served with the gRPC listener's certificate (plaintext with
	// Insecure); empty: none. Pprof enables /debug/pprof/ there, for callers
	// with the admin role (loopback callers only with Insecure).
	MetricsListen string
	Pprof         bool
}

// TLSDir is where matchd keeps its local CA and certificates, inside the
// data directory.
func TLSDir(dataDir string) string { return filepath.Join(dataDir, "tls") }

// accessConfig sets up transport security and access control.
func accessConfig(opt Options, log zerolog.Logger) (*tls.Config, *access.Config, error) {
	acc := &access.Config{Insecure: opt.Insecure, Rate: opt.RateLimit, Burst: opt.RateBurst, MaxConcurrent: opt.MaxConcurrent, Logger: log}
	if opt.TokensFile != "" {
		t, err := access.ReadTokens(opt.TokensFile)
		if err != nil {
			return nil, nil, err
		}
		acc.Tokens = t
		log.Info().Str("file", opt.TokensFile).Int("tokens", t.Len()).Msg("bearer tokens accepted")
	}
	if opt.Insecure {
		if acc.Tokens == nil {
			log.Warn().Msg("--insecure: plaintext gRPC, and every caller is an admin; for development only")
		} else {
			log.Warn().Msg("--insecure: plaintext gRPC; bearer tokens cross the network in the clear")
		}
		return nil, acc, nil
	}
	cert, key, ca := opt.TLSCert, opt.TLSKey, opt.ClientCA
	switch n := btoi(cert != "") + btoi(key != "") + btoi(ca != ""); n {
	case 0:
		dir := TLSDir(opt.DataDir)
		created, err := pki.EnsureLocal(dir, pki.LocalHosts(opt.Listen))
		if err != nil {
			return nil, nil, fmt.Errorf("creating a local CA in %s: %w", dir, err)
		}
		if created {
			log.Warn().Str("dir", dir).Str("admin_cert", filepath.Join(dir, pki.AdminFile)).
				Msg("created a local CA, a server certificate and an admin client certificate (for a trial or a single site; use the agency's CA in production)")
		}
		cert, key, ca = filepath.Join(dir, pki.ServerFile), filepath.Join(dir, pki.ServerKeyFile), filepath.Join(dir, pki.CAFile)
	case 3:
	default:
		return nil, nil, errors.New("give --tls-cert, --tls-key and --client-ca together (or none, for the local CA in <data>/tls)")
	}
	cfg, err := pki.ServerConfig(cert, key, ca, acc.Tokens == nil)
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("cert", cert).Str("client_ca", ca).Bool("client_cert_required", acc.Tokens == nil).Msg("TLS")
	return cfg, acc, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Serve runs the Matcher service until ctx is done, then stops gracefully:
// health turns NOT_SERVING, in-flight calls finish (up to ShutdownGrace), and
// the store is closed so every acknowledged write is on disk.
func Serve(ctx context.Context, opt Options) (err error) {
	log := opt.Logger
	if opt.ShutdownGrace <= 0 {
		opt.ShutdownGrace = 10 * time.Second
	}
	tlsCfg, acc, err := accessConfig(opt, log)
	if err != nil {
		return err
	}
	sopt, keyNote, err := GalleryOptions(opt.DataDir, opt.EncryptionKeyFile, log)
	if err != nil {
		return err
	}
	st, err := store.Open(sopt)
	if err != nil {
		return err
	}
	if len(sopt.EncryptionKey) > 0 {
		log.Info().Str("gallery", sopt.Dir).Str("key", keyNote).Msg("gallery encrypted at rest (AES)")
	} else {
		log.Warn().Str("gallery", sopt.Dir).Str("hint", keyNote).Msg("gallery NOT encrypted at rest")
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing store: %w", cerr)
		}
	}()
	// One audit log for the gRPC calls and the metrics listener's pprof:
	// it keeps the chain's head, so there must not be two.
	auditLog := audit.OpenHeld(st.DB(), st.HoldWrites)

	// This server's metrics. The gallery gauges read the Service once it
	// has loaded (zeros until then).
	var loaded atomic.Pointer[Service]
	metrics := NewMetrics(func() (faces, fingers, subjects int) {
		s := loaded.Load()
		if s == nil {
			return 0, 0, 0
		}
		// TODO(lead): the engine's Stats() (FaceTemplates, FingerTemplates,
		// Subjects) instead of the Service's fields.
		return s.index.Len(), s.fingers.Len(), s.Subjects()
	})
	var metricsSrv *metricsServer
	if opt.MetricsListen != "" {
		// Before the models and the index load, so /readyz can say it is
		// loading.
		metricsSrv, err = startMetrics(metricsConfig{Addr: opt.MetricsListen, Metrics: metrics, TLS: tlsCfg, Pprof: opt.Pprof,
			Access: *acc, Audit: auditLog, Logger: log})
		if err != nil {
			return err
		}
		defer metricsSrv.close()
	}
	// The models and then the index load while /readyz says so.
	faces, err := face.NewExtractor(face.Config{
		ModelsDir: opt.ModelsDir,
		Detector:  opt.Detector,
		MaxPixels: opt.MaxImagePixels,
	})
	if err != nil {
		return err
	}
	defer faces.Close()

	cfg := Config{
		Store: st, Faces: faces, Threshold: opt.Threshold, MaxFMR: opt.TargetFMR, Logger: log,
		Finger: finger.Config{QualityFloor: opt.FingerQualityFloor, DPI: opt.FingerDPI},
	}
	for _, c := range []struct {
		path string
		want templates.Algorithm
		dst  **matcher.Calibration
	}{{opt.FaceCalibration, templates.FaceAlgorithm, &cfg.FaceCalibration}, {opt.FingerCalibration, templates.FingerAlgorithm, &cfg.FingerCalibration}} {
		if c.path == "" {
			continue
		}
		cal, err := ReadCalibration(c.path, c.want)
		if err != nil {
			return err
		}
		*c.dst = &cal
	}
	if opt.FaceThresholdFromFMR {
		cal := cfg.FaceCalibration
		source := opt.FaceCalibration
		if cal == nil {
			face, _, err := DefaultCalibrations()
			if err != nil {
				return err
			}
			cal, source = &face, "built in"
		}
		thr, err := cal.ThresholdForFMR(opt.TargetFMR)
		if err != nil {
			return fmt.Errorf("face calibration (%s): target FMR %g: %w", source, opt.TargetFMR, err)
		}
		cfg.Threshold, opt.Threshold = thr, thr
		log.Info().Str("calibration", source).Float64("target_fmr", opt.TargetFMR).
			Float32("threshold", thr).Int("impostor_comparisons", cal.ImpostorCount).Str("measured_on", cal.DataSet).
			Msg("face decision threshold from the calibration table")
	}
	svc, err := New(cfg)
	if err != nil {
		return err
	}
	// TODO(lead): New sets the Coalescer's hook to a no-op
	// (observeSearchBatch); the engine's configuration should take
	// metrics.ObserveSearchBatch instead of Serve reaching into the Service.
	svc.searches.Observe = metrics.ObserveSearchBatch
	lis, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opt.Listen, err)
	}
	gs, hs := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: opt.MaxMessageBytes, Logger: log,
		TLS: tlsCfg, Access: acc, Audit: auditLog, Metrics: metrics})
	gates, err := NewGates(svc, GatesOptions{Gates: opt.Gates, ModelsDir: opt.ModelsDir, CaptureState: metrics.SetCaptureState, Logger: log})
	if err != nil {
		lis.Close()
		return err
	}
	defer gates.Close() // after the server stopped: no capture is running
	pb.RegisterGatesServer(gs, gates)
	hs.SetServingStatus(pb.Gates_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	gates.Start()
	pb.RegisterAdminServer(gs, NewAdmin(svc))
	hs.SetServingStatus(pb.Admin_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	loaded.Store(svc)
	if opt.PurgeInterval > 0 {
		stopPurge, purging := make(chan struct{}), make(chan struct{})
		go func() { purgeLoop(st, opt.PurgeInterval, log, stopPurge); close(purging) }()
		defer func() { close(stopPurge); <-purging }() // before the store closes
	}

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info().Str("listen", lis.Addr().String()).Bool("tls", tlsCfg != nil).Str("data", opt.DataDir).
		Str("models", opt.ModelsDir).Float32("threshold", opt.Threshold).Float64("max_fmr", svc.maxFMR).
		Int("templates", svc.IndexSize()).Int("gates", len(opt.Gates)).Msg("matchd serving")
	metricsSrv.setReady(true)
	if opt.Ready != nil {
		opt.Ready(lis.Addr())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: finishing in-flight calls")
	hs.Shutdown() // every service NOT_SERVING
	metricsSrv.setReady(false)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(opt.ShutdownGrace):
		log.Warn().Dur("grace", opt.ShutdownGrace).Msg("in-flight calls did not finish in time; stopping")
		gs.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn().Err(err).Msg("serve returned")
	}
	log.Info().Msg("stopped")
	return nil
}

// ReadCalibration reads a calibration table and checks that it was measured
// for the given algorithm: a table of another modality or algorithm version
// maps scores that mean something else.
func ReadCalibration(path string, want templates.Algorithm) (matcher.Calibration, error) {
	cal, err := matcher.ReadCalibration(path)
	if err != nil {
		return cal, fmt.Errorf("calibration: %w", err)
	}
	if cal.Algorithm != want.String() {
		return cal, fmt.Errorf("calibration %s was measured for %s %s; this server scores that modality with %s",
			path, cal.Modality, cal.Algorithm, want)
	}
	return cal, nil
}
