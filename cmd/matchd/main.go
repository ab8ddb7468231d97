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
//	--target-fmr RATE    BORDERMATCH_TARGET_FMR (server.DefaultMaxFMR for fused decisions;
//	                     given, it also sets the face threshold from the face calibration)
//	--face-calibration FILE    BORDERMATCH_FACE_CALIBRATION   (built in; bmbench calibrate writes one)
//	--finger-calibration FILE  BORDERMATCH_FINGER_CALIBRATION (built in)
//	--finger-quality-floor Q   BORDERMATCH_FINGER_QUALITY_FLOOR (finger.DefaultQualityFloor)
//	--finger-dpi DPI           BORDERMATCH_FINGER_DPI         (500)
//	--gates FILE               BORDERMATCH_GATES              (none; YAML: gates: [{id, source, …}])
//	--gate ID=SOURCE           (repeatable; over the file's gate of the same id)
//	--encryption-key-file FILE BORDERMATCH_ENCRYPTION_KEY_FILE (BORDERMATCH_ENCRYPTION_KEY, else DATA/master.key, generated at first start)
//	--purge-interval D         BORDERMATCH_PURGE_INTERVAL     (10m; 0: never)
//	--metrics-listen HOST:PORT BORDERMATCH_METRICS_LISTEN     (none)
//	--pprof                    (off; on the metrics listener, admin role only)
//
// Access (see the access and pki packages):
//
//	--insecure                 plaintext, no client authentication (development only)
//	--tls-cert, --tls-key FILE BORDERMATCH_TLS_CERT, BORDERMATCH_TLS_KEY (the local CA's, in <data>/tls)
//	--client-ca FILE           BORDERMATCH_CLIENT_CA  (CA of the client certificates)
//	--tokens FILE              BORDERMATCH_TOKENS     (bearer tokens: TOKEN IDENTITY ROLE per line)
//	--rate-limit, --rate-burst, --max-concurrent      per-caller limits
//
// "matchd certs --role gate --name gate-07" issues a client certificate
// from the local CA.
//
// `matchd rotate-key --data DIR --old-key-file F --new-key-file G` changes
// the gallery's master key (offline).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/face"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/fpimage"
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
	if len(args) > 0 && args[0] == "certs" {
		return certs(args[1:], os.Stdout)
	}
	if len(args) > 0 && args[0] == "rotate-key" {
		return rotateKey(args[1:])
	}
	fs := flag.NewFlagSet("matchd", flag.ContinueOnError)
	var (
		listen    = fs.String("listen", env("BORDERMATCH_LISTEN", "127.0.0.1:50051"), "gRPC listen address `host:port`")
		data      = fs.String("data", env("BORDERMATCH_DATA", "./data"), "Badger data `dir`ectory (created if missing)")
		models    = fs.String("models", env("BORDERMATCH_MODELS", "./models"), "`dir`ectory with the dlib model files")
		level     = fs.String("log-level", env("BORDERMATCH_LOG_LEVEL", "info"), "log `level`: debug, info, warn, error")
		format    = fs.String("log-format", env("BORDERMATCH_LOG_FORMAT", "auto"), "log `format`: auto, json, console")
		threshold = fs.String("threshold", env("BORDERMATCH_THRESHOLD", strconv.FormatFloat(float64(matcher.DefaultFaceThreshold), 'f', -1, 32)), "decision threshold on the cosine `score`")
		detector  = fs.String("detector", env("BORDERMATCH_DETECTOR", "hog"), "face detector: hog (fast) or cnn (more robust, slower)")
		maxMsg    = fs.Int("max-message-bytes", server.DefaultMaxMessageBytes, "largest request or response in `bytes`")
		maxPixels = fs.Int("max-image-pixels", 40_000_000, "largest image accepted, in `pixels` (checked before decoding)")
		grace     = fs.Duration("shutdown-grace", 10*time.Second, "how long a stop waits for in-flight calls")
		targetFMR = fs.String("target-fmr", env("BORDERMATCH_TARGET_FMR", ""),
			"decision threshold as a false match `rate` (e.g. 0.001): for fused decisions (probes with fingers; default "+
				strconv.FormatFloat(server.DefaultMaxFMR, 'g', -1, 64)+") and, given, for faces through the face calibration")
		faceCal   = fs.String("face-calibration", env("BORDERMATCH_FACE_CALIBRATION", ""), "face calibration `file` (bmbench calibrate); empty: built in")
		fingerCal = fs.String("finger-calibration", env("BORDERMATCH_FINGER_CALIBRATION", ""), "finger calibration `file`; empty: built in")
		floor     = fs.String("finger-quality-floor", env("BORDERMATCH_FINGER_QUALITY_FLOOR", strconv.Itoa(finger.DefaultQualityFloor)),
			"lowest fingerprint image `quality` (0-100) accepted at enrolment; 0: none")
		fingerDPI = fs.String("finger-dpi", env("BORDERMATCH_FINGER_DPI", strconv.Itoa(finger.DefaultDPI)),
			"resolution assumed for fingerprint images that declare none, in `dpi`")
		gatesFile = fs.String("gates", env("BORDERMATCH_GATES", ""), "gates configuration `file` (YAML): the camera source of each gate")
		gateFlags gateList
		keyFile   = fs.String("encryption-key-file", env(server.EncryptionKeyFileEnv, ""),
			"gallery master key `file` (hex, 16/24/32 bytes); default: $"+server.EncryptionKeyEnv+", else DATA/master.key (generated at first start)")
		purge         = fs.String("purge-interval", env("BORDERMATCH_PURGE_INTERVAL", "10m"), "how often deleted subjects' bytes are purged from disk when there were deletions; 0: never")
		metricsListen = fs.String("metrics-listen", env("BORDERMATCH_METRICS_LISTEN", ""), "`host:port` for /metrics, /livez, /readyz (and pprof), with TLS unless --insecure; empty: none")
		withPprof     = fs.Bool("pprof", false, "serve /debug/pprof/ on the metrics listener, to callers with the admin role (audited)")
	)
	acc := accessFlags(fs)
	fs.Var(&gateFlags, "gate", "a gate's camera as `ID=SOURCE` (repeatable), e.g. 3=rtsp://cam3/stream, 4=/dev/video0, 5=folder:/srv/frames")
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
	fmr := server.DefaultMaxFMR
	if *targetFMR != "" {
		fmr, err = strconv.ParseFloat(*targetFMR, 64)
		if err != nil || !(fmr > 0 && fmr < 1) {
			return fmt.Errorf("--target-fmr %q: want a rate between 0 and 1, e.g. 0.001", *targetFMR)
		}
		if set(fs, "threshold") || os.Getenv("BORDERMATCH_THRESHOLD") != "" {
			return fmt.Errorf("give either --threshold or --target-fmr, not both")
		}
	}
	q, err := strconv.Atoi(*floor)
	if err != nil || q < 0 || q > 100 {
		return fmt.Errorf("--finger-quality-floor %q: want 0 (no floor) to 100", *floor)
	}
	dpi, err := strconv.Atoi(*fingerDPI)
	if err != nil || !fpimage.PlausibleDPI(dpi) {
		return fmt.Errorf("--finger-dpi %q: want %d..%d", *fingerDPI, fpimage.MinDPI, fpimage.MaxDPI)
	}
	purgeEvery, err := time.ParseDuration(*purge)
	if err != nil || purgeEvery < 0 {
		return fmt.Errorf("--purge-interval %q: want a duration such as 10m, or 0", *purge)
	}
	if *withPprof && *metricsListen == "" {
		return fmt.Errorf("--pprof needs --metrics-listen")
	}
	var det face.Detector
	switch *detector {
	case "hog":
		det = face.DetectorHOG
	case "cnn":
		det = face.DetectorCNN
	default:
		return fmt.Errorf("--detector %q: want hog or cnn", *detector)
	}
	var gates []server.GateConfig
	if *gatesFile != "" {
		if gates, err = server.ReadGatesFile(*gatesFile); err != nil {
			return err
		}
	}
	gates = server.MergeGates(gates, gateFlags)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.Serve(ctx, server.Options{
		Listen:               *listen,
		DataDir:              *data,
		ModelsDir:            *models,
		Detector:             det,
		Threshold:            float32(thr),
		TargetFMR:            fmr,
		FaceThresholdFromFMR: *targetFMR != "",
		FaceCalibration:      *faceCal,
		FingerCalibration:    *fingerCal,
		FingerQualityFloor:   q,
		FingerDPI:            dpi,
		MaxMessageBytes:      *maxMsg,
		MaxImagePixels:       *maxPixels,
		ShutdownGrace:        *grace,
		Logger:               log,
		Insecure:             *acc.insecure,
		TLSCert:              *acc.cert,
		TLSKey:               *acc.key,
		ClientCA:             *acc.clientCA,
		TokensFile:           *acc.tokens,
		RateLimit:            *acc.rate,
		RateBurst:            *acc.burst,
		MaxConcurrent:        *acc.concurrent,
		Gates:                gates,
		EncryptionKeyFile:    *keyFile,
		PurgeInterval:        purgeEvery,
		MetricsListen:        *metricsListen,
		Pprof:                *withPprof,
	})
}

