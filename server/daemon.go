package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/federation"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
	"github.com/bordermatch/bordermatch/templates/finger"
)

// Options are the settings of a matchd process. Start from DefaultOptions:
// every field is used as it is (no zero stands for a default), and Validate
// says which one is unusable.
type Options struct {
	Listen    string // host:port
	DataDir   string // Badger directory
	ModelsDir string // face models (face.Models) and dlib's detection files
	// FaceModel is the default face algorithm's model (face.Config.Model: a
	// model in ModelsDir, face.DlibModel, or a descriptor's .json path):
	// every enrolment and every probe photo is extracted with it.
	// MoreFaceModels are more models to load (engine.Config.MoreFaces): a
	// gallery moving between algorithms is searched with both, and
	// re-templating can target any loaded one.
	FaceModel      string
	MoreFaceModels []string
	Detector       face.Detector
	// Threshold is the face decision threshold on the cosine score (−1…1)
	// of the default algorithm; 0 takes its built-in one
	// (engine.DefaultThresholds).
	Threshold float32
	// TargetFMR is the decision threshold as a false match rate, in (0, 1):
	// the fused-scale threshold and, when FaceThresholdFromFMR is set, also
	// the face cosine threshold, looked up in the face calibration
	// (Threshold is then ignored).
	TargetFMR            float64
	FaceThresholdFromFMR bool
	// FaceCalibration and FingerCalibration are calibration files written by
	// bmbench calibrate (matcher.ReadCalibration); empty takes the built-in
	// ones.
	FaceCalibration, FingerCalibration string
	// FingerQualityFloor is the lowest fingerprint image quality (0-100)
	// accepted at enrolment, as given: 0 is no floor (every image is
	// enrolled).
	FingerQualityFloor int
	// FingerDPI is the resolution assumed for fingerprint images that
	// declare none and come without one (fpimage.MinDPI..MaxDPI).
	FingerDPI int
	// MaxMessageBytes bounds a request or response; MaxImagePixels an
	// image, checked from its header before decoding.
	MaxMessageBytes int
	MaxImagePixels  int
	// MemoryBudget bounds, in bytes, what the images being decoded and
	// extracted at once may take (engine.Config.MemoryBudget): calls past
	// it wait for their turn, whatever clients send.
	MemoryBudget int64
	// ShutdownGrace bounds a stop: in-flight calls get three quarters of it,
	// closing the gallery the rest; past it Serve gives up on what did not
	// finish, logs it, and returns ErrStopTimedOut. 0 stops at once.
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
	// Per-caller limits (access.Config): calls per second (0: no limit),
	// the burst above it (at least 1 when there is a rate limit), calls in
	// flight (0: no limit).
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

	// KeepSamples keeps every enrolment's source samples (photos,
	// fingerprint images, minutiae records) in the gallery, for
	// re-templating with a new face algorithm (engine.Retemplate); off,
	// a new algorithm needs every subject re-enrolled.
	KeepSamples bool
	// MoreFaces are face extractors of other algorithms than the default
	// one (engine.Config.MoreFaces); matchd wires them from its model
	// flags. Serve closes none of them.
	MoreFaces []engine.FaceExtractor

	// Cluster, when set, makes this matchd a node of a cluster (server/
	// cluster.go): it holds the partition the configuration names, and
	// answers the API over every partition. Nil: a single node.
	Cluster *cluster.Config

	// AuditRetention: audit records older than this are moved from the
	// gallery to the archive <DataDir>/audit/archive.jsonl (audit.Options);
	// 0 keeps them all in the gallery.
	AuditRetention time.Duration

	// Federation, when set, serves hit/no-hit searches between agencies
	// (server/federation.go): its partners' CAs are trusted for partner
	// certificates only. Nil: no Federation service.
	Federation *federation.Config
}

