package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// Options are the settings of a matchd process.
type Options struct {
	Listen          string // host:port
	DataDir         string // Badger directory
	ModelsDir       string // dlib model files
	Detector        templates.Detector
	Threshold       float32
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
