// Package engine is Bordermatch's matching engine, without any transport:
// it turns face and fingerprint samples into templates, keeps the Badger
// store (the source of truth) and the in-memory face and finger indexes in
// step, and answers enrolments, 1:N identifications and 1:1 verifications,
// fusing modalities on the false-match-rate scale (fusion.go) and deciding
// by one rule per request (Decision).
//
// Its callers are the gRPC server (package server, which maps its requests
// and errors), the benchmarks and the tools; anything that needs matching
// without protobuf uses it. It links no face extractor: the caller gives
// one (templates/face.Extractor in matchd), so the engine itself is pure
// Go over the store and the matcher.
//
// Every error it returns wraps one of the kinds in errors.go.
package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// FaceExtractor makes face templates of one algorithm from photos.
// face.Extractor is the production implementation.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
	// Algorithm is the algorithm of every template it makes, Dim their
	// length.
	Algorithm() templates.Algorithm
	Dim() int
}

// Limits of a single request, checked before any work is done.
const (
	MaxSamples       = 16 // face samples of an enrolment
	MaxFingerSamples = 10 // finger samples of an enrolment or a probe
	MaxTopK          = 100
	DefaultTopK      = 10
)

// Config configures an Engine. Store and Faces are required; the zero
// value of every other field takes its default (DefaultConfig).
type Config struct {
	Store *store.Store
	// Faces extracts with the default face algorithm: every new enrolment
	// and every probe photo. MoreFaces are other loaded algorithms (the one
	// a gallery is moving from, say): probe photos are extracted with them
	// too while the gallery holds their templates, and Retemplate can
	// move the gallery to any of them (faces.go).
	Faces     FaceExtractor
	MoreFaces []FaceExtractor
	// Threshold is the default decision threshold on the cosine score of a
	// face-only probe of the default algorithm; 0 takes
	// Thresholds[default], else DefaultThresholds[default].
	Threshold float32
	// Thresholds are face-only thresholds by algorithm
	// (templates.Algorithm.String()); an algorithm without one decides at
	// the FMR of the default algorithm's threshold (faces.go).
	Thresholds map[string]float32
	// NoSamples: do not keep enrolments' source samples (photos,
	// fingerprint images, minutiae records). Retemplate then has nothing to
	// work from: subjects must be re-enrolled for a new algorithm.
	NoSamples bool
	// Finger configures the fingerprint extractor; its QualityFloor (as
	// given: 0 accepts every image; DefaultConfig has
	// finger.DefaultQualityFloor) applies to enrolment images only: a probe
	// is searched whatever its quality, and its quality reported.
	Finger finger.Config
	// FaceCalibrations, by algorithm (templates.Algorithm.String()), and
	// FingerCalibration map scores to false-match rates for fusion and for
	// merging face algorithms; they override the built-in ones
	// (DefaultFaceCalibrations, DefaultCalibrations). Every loaded face
	// algorithm needs one.
	FaceCalibrations  map[string]*matcher.Calibration
	FingerCalibration *matcher.Calibration
	// MaxFMR is the default decision threshold on the fused scale; 0 means
	// DefaultMaxFMR.
	MaxFMR float64
	// MemoryBudget bounds, in bytes, what the images being decoded and
	// extracted at once may take, weighed from their headers (budget.go);
	// callers past it wait, and an image costing more than all of it is
	// refused. 0 means DefaultMemoryBudget.
	MemoryBudget int64
	// FingerWorkers is how many fingerprint images are extracted at once;
	// 0 means GOMAXPROCS.
	FingerWorkers int
	// ObserveSearchBatch, if set, is told the number of probes of every
	// scan of the face index (a metric).
	ObserveSearchBatch func(probes int)
	Logger             zerolog.Logger
}

// DefaultConfig returns the defaults of every field but Store and Faces.
func DefaultConfig() Config {
	return Config{
		MaxFMR: DefaultMaxFMR,
		Finger: finger.DefaultConfig(),
		Logger: zerolog.Nop(),
	}
}