// DefaultOptions are matchd's defaults, those of its flags.
func DefaultOptions() Options {
	return Options{
		Listen:             "127.0.0.1:50051",
		DataDir:            "./data",
		ModelsDir:          "./models",
		FaceModel:          face.DefaultModel,
		Detector:           face.DetectorAuto,
		Threshold:          0, // the default model's built-in threshold
		TargetFMR:          engine.DefaultMaxFMR,
		FingerQualityFloor: finger.DefaultQualityFloor,
		FingerDPI:          finger.DefaultDPI,
		MaxMessageBytes:    DefaultMaxMessageBytes,
		MaxImagePixels:     face.DefaultMaxPixels,
		MemoryBudget:       engine.DefaultMemoryBudget,
		ShutdownGrace:      10 * time.Second,
		RateLimit:          50,
		RateBurst:          100,
		MaxConcurrent:      16,
		PurgeInterval:      10 * time.Minute,
		KeepSamples:        true,
	}
}

// OptionError is an unusable Options field, as Validate reports it. Main
// reports it under the flag or environment variable that set the field.
type OptionError struct {
	Field string // the Options field, e.g. "FingerDPI"
	Value any    // its value
	Want  string // what would do, e.g. "250..2000"
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("server.Options.%s %v: want %s", e.Field, e.Value, e.Want)
}

// Validate reports the first unusable field of opt as an *OptionError.
// Files are not read here: Serve reports a missing one.
func (opt Options) Validate() error {
	bad := func(field string, v any, want string) error { return &OptionError{Field: field, Value: v, Want: want} }
	between := func(lo, hi float64) func(float64) bool {
		return func(v float64) bool { return v >= lo && v <= hi }
	}
	switch {
	case opt.Listen == "":
		return bad("Listen", `""`, "a host:port address")
	case opt.DataDir == "":
		return bad("DataDir", `""`, "a directory")
	case opt.ModelsDir == "":
		return bad("ModelsDir", `""`, "a directory")
	case opt.FaceModel == "":
		return bad("FaceModel", `""`, "a face model name, e.g. "+face.DefaultModel)
	case slices.Contains(opt.MoreFaceModels, ""):
		return bad("MoreFaceModels", opt.MoreFaceModels, "face model names")
	case slices.Contains(opt.MoreFaceModels, opt.FaceModel):
		return bad("MoreFaceModels", opt.MoreFaceModels, "models other than the default one, "+opt.FaceModel)
	case len(slices.Compact(slices.Sorted(slices.Values(opt.MoreFaceModels)))) != len(opt.MoreFaceModels):
		return bad("MoreFaceModels", opt.MoreFaceModels, "each model once")
	case opt.Detector < face.DetectorAuto || opt.Detector > face.DetectorCNN:
		return bad("Detector", opt.Detector, "auto, hog or cnn")
	case !opt.FaceThresholdFromFMR && !between(-1, 1)(float64(opt.Threshold)):
		return bad("Threshold", opt.Threshold, "a cosine score from -1 to 1")
	case !(opt.TargetFMR > 0 && opt.TargetFMR < 1):
		return bad("TargetFMR", opt.TargetFMR, "a rate between 0 and 1, e.g. 0.001")
	case opt.FingerQualityFloor < 0 || opt.FingerQualityFloor > 100:
		return bad("FingerQualityFloor", opt.FingerQualityFloor, "0 (no floor) to 100")
	case !fpimage.PlausibleDPI(opt.FingerDPI):
		return bad("FingerDPI", opt.FingerDPI, fmt.Sprintf("%d..%d", fpimage.MinDPI, fpimage.MaxDPI))
	case opt.MaxMessageBytes <= 0:
		return bad("MaxMessageBytes", opt.MaxMessageBytes, "a positive number of bytes")
	case opt.MaxImagePixels <= 0:
		return bad("MaxImagePixels", opt.MaxImagePixels, "a positive number of pixels")
	case opt.MemoryBudget < engine.MinMemoryBudget:
		return bad("MemoryBudget", opt.MemoryBudget, fmt.Sprintf("at least %d MiB, e.g. 2GiB", engine.MinMemoryBudget>>20))
	case opt.ShutdownGrace < 0:
		return bad("ShutdownGrace", opt.ShutdownGrace, "a duration such as 10s, or 0")
	case !(opt.RateLimit >= 0) || math.IsInf(opt.RateLimit, 0):
		return bad("RateLimit", opt.RateLimit, "calls per second, or 0 for no limit")
	case opt.RateBurst < 0 || (opt.RateLimit > 0 && opt.RateBurst < 1):
		return bad("RateBurst", opt.RateBurst, "at least 1 call with a rate limit")
	case opt.MaxConcurrent < 0:
		return bad("MaxConcurrent", opt.MaxConcurrent, "a number of calls, or 0 for no limit")
	case opt.PurgeInterval < 0:
		return bad("PurgeInterval", opt.PurgeInterval, "a duration such as 10m, or 0 for never")
	case opt.AuditRetention < 0:
		return bad("AuditRetention", opt.AuditRetention, "a duration such as 2160h, or 0 to keep all")
	case opt.Pprof && opt.MetricsListen == "":
		return bad("Pprof", opt.Pprof, "a MetricsListen address to serve it on")
	case opt.Federation != nil && opt.Insecure:
		return bad("Federation", opt.Federation.Agency, "TLS: partner agencies authenticate with certificates (not with --insecure)")
	case opt.Cluster != nil && len(opt.Gates) > 0:
		// A gate's identification would search this node's partition only.
		return bad("Gates", len(opt.Gates), "no gates on a cluster node: run the gates' matchd as a single node")
	}
	if opt.Cluster != nil {
		if err := opt.Cluster.Validate(); err != nil {
			return bad("Cluster", opt.Cluster.Node, err.Error())
		}
	}
	if opt.Federation != nil {
		if err := opt.Federation.Validate(); err != nil {
			return bad("Federation", opt.Federation.Agency, err.Error())
		}
	}
	return nil
}