// gateList collects --gate flags.
type gateList []server.GateConfig

func (l *gateList) String() string {
	var s []string
	for _, g := range *l {
		s = append(s, g.ID+"="+g.Source)
	}
	return strings.Join(s, ",")
}

func (l *gateList) Set(v string) error {
	g, err := server.ParseGateFlag(v)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(*l, func(o server.GateConfig) bool { return o.ID == g.ID }) {
		return fmt.Errorf("gate %s given twice", g.ID)
	}
	*l = append(*l, g)
	return nil
}

// rotateKey changes the master key of a stopped matchd's gallery: Badger's
// data keys are re-encrypted under the new key (store.RotateKey); no other
// file changes.
func rotateKey(args []string) error {
	fs := flag.NewFlagSet("matchd rotate-key", flag.ContinueOnError)
	data := fs.String("data", env("BORDERMATCH_DATA", "./data"), "matchd's data `dir`ectory")
	oldFile := fs.String("old-key-file", "", "the current master key `file`")
	newFile := fs.String("new-key-file", "", "the new master key `file` (hex; e.g. `openssl rand -hex 32 > new.key`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *oldFile == "" || *newFile == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: matchd rotate-key --data DIR --old-key-file FILE --new-key-file FILE")
	}
	oldKey, _, err := store.ReadKeyFile(*oldFile)
	if err != nil {
		return fmt.Errorf("--old-key-file: %w", err)
	}
	newKey, loose, err := store.ReadKeyFile(*newFile)
	if err != nil {
		return fmt.Errorf("--new-key-file: %w", err)
	}
	dir := filepath.Join(*data, server.GalleryDirName)
	if err := store.RotateKey(dir, oldKey, newKey); err != nil {
		return err
	}
	fmt.Printf("The master key of %s is now the one in %s. Start matchd with --encryption-key-file %s", dir, *newFile, *newFile)
	if def := filepath.Join(*data, server.KeyFileName); *oldFile == def {
		fmt.Printf(" (or replace %s with it)", def)
	}
	fmt.Println(", then destroy the old key.")
	if loose {
		fmt.Printf("WARNING: %s is readable by other users; chmod 600 it.\n", *newFile)
	}
	return nil
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
