package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// Options are the settings of a matchd process.
type Options struct {
	Listen    string // host:port
	DataDir   string // Badger directory
	ModelsDir string // dlib model files
	Detector  templates.Detector
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

	// EncryptionKeyFile is the gallery's master key file (hex); empty takes
	// BORDERMATCH_ENCRYPTION_KEY or DATA/master.key (see GalleryOptions).
	EncryptionKeyFile string
	// PurgeInterval is how often deleted subjects' bytes are purged from
	// disk (store.Purge) when there were deletions; 0: never.
	PurgeInterval time.Duration
	// MetricsListen is the host:port of /metrics, /livez, /readyz and
	// pprof; empty: none. Pprof enables /debug/pprof/ there, for loopback
	// clients only.
	MetricsListen string
	Pprof         bool
}

// Serve runs the Matcher service until ctx is done, then stops gracefully:
// health turns NOT_SERVING, in-flight calls finish (up to ShutdownGrace), and
// the store is closed so every acknowledged write is on disk.
func Serve(ctx context.Context, opt Options) (err error) {
	log := opt.Logger
	if opt.ShutdownGrace <= 0 {
		opt.ShutdownGrace = 10 * time.Second
	}
	faces, err := templates.NewFaceExtractor(templates.FaceConfig{
		ModelsDir: opt.ModelsDir,
		Detector:  opt.Detector,
		MaxPixels: opt.MaxImagePixels,
	})
	if err != nil {
		return err
	}
	defer faces.Close()

	var metrics *metricsServer
	if opt.MetricsListen != "" {
		// Before the index loads, so /readyz can say it is loading.
		if metrics, err = startMetrics(opt.MetricsListen, opt.Pprof, log); err != nil {
			return err
		}
		defer metrics.close()
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
	lis, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opt.Listen, err)
	}
	gs, hs := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: opt.MaxMessageBytes, Logger: log})
	pb.RegisterAdminServer(gs, NewAdmin(svc))
	hs.SetServingStatus(pb.Admin_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	gallery.Store(svc)
	if opt.PurgeInterval > 0 {
		stopPurge, purging := make(chan struct{}), make(chan struct{})
		go func() { purgeLoop(st, opt.PurgeInterval, log, stopPurge); close(purging) }()
		defer func() { close(stopPurge); <-purging }() // before the store closes
	}

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info().Str("listen", lis.Addr().String()).Str("data", opt.DataDir).
		Str("models", opt.ModelsDir).Float32("threshold", opt.Threshold).Float64("max_fmr", svc.maxFMR).
		Int("templates", svc.IndexSize()).Msg("matchd serving")
	metrics.setReady(true)
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
	metrics.setReady(false)
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