// algorithmSizesOf is the per-algorithm face gauge of an engine (nil: not
// loaded yet): every loaded algorithm, and every other with templates.
func algorithmSizesOf(e *engine.Engine) map[string]int {
	if e == nil {
		return nil
	}
	out := map[string]int{}
	for _, a := range e.FaceAlgorithms() {
		if a.Loaded || a.Templates > 0 {
			out[a.Algorithm.String()] = a.Templates
		}
	}
	return out
}

// loadFaceModels loads the extractor of the default face model and those
// of opt.MoreFaceModels. A model that is neither in the models directory
// nor a descriptor's path is refused with the list of those that are.
func loadFaceModels(opt Options, log zerolog.Logger) (def *face.Extractor, more []*face.Extractor, err error) {
	have := face.Models(opt.ModelsDir)
	load := func(name, flag string) (*face.Extractor, error) {
		if !strings.HasSuffix(name, ".json") && !slices.Contains(have, name) {
			there := "none: run `make models`"
			if len(have) > 0 {
				there = strings.Join(have, ", ")
			}
			return nil, fmt.Errorf("%s %q: no such face model in --models %s (models there: %s; or give the path of a model descriptor, NAME.json)",
				flag, name, opt.ModelsDir, there)
		}
		start := time.Now()
		ex, err := face.NewExtractor(face.Config{ModelsDir: opt.ModelsDir, Model: name, Detector: opt.Detector, MaxPixels: opt.MaxImagePixels})
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, name, err)
		}
		log.Info().Str("model", name).Str("algorithm", ex.Algorithm().String()).Int("dim", ex.Dim()).
			Str("detector", opt.Detector.String()).Dur("took_ms", time.Since(start)).Msg("face model loaded")
		return ex, nil
	}
	if def, err = load(opt.FaceModel, "--face-model"); err != nil {
		return nil, nil, err
	}
	for _, name := range opt.MoreFaceModels {
		ex, err := load(name, "--more-face-models")
		if err == nil && ex.Algorithm() == def.Algorithm() {
			ex.Close()
			err = fmt.Errorf("--more-face-models %q: the same algorithm (%s) as --face-model %q", name, def.Algorithm(), opt.FaceModel)
		}
		if err != nil {
			for _, ex := range append(more, def) {
				ex.Close()
			}
			return nil, nil, err
		}
		more = append(more, ex)
	}
	return def, more, nil
}

