// Command matchd serves the Bordermatch matching engine over gRPC.
//
// Every flag has an environment variable; a flag given on the command line
// wins over the environment:
//
//	--listen HOST:PORT   BORDERMATCH_LISTEN     (127.0.0.1:50051)
//	--data DIR           BORDERMATCH_DATA       (./data)
//	--models DIR         BORDERMATCH_MODELS     (./models)
//	--log-level LEVEL    BORDERMATCH_LOG_LEVEL  (info)
//	--log-format FORMAT  BORDERMATCH_LOG_FORMAT (auto: console on a terminal, JSON otherwise)
//	--threshold SCORE    BORDERMATCH_THRESHOLD  (matcher.DefaultFaceThreshold)
//	--detector hog|cnn   BORDERMATCH_DETECTOR   (hog)
//	--calibration FILE   BORDERMATCH_CALIBRATION (none: bmbench calibrate writes one)
//	--target-fmr RATE    BORDERMATCH_TARGET_FMR  (with --calibration: threshold for this FMR)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/templates"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "matchd:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func run(args []string) error {
	fs := flag.NewFlagSet("matchd", flag.ContinueOnError)
	var (
		listen    = fs.String("listen", env("BORDERMATCH_LISTEN", "127.0.0.1:50051"), "gRPC listen address `host:port`")
		data      = fs.String("data", env("BORDERMATCH_DATA", "./data"), "Badger data `dir`ectory (created if missing)")
		models    = fs.String("models", env("BORDERMATCH_MODELS", "./models"), "`dir`ectory with the dlib model files")
		level     = fs.String("log-level", env("BORDERMATCH_LOG_LEVEL", "info"), "log `level`: debug, info, warn, error")
		format    = fs.String("log-format", env("BORDERMATCH_LOG_FORMAT", "auto"), "log `format`: auto, json, console")
		threshold = fs.String("threshold", env("BORDERMATCH_THRESHOLD", strconv.FormatFloat(float64(matcher.DefaultFaceThreshold), 'f', -1, 32)), "decision threshold on the cosine `score`")
		detector  = fs.String("detector", env("BORDERMATCH_DETECTOR", "hog"), "face detector: hog (fast) or cnn (more robust, slower)")
		calib     = fs.String("calibration", env("BORDERMATCH_CALIBRATION", ""), "calibration table `file` from bmbench calibrate; with --target-fmr sets the threshold")
		targetFMR = fs.String("target-fmr", env("BORDERMATCH_TARGET_FMR", ""), "decision threshold as a target false match `rate` (e.g. 0.001), looked up in --calibration")
		maxMsg    = fs.Int("max-message-bytes", server.DefaultMaxMessageBytes, "largest request or response in `bytes`")
		maxPixels = fs.Int("max-image-pixels", 40_000_000, "largest image accepted, in `pixels` (checked before decoding)")
		grace     = fs.Duration("shutdown-grace", 10*time.Second, "how long a stop waits for in-flight calls")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	log, err := logger(*level, *format, os.Stderr)
	if err != nil {
		return err
	}
	thr, err := strconv.ParseFloat(*threshold, 32)
	if err != nil {
		return fmt.Errorf("--threshold %q: not a number", *threshold)
	}
	var fmr float64
	switch {
	case *targetFMR != "" && *calib == "":
		return fmt.Errorf("--target-fmr needs --calibration FILE (a table written by bmbench calibrate)")
	case *calib != "" && *targetFMR == "":
		return fmt.Errorf("--calibration needs --target-fmr RATE (e.g. 0.001)")
	case *calib != "":
		if fmr, err = strconv.ParseFloat(*targetFMR, 64); err != nil || fmr <= 0 || fmr >= 1 {
			return fmt.Errorf("--target-fmr %q: want a rate between 0 and 1, e.g. 0.001", *targetFMR)
		}
		if set(fs, "threshold") || os.Getenv("BORDERMATCH_THRESHOLD") != "" {
			return fmt.Errorf("give either --threshold or --target-fmr, not both")
		}
	}
	var det templates.Detector
	switch *detector {
	case "hog":
		det = templates.DetectorHOG
	case "cnn":
		det = templates.DetectorCNN
	default:
		return fmt.Errorf("--detector %q: want hog or cnn", *detector)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.Serve(ctx, server.Options{
		Listen:          *listen,
		DataDir:         *data,
		ModelsDir:       *models,
		Detector:        det,
		Threshold:       float32(thr),
		Calibration:     *calib,
		TargetFMR:       fmr,
		MaxMessageBytes: *maxMsg,
		MaxImagePixels:  *maxPixels,
		ShutdownGrace:   *grace,
		Logger:          log,
	})
}

// set reports whether the flag was given on the command line.
func set(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func logger(level, format string, w *os.File) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	var out io.Writer = w
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	case "auto":
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want auto, json or console", format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}