// Validate names the first field that is wrong.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("engine: Config.Store is required")
	case c.Faces == nil:
		return errors.New("engine: Config.Faces is required (NoFaces for templates only)")
	case !(c.Threshold >= -1 && c.Threshold <= 1):
		return fmt.Errorf("engine: Config.Threshold %v outside [-1, 1]", c.Threshold)
	case !(c.MaxFMR > 0 && c.MaxFMR < 1):
		return fmt.Errorf("engine: Config.MaxFMR %v outside (0, 1)", c.MaxFMR)
	case c.MemoryBudget != 0 && c.MemoryBudget < MinMemoryBudget:
		return fmt.Errorf("engine: Config.MemoryBudget %d bytes is under the least, %d MiB (0: the default)", c.MemoryBudget, MinMemoryBudget>>20)
	case c.FingerWorkers < 0:
		return fmt.Errorf("engine: Config.FingerWorkers %d is negative (0: GOMAXPROCS)", c.FingerWorkers)
	}
	if err := c.Finger.Validate(); err != nil {
		return fmt.Errorf("engine: Config.Finger: %w", err)
	}
	seen := map[templates.Algorithm]bool{}
	for i, ex := range append([]FaceExtractor{c.Faces}, c.MoreFaces...) {
		what := "Config.Faces"
		if i > 0 {
			what = fmt.Sprintf("Config.MoreFaces[%d]", i-1)
		}
		if ex == nil {
			return fmt.Errorf("engine: %s is nil", what)
		}
		switch a := ex.Algorithm(); {
		case a.ID == "":
			return fmt.Errorf("engine: %s has no algorithm id", what)
		case seen[a]:
			return fmt.Errorf("engine: %s: algorithm %s is loaded twice", what, a)
		case ex.Dim() < 1 || ex.Dim() > templates.MaxDim:
			return fmt.Errorf("engine: %s: dimension %d outside 1..%d", what, ex.Dim(), templates.MaxDim)
		default:
			seen[a] = true
		}
	}
	for a, t := range c.Thresholds {
		if !(t >= -1 && t <= 1) {
			return fmt.Errorf("engine: Config.Thresholds[%q] %v outside [-1, 1]", a, t)
		}
	}
	for a, cal := range c.FaceCalibrations {
		if cal == nil {
			return fmt.Errorf("engine: Config.FaceCalibrations[%q] is nil", a)
		}
		if err := cal.Validate(); err != nil {
			return fmt.Errorf("engine: Config.FaceCalibrations[%q]: %w", a, err)
		}
		if cal.Modality != "face" || cal.Algorithm != a {
			return fmt.Errorf("engine: Config.FaceCalibrations[%q] is a table of %s %s", a, cal.Modality, cal.Algorithm)
		}
	}
	if cal := c.FingerCalibration; cal != nil {
		if err := cal.Validate(); err != nil {
			return fmt.Errorf("engine: Config.FingerCalibration: %w", err)
		}
		if cal.Modality != "finger" {
			return fmt.Errorf("engine: Config.FingerCalibration is of modality %q", cal.Modality)
		}
	}
	return nil
}