// modelName is the name of the model that makes a face algorithm's
// templates, as --face-model and --more-face-models take it: the
// descriptor's name, which is the algorithm's id, or "dlib".
func modelName(a templates.Algorithm) string {
	if a == templates.FaceAlgorithm {
		return face.DlibModel
	}
	return a.ID
}

// warnDamage says that matchd runs degraded when the index load skipped
// subjects that do not read (the store logged each, naming it): they are
// not searchable until deleted and enrolled again, or salvaged.
func warnDamage(st *store.Store, log zerolog.Logger) {
	d := st.Damage()
	if len(d.Subjects) == 0 {
		return
	}
	ids := make([]string, 0, 10)
	for i, sd := range d.Subjects {
		if i == 10 {
			break
		}
		ids = append(ids, sd.ID)
	}
	log.Error().Int("subjects", len(d.Subjects)).Strs("first", ids).
		Msg("DEGRADED: subjects that do not read are not loaded and not searchable; stop and run matchd check, then matchd salvage or delete and re-enrol them")
}

// warnUnloadedAlgorithms logs every face algorithm the gallery holds
// templates of with no extractor loaded: a probe photo is not extracted
// with it, so its subjects are not found by photo until they are
// re-templated or the model is loaded.
func warnUnloadedAlgorithms(eng *engine.Engine, log zerolog.Logger) {
	def := eng.DefaultAlgorithm()
	for _, a := range eng.FaceAlgorithms() {
		if a.Loaded || a.Templates == 0 {
			continue
		}
		log.Warn().Str("algorithm", a.Algorithm.String()).Int("templates", a.Templates).Int("subjects", a.Subjects).
			Str("hint", fmt.Sprintf("start matchd with --more-face-models %s to search them by photo meanwhile, and move them to %s with `watchlist retemplate --algorithm %s`",
				modelName(a.Algorithm), def, def.ID)).
			Msgf("the gallery holds face templates of %s, whose model is not loaded: those subjects are not found by a photo until re-templated", a.Algorithm)
	}
}

