package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// Options are the settings of a matchd process.
type Options struct {
	Listen    string // host:port
	DataDir   string // Badger directory
	ModelsDir string // dlib model files
	Detector  templates.Detector
	Threshold float32
	// Calibration, when set, is a calibration table written by bmbench
	// calibrate; the decision threshold is then the lowest score whose FMR,
	// measured in that table, is at most TargetFMR (Threshold is ignored).
	Calibration     string
	TargetFMR       float64
	MaxMessageBytes int
	MaxImagePixels  int
	// ShutdownGrace is how long a graceful stop waits for in-flight calls.
	ShutdownGrace time.Duration
	Logger        zerolog.Logger
	// Ready, if set, is called with the bound address once the server accepts
	// calls (tests listen on port 0).
	Ready func(addr net.Addr)
}

// Serve runs the Matcher service until ctx is done, then stops gracefully:
// health turns NOT_SERVING, in-flight calls finish (up to ShutdownGrace), and
// the store is closed so every acknowledged write is on disk.
func Serve(ctx context.Context, opt Options) (err error) {
	log := opt.Logger
	if opt.ShutdownGrace <= 0 {
		opt.ShutdownGrace = 10 * time.Second
	}
	if opt.Calibration != "" {
		cal, thr, err := CalibratedThreshold(opt.Calibration, opt.TargetFMR)
		if err != nil {
			return err
		}
		opt.Threshold = thr
		log.Info().Str("calibration", opt.Calibration).Float64("target_fmr", opt.TargetFMR).
			Float32("threshold", thr).Int("impostor_comparisons", cal.ImpostorCount).Str("measured_on", cal.DataSet).
			Msg("decision threshold from the calibration table")
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

	st, err := store.Open(store.Options{Dir: opt.DataDir, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing store: %w", cerr)
		}
	}()

	svc, err := New(Config{Store: st, Faces: faces, Threshold: opt.Threshold, Logger: log})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opt.Listen, err)
	}
	gs, hs := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: opt.MaxMessageBytes, Logger: log})

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info().Str("listen", lis.Addr().String()).Str("data", opt.DataDir).
		Str("models", opt.ModelsDir).Float32("threshold", opt.Threshold).
		Int("templates", svc.IndexSize()).Msg("matchd serving")
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

// CalibratedThreshold reads a calibration table and returns the face
// decision threshold for a target FMR. It refuses a table made for another
// modality or algorithm (its scores would mean something else) and a
// target below what the table's impostor count can measure.
func CalibratedThreshold(path string, targetFMR float64) (matcher.Calibration, float32, error) {
	cal, err := matcher.ReadCalibration(path)
	if err != nil {
		return cal, 0, fmt.Errorf("calibration: %w", err)
	}
	if cal.Modality != templates.ModalityFace.String() || cal.Algorithm != templates.FaceAlgorithm.String() {
		return cal, 0, fmt.Errorf("calibration %s was measured for %s %s; this server scores %s with %s",
			path, cal.Modality, cal.Algorithm, templates.ModalityFace, templates.FaceAlgorithm)
	}
	thr, err := cal.ThresholdForFMR(targetFMR)
	if err != nil {
		return cal, 0, fmt.Errorf("calibration %s: target FMR %g: %w", path, targetFMR, err)
	}
	return cal, thr, nil
}