// ContextExtractor is a FaceExtractor whose extraction stops once a
// context is done (face.Extractor is one): the engine passes the call's
// context to it, so a call its client gave up frees its place at once.
type ContextExtractor interface {
	ExtractContext(ctx context.Context, img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// NoFaces is a FaceExtractor for engines that are given templates only:
// every photo is refused, and face templates of any algorithm are taken
// (faces.go). Its Algorithm and Dim, dlib's, only name the default index.
type NoFaces struct{}

// Extract implements FaceExtractor.
func (NoFaces) Extract([]byte, templates.ExtractOptions) (templates.Face, error) {
	return templates.Face{}, invalid("this engine reads no photos; give templates")
}

// Algorithm implements FaceExtractor.
func (NoFaces) Algorithm() templates.Algorithm { return templates.FaceAlgorithm }

// Dim implements FaceExtractor.
func (NoFaces) Dim() int { return templates.FaceDim }

// Engine is the matching engine over one gallery. Its methods are safe for
// concurrent use.
type Engine struct {
	store *store.Store
	log   zerolog.Logger

	// The face algorithms and their indexes (faces.go); def is the
	// default one. templatesOnly: the engine reads no photos (NoFaces).
	algos         faceAlgos
	def           *faceAlgo
	templatesOnly bool
	faceCals      map[string]matcher.Calibration
	thresholds    map[string]float32
	observeBatch  func(int)
	// faced counts the subjects in at least one face index.
	faced       atomic.Int64
	keepSamples bool
	// job is the re-templating job (retemplate.go).
	job jobRunner

	// enrolFingers refuses images under the quality floor; probeFingers
	// extracts whatever it can.
	enrolFingers, probeFingers *finger.Extractor
	fingerDPI                  int
	// budget bounds the memory and workers of the extractions running at
	// once (budget.go).
	budget    *budget
	fm        matcher.FingerMatcher
	fingerCal matcher.Calibration
	fingerLR  matcher.LikelihoodRatio
	maxFMR    float64

	// Each face algorithm's index keeps int8 codes; the exact vectors it
	// re-scores with come from the store (faceSource), and a Coalescer
	// batches concurrent searches of the same options into one scan.
	fingers *matcher.FingerIndex
	// fingerSearches batches concurrent finger searches of the same
	// options into one pass over the finger index.
	fingerSearches *matcher.FingerCoalescer
	// fingered holds what scoring needs to know, beside the indexes, of
	// every subject with fingers: its watchlists (which the finger index
	// also holds, to filter by), how many faces it has, and its fingers. A
	// subject with faces only is not in it: the face index knows its
	// watchlists and faces, so ten million of them cost nothing here. Written under the subject's
	// lock together with the indexes.
	subjectsMu sync.RWMutex
	fingered   map[string]*subjectInfo
	// locks serialises the store-then-index updates of one subject id, so a
	// delete racing an enrolment of the same id cannot leave a ghost entry in
	// the index. Striped: ids hash onto a fixed set of mutexes.
	locks [256]sync.Mutex
	seed  maphash.Seed

	// stale counts stored face templates of an algorithm's index whose
	// dimension differs from the index's: kept on disk, not searched.
	stale int
	// quarantined holds the stored subjects load could not index
	// (quarantine.go).
	quarantined quarantine
}

// subjectInfo is an indexed subject's membership and templates.
type subjectInfo struct {
	watchlists []string
	faces      int
	fingers    []fingerRef
}

type fingerRef struct {
	pos minutiae.Position
	t   *matcher.FingerTemplate
}

// New opens the engine over an open store and loads the indexes from it.
// The zero fields of cfg take their defaults (DefaultConfig).
func New(cfg Config) (*Engine, error) {
	defaults := DefaultConfig()
	if cfg.MaxFMR == 0 {
		cfg.MaxFMR = defaults.MaxFMR
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	_, fingerCal, err := DefaultCalibrations()
	if err != nil {
		return nil, err
	}
	faceCals, err := DefaultFaceCalibrations()
	if err != nil {
		return nil, err
	}
	for a, c := range cfg.FaceCalibrations {
		faceCals[a] = *c
	}
	if cfg.FingerCalibration != nil {
		fingerCal = *cfg.FingerCalibration
	}
	probeCfg := cfg.Finger
	probeCfg.QualityFloor = 0
	enrol := finger.NewExtractor(cfg.Finger)
	_, templatesOnly := cfg.Faces.(NoFaces)
	s := &Engine{
		store:         cfg.Store,
		log:           cfg.Logger,
		templatesOnly: templatesOnly,
		faceCals:      faceCals,
		thresholds:    cfg.Thresholds,
		observeBatch:  cfg.ObserveSearchBatch,
		keepSamples:   !cfg.NoSamples,
		enrolFingers:  enrol,
		probeFingers:  finger.NewExtractor(probeCfg),
		fingerDPI:     enrol.Config().DPI,
		budget:        newBudget(cfg.MemoryBudget, cfg.FingerWorkers),
		fingerCal:     fingerCal,
		maxFMR:        cfg.MaxFMR,
		fingers:       matcher.NewFingerIndex(),
		fingered:      map[string]*subjectInfo{},
		seed:          maphash.MakeSeed(),
	}
	// A table without genuine scores (an operator's older one) leaves
	// the ratio at 1: its fingers still decide through their FMRs.
	if s.fingerLR, err = fingerCal.LikelihoodRatio(); err != nil {
		s.log.Warn().Str("calibration", fingerCal.DataSet).Msg("finger calibration without genuine scores: fusion counts a finger's likelihood ratio as 1 (re-measure it with bmbench calibrate)")
	}
	s.fingerSearches = matcher.NewFingerCoalescer(s.fingers, 0)
	for i, ex := range append([]FaceExtractor{cfg.Faces}, cfg.MoreFaces...) {
		var loaded FaceExtractor
		if !templatesOnly || i > 0 {
			loaded = ex
		}
		fa := s.newFaceAlgo(ex.Algorithm(), ex.Dim(), loaded)
		if fa.cal == nil && loaded != nil {
			return nil, fmt.Errorf("engine: face algorithm %s has no calibration table: give one (Config.FaceCalibrations, matchd --face-calibration) or add engine/calibration/face-%s-v%d.json",
				fa.alg, fa.alg.ID, fa.alg.Version)
		}
		if i == 0 {
			s.def = fa
			switch t, ok := cfg.Thresholds[fa.alg.String()]; {
			case cfg.Threshold != 0:
				fa.threshold = cfg.Threshold
			case ok:
				fa.threshold = t
			default:
				if fa.threshold, ok = DefaultThresholds[fa.alg.String()]; !ok {
					return nil, fmt.Errorf("engine: no face threshold for the default algorithm %s: set Config.Threshold (matchd --threshold or --target-fmr)", fa.alg)
				}
			}
		} else {
			fa.threshold = s.derivedThreshold(fa)
		}
		s.addAlgo(fa)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.resumeJob(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Engine) lock(id string) func() {
	m := &s.locks[maphash.String(s.seed, id)%uint64(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// Delete removes a subject from the gallery and the indexes, and returns
// it as it was.
func (s *Engine) Delete(ctx context.Context, id string) (store.Subject, error) {
	if id == "" {
		return store.Subject{}, invalid("subject_id is required")
	}
	if err := ctx.Err(); err != nil {
		return store.Subject{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	sub, err := s.store.Delete(id)
	if err != nil {
		return store.Subject{}, kindOf("", err)
	}
	s.unindex(sub.ID)
	return sub, nil
}

// Get returns a stored subject.
func (s *Engine) Get(ctx context.Context, id string) (store.Subject, error) {
	if id == "" {
		return store.Subject{}, invalid("subject_id is required")
	}
	sub, err := s.store.Get(id)
	return sub, kindOf("", err)
}

// MaxPageSize bounds a List page.
const MaxPageSize = 1000

// List returns a page of subjects (store.List); a watchlist nobody is on
// is an *UnknownWatchlistsError (watchlists.go).
func (s *Engine) List(ctx context.Context, opt store.ListOptions) (subs []store.Subject, next string, err error) {
	if opt.PageSize < 0 || opt.PageSize > MaxPageSize {
		return nil, "", invalid("page_size %d outside 0..%d", opt.PageSize, MaxPageSize)
	}
	subs, next, err = s.store.List(opt)
	if err != nil {
		return nil, "", kindOf("", err)
	}
	if len(subs) == 0 && opt.Watchlist != "" && opt.PageToken == "" {
		// A first page with nobody on it: the list does not exist (a
		// later page may be empty when the list emptied meanwhile).
		return nil, "", &UnknownWatchlistsError{Unknown: []string{opt.Watchlist}, Known: s.KnownWatchlists()}
	}
	return subs, next, nil
}

// Watchlists returns every watchlist and its subject count, by name.
func (s *Engine) Watchlists(ctx context.Context) ([]store.WatchlistInfo, error) {
	lists, err := s.store.Watchlists()
	if err != nil {
		return nil, kindOf("", err)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i].Name < lists[j].Name })
	return lists, nil
}

// Stats are the gallery's sizes, for metrics: FaceTemplates is the total
// of every algorithm's, FaceAlgorithms each one's.
type Stats struct {
	FaceTemplates, FingerTemplates, Subjects int
	FaceAlgorithms                           []AlgorithmStats
}

// Stats reports the searchable templates and subjects.
func (s *Engine) Stats() Stats {
	return Stats{FaceTemplates: s.faceTemplates(), FingerTemplates: s.fingers.Len(), Subjects: s.Subjects(), FaceAlgorithms: s.FaceAlgorithms()}
}

// Backup writes one consistent snapshot of the gallery to w (store.Backup).
func (s *Engine) Backup(ctx context.Context, w io.Writer) (store.BackupStats, error) {
	start := time.Now()
	st, err := s.store.Backup(w)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return st, cerr
		}
		return st, kindOf("backup", err)
	}
	s.log.Info().Int64("subjects", st.Subjects).Int64("templates", st.Templates).Int64("bytes", st.Bytes).
		Dur("took_ms", time.Since(start)).Msg("backup written")
	return st, nil
}

// Restore reads a backup into the gallery, which must be empty, and
// indexes what it restored. It holds every subject lock, so no enrolment
// or deletion interleaves with it; the store restores all or nothing.
func (s *Engine) Restore(ctx context.Context, r io.Reader) (store.BackupStats, error) {
	for i := range s.locks {
		s.locks[i].Lock()
	}
	defer func() {
		for i := range s.locks {
			s.locks[i].Unlock()
		}
	}()
	start := time.Now()
	if n, err := s.store.Count(); err != nil {
		return store.BackupStats{}, kindOf("restore", err)
	} else if n > 0 {
		return store.BackupStats{}, fmt.Errorf("%w: restore: the gallery has %d subjects; restore goes into an empty gallery only (start matchd on a new --data directory)", ErrIncompatible, n)
	}
	st, err := s.store.Restore(r)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrBadBackup):
		return st, fmt.Errorf("%w: restore: %w; nothing was restored", ErrInvalid, err)
	case errors.Is(err, store.ErrNotEmpty):
		return st, fmt.Errorf("%w: restore: %w", ErrIncompatible, err)
	default:
		if cerr := ctx.Err(); cerr != nil {
			return st, cerr
		}
		return st, kindOf("restore", err)
	}
	// The index was empty with the gallery; load what is there now.
	if err := s.load(); err != nil {
		return st, fmt.Errorf("%w: restore: stored, but indexing failed (a restart retries): %w", ErrInternal, err)
	}
	s.log.Info().Int64("subjects", st.Subjects).Int64("templates", st.Templates).Int64("bytes", st.Bytes).
		Dur("took_ms", time.Since(start)).Msg("gallery restored")
	return st, nil
}

// MaxFMR is the engine's default decision threshold on the fused scale.
func (s *Engine) MaxFMR() float64 { return s.maxFMR }

// FaceIndex is the live face index of the default algorithm, for tests and
// diagnostics that check it against the store; callers must not change it.
func (s *Engine) FaceIndex() *matcher.Index { return s.def.index }

// FaceIndexOf is the live face index of an algorithm, nil if the engine has
// none.
func (s *Engine) FaceIndexOf(a templates.Algorithm) *matcher.Index {
	if fa := s.algos.get(a); fa != nil {
		return fa.index
	}
	return nil
}

// Indexed reports whether a subject is in the indexes (searchable).
func (s *Engine) Indexed(id string) bool { return s.subject(id) != nil }