// defaultThreshold is the face-only decision threshold of the engine's
// default algorithm.
func defaultThreshold(eng *engine.Engine) float32 {
	for _, a := range eng.FaceAlgorithms() {
		if a.Default {
			return a.Threshold
		}
	}
	return 0
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

// serve is Serve's work; it records the steps of its stop in steps.
func serve(ctx context.Context, opt Options, steps *stopSteps) (err error) {
	log := opt.Logger
	tlsCfg, acc, err := accessConfig(opt, log)
	if err != nil {
		return err
	}
	var partners []federation.Loaded
	var ownCACert *x509.Certificate
	if opt.Federation != nil {
		// Partner CAs are trusted for client certificates, which access
		// maps to role partner and nothing else.
		if partners, err = opt.Federation.Load(); err != nil {
			return err
		}
		ownCA := opt.ClientCA
		if ownCA == "" {
			ownCA = filepath.Join(TLSDir(opt.DataDir), pki.CAFile)
		}
		if err := federation.CheckNotOwn(partners, ownCA); err != nil {
			return err
		}
		if ownCACert, err = federation.ReadCACert(ownCA); err != nil {
			return fmt.Errorf("federation: this agency's CA: %w", err)
		}
		for _, p := range partners {
			tlsCfg.ClientCAs.AddCert(p.CACert)
			acc.Partners = append(acc.Partners, access.PartnerCA{Name: p.Name, CA: p.CACert})
			log.Info().Str("partner", p.Name).Str("address", p.Address).Str("ca", p.CACert.Subject.CommonName).
				Str("our_cert", p.Client.Leaf.Subject.CommonName).Msg("federation partner")
		}
	}
	sopt, keyNote, err := engine.GalleryOptions(opt.DataDir, opt.EncryptionKeyFile, log)
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
		logStopStep(log, steps, "closing the gallery (flushing Badger's memtable to disk)",
			"the gallery's writes not yet flushed to its tables (replayed from the value log at the next start, if its files are intact)")
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing store: %w", cerr)
		}
	}()
	// One audit log for the gRPC calls and the metrics listener's pprof:
	// it keeps the chain's head, so there must not be two.
	// --- audit trail wiring (issue 13) ---
	auditLog, err := audit.Open(st.AuditTrail(), audit.Options{
		ArchiveDir: filepath.Join(opt.DataDir, "audit"), Retention: opt.AuditRetention, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		logStopStep(log, steps, "closing the audit log", "the audit log's retention pass in progress")
		auditLog.Close() // its retention passes stop before the store closes
	}()
	if opt.Cluster == nil {
		if _, err := reconcileAudit(st, auditLog, log); err != nil {
			return fmt.Errorf("reconciling the gallery with the audit trail: %w", err)
		}
	}
	// --- end audit trail wiring ---

	// This server's metrics. The gallery gauges read the Service once it
	// has loaded (zeros until then).
	var loaded atomic.Pointer[engine.Engine]
	metrics := NewMetrics(func() (faces, fingers, subjects int) {
		e := loaded.Load()
		if e == nil {
			return 0, 0, 0
		}
		st := e.Stats()
		return st.FaceTemplates, st.FingerTemplates, st.Subjects
	})
	metrics.SetAlgorithmSizes(func() map[string]int { return algorithmSizesOf(loaded.Load()) })
	metrics.SetQuarantined(func() int {
		if e := loaded.Load(); e != nil {
			return e.QuarantinedCount()
		}
		return 0
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
	faces, more, err := loadFaceModels(opt, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, ex := range append([]*face.Extractor{faces}, more...) {
			ex.Close()
		}
	}()

	cfg := engine.Config{
		Store: st, Faces: faces, MoreFaces: opt.MoreFaces, NoSamples: !opt.KeepSamples,
		Threshold: opt.Threshold, MaxFMR: opt.TargetFMR, Logger: log,
		Finger:             finger.Config{QualityFloor: opt.FingerQualityFloor, DPI: opt.FingerDPI},
		MemoryBudget:       opt.MemoryBudget,
		ObserveSearchBatch: metrics.ObserveSearchBatch,
	}
	for _, ex := range more {
		cfg.MoreFaces = append(cfg.MoreFaces, ex)
	}
	// --face-calibration is the default face algorithm's table.
	defAlg := cfg.Faces.Algorithm()
	if opt.FaceCalibration != "" {
		cal, err := engine.ReadCalibration(opt.FaceCalibration, defAlg)
		if err != nil {
			return err
		}
		cfg.FaceCalibrations = map[string]*matcher.Calibration{defAlg.String(): &cal}
	}
	if opt.FingerCalibration != "" {
		cal, err := engine.ReadCalibration(opt.FingerCalibration, templates.FingerAlgorithm)
		if err != nil {
			return err
		}
		cfg.FingerCalibration = &cal
	}
	if opt.FaceThresholdFromFMR {
		cal := cfg.FaceCalibrations[defAlg.String()]
		source := opt.FaceCalibration
		if cal == nil {
			faces, err := engine.DefaultFaceCalibrations()
			if err != nil {
				return err
			}
			face, ok := faces[defAlg.String()]
			if !ok {
				return fmt.Errorf("no built-in face calibration of %s: give --face-calibration", defAlg)
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
	eng, err := engine.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		logStopStep(log, steps, "stopping the engine's re-templating job", "the re-templating job's current batch (it resumes at the next start)")
		eng.Close() // a re-templating job stops (and resumes at the next start) before the store closes
	}()
	warnUnloadedAlgorithms(eng, log)
	warnDamage(st, log)
	setMemoryLimit(opt.MemoryBudget, log)
	svc := NewService(eng)
	admin := NewAdmin(eng)
	if opt.Cluster != nil {
		// Joins the cluster and applies the log before this node answers
		// anything: a restarted node catches up first.
		node, err := startCluster(ctx, *opt.Cluster, eng, metrics, log)
		if err != nil {
			return err
		}
		defer node.close() // after the gRPC server stopped
		svc.node, admin.node = node, node
	}
	lis, err := net.Listen("tcp", opt.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opt.Listen, err)
	}
	gs, hs := NewGRPCServer(svc, GRPCOptions{MaxMessageBytes: opt.MaxMessageBytes, Logger: log,
		TLS: tlsCfg, Access: acc, Audit: auditLog, Metrics: metrics})
	gates, err := NewGates(eng, GatesOptions{Gates: opt.Gates, ModelsDir: opt.ModelsDir, CaptureState: metrics.SetCaptureState, Logger: log})
	if err != nil {
		lis.Close()
		return err
	}
	defer func() {
		logStopStep(log, steps, "closing the gates' cameras and scanners", "")
		gates.Close() // after the server stopped: no capture is running
	}()
	pb.RegisterGatesServer(gs, gates)
	hs.SetServingStatus(pb.Gates_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	gates.Start()
	pb.RegisterAdminServer(gs, admin)
	hs.SetServingStatus(pb.Admin_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	if opt.Federation != nil {
		secretFile := opt.Federation.SecretFile
		if secretFile == "" {
			secretFile = filepath.Join(opt.DataDir, federation.SecretFile)
		}
		key, err := federation.LoadOrCreateSecret(secretFile)
		if err != nil {
			lis.Close()
			return err
		}
		ledger := federation.NewLedger(st.Federation(), key, opt.Federation.ReferenceTTL, opt.Federation.ReleaseDeadline)
		fed := newFederation(*opt.Federation, partners, ownCACert, ledger, svc, auditLog, metrics, log)
		defer fed.close()
		pb.RegisterFederationServer(gs, fed)
		hs.SetServingStatus(pb.Federation_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		fedCtx, stopFed := context.WithCancel(ctx)
		fedDone := make(chan struct{})
		go func() { fed.run(fedCtx); close(fedDone) }()
		defer func() { stopFed(); <-fedDone }() // before the store closes
		log.Info().Str("agency", opt.Federation.Agency).Int("partners", len(partners)).
			Dur("release_deadline_ms", opt.Federation.ReleaseDeadline).Dur("head_interval_ms", opt.Federation.HeadInterval).Msg("federation")
	}
	loaded.Store(eng)
	if opt.PurgeInterval > 0 {
		stopPurge, purging := make(chan struct{}), make(chan struct{})
		go func() { purgeLoop(st, opt.PurgeInterval, log, stopPurge); close(purging) }()
		defer func() { close(stopPurge); <-purging }() // before the store closes
	}

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	log.Info().Str("listen", lis.Addr().String()).Bool("tls", tlsCfg != nil).Str("data", opt.DataDir).
		Str("models", opt.ModelsDir).Str("face_model", eng.DefaultAlgorithm().String()).
		Float32("threshold", defaultThreshold(eng)).Float64("max_fmr", eng.MaxFMR()).
		Int("templates", eng.IndexSize()).Int("gates", len(opt.Gates)).Msg("matchd serving")
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
	steps.at("finishing in-flight calls", "the in-flight calls' answers")
	hs.Shutdown() // every service NOT_SERVING
	metricsSrv.setReady(false)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(callsGrace(opt.ShutdownGrace)):
		log.Warn().Dur("grace_ms", callsGrace(opt.ShutdownGrace)).Msg("in-flight calls did not finish in time; stopping")
		gs.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn().Err(err).Msg("serve returned")
	}
	steps.at("stopping the background work (purges, federation, cluster node)", "")
	log.Info().Msg("stopped")
	return nil
}
