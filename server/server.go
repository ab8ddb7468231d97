// Package server implements the bordermatch.v1 Matcher gRPC service: it turns
// face and fingerprint samples into templates, keeps the Badger store (the
// source of truth) and the in-memory face and finger indexes in step, and
// answers 1:N and 1:1 queries, fusing modalities on the false-match-rate
// scale (fusion.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// FaceExtractor makes face templates from photos. face.Extractor is
// the production implementation.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// Limits of a single request, checked before any work is done.
const (
	MaxSamples       = 16 // face samples of an enrolment
	MaxFingerSamples = 10 // finger samples of an enrolment or a probe
	MaxTopK          = 100
	DefaultTopK      = 10
)

// Config configures a Service.
type Config struct {
	Store *store.Store
	Faces FaceExtractor
	// Threshold is the default decision threshold on the cosine score of a
	// face-only probe.
	Threshold float32
	// Finger configures the fingerprint extractor; its QualityFloor
	// (default finger.DefaultQualityFloor, negative: none) applies to
	// enrolment images only: a probe is searched whatever its quality, and
	// its quality reported.
	Finger finger.Config
	// FaceCalibration and FingerCalibration map scores to false-match
	// rates for fusion; nil takes the built-in ones (DefaultCalibrations).
	FaceCalibration, FingerCalibration *matcher.Calibration
	// MaxFMR is the default decision threshold on the fused scale; 0 means
	// DefaultMaxFMR.
	MaxFMR float64
	Logger zerolog.Logger
}

// Service is the Matcher gRPC service.
type Service struct {
	pb.UnimplementedMatcherServer

	store     *store.Store
	faces     FaceExtractor
	threshold float32
	log       zerolog.Logger
	algorithm templates.Algorithm

	// enrolFingers refuses images under the quality floor; probeFingers
	// extracts whatever it can.
	enrolFingers, probeFingers *finger.Extractor
	fingerDPI                  int
	fm                         matcher.FingerMatcher
	faceCal, fingerCal         matcher.Calibration
	maxFMR                     float64

	// index keeps the faces' int8 codes; the exact vectors it re-scores
	// with come from the store (faceSource).
	index *matcher.Index
	// searches batches concurrent face searches of the same options into
	// one scan of index (matcher.Coalescer).
	searches *matcher.Coalescer
	fingers  *matcher.FingerIndex
	// fingered holds what scoring needs to know, beside the indexes, of
	// every subject with fingers: its watchlists (the finger index has
	// none), how many faces it has, and its fingers. A subject with faces
	// only is not in it: the face index knows its watchlists and faces, so
	// ten million of them cost nothing here. Written under the subject's
	// lock together with the indexes.
	subjectsMu sync.RWMutex
	fingered   map[string]*subjectInfo
	// locks serialises the store-then-index updates of one subject id, so a
	// delete racing an enrolment of the same id cannot leave a ghost entry in
	// the index. Striped: ids hash onto a fixed set of mutexes.
	locks [256]sync.Mutex
	seed  maphash.Seed

	// stale counts stored templates of another algorithm version, which are
	// kept on disk but not searched until the subject is re-enrolled.
	stale int
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

// New opens the service over an open store and loads the indexes from it.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Faces == nil {
		return nil, errors.New("server: Store and Faces are required")
	}
	if cfg.Threshold < -1 || cfg.Threshold > 1 {
		return nil, fmt.Errorf("server: threshold %v outside [-1, 1]", cfg.Threshold)
	}
	if cfg.MaxFMR == 0 {
		cfg.MaxFMR = DefaultMaxFMR
	}
	if !(cfg.MaxFMR > 0 && cfg.MaxFMR < 1) {
		return nil, fmt.Errorf("server: max FMR %v outside (0, 1)", cfg.MaxFMR)
	}
	faceCal, fingerCal, err := DefaultCalibrations()
	if err != nil {
		return nil, err
	}
	for _, c := range []struct {
		cfg  *matcher.Calibration
		dst  *matcher.Calibration
		want string
	}{{cfg.FaceCalibration, &faceCal, "face"}, {cfg.FingerCalibration, &fingerCal, "finger"}} {
		if c.cfg == nil {
			continue
		}
		if err := c.cfg.Validate(); err != nil {
			return nil, fmt.Errorf("server: %s calibration: %w", c.want, err)
		}
		if c.cfg.Modality != c.want {
			return nil, fmt.Errorf("server: %s calibration is of modality %q", c.want, c.cfg.Modality)
		}
		*c.dst = *c.cfg
	}
	probeCfg := cfg.Finger
	probeCfg.QualityFloor = -1
	enrol := finger.NewExtractor(cfg.Finger)
	s := &Service{
		store:        cfg.Store,
		faces:        cfg.Faces,
		threshold:    cfg.Threshold,
		log:          cfg.Logger,
		algorithm:    templates.FaceAlgorithm,
		enrolFingers: enrol,
		probeFingers: finger.NewExtractor(probeCfg),
		fingerDPI:    enrol.Config().DPI,
		faceCal:      faceCal,
		fingerCal:    fingerCal,
		maxFMR:       cfg.MaxFMR,
		fingers:      matcher.NewFingerIndex(),
		fingered:     map[string]*subjectInfo{},
		seed:         maphash.MakeSeed(),
	}
	s.index = matcher.NewIndexWithSource(faceDim, faceSource{s})
	s.searches = matcher.NewCoalescer(s.index, 0)
	s.searches.Observe = observeSearchBatch
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// faceDim is the length of a face descriptor of templates.FaceAlgorithm.
const faceDim = 128

// loadBatch is how many face templates load gives the index at a time.
const loadBatch = 4096

// load fills the indexes from the store. It streams the store (Scan) and
// hands the face vectors to the index in batches, decoding into reused
// buffers, so a million-subject gallery loads without a million-fold
// allocation of subjects and vectors; only subjects with fingers, which
// need their prepared fingers kept, go through indexSubject.
func (s *Service) load() error {
	start := time.Now()
	n, err := s.store.Count()
	if err != nil {
		return fmt.Errorf("server: loading index: %w", err)
	}
	// One face a subject is the common case; more grow the index as
	// needed. Reserving the exact room spares the index append's slack.
	s.index.Reserve(n, n)
	subjects := 0
	// Two stages on two goroutines, so that reading Badger overlaps
	// quantising into the index: this one walks the store and decodes
	// into batches, the other adds full batches. Three batch buffers go
	// round between them.
	type batchBuf struct {
		entries []matcher.Entry
		vecs    []float32
		lists   []string // the batch's watchlists, one after another
	}
	free, full := make(chan *batchBuf, 3), make(chan *batchBuf, 3)
	for range 3 {
		free <- &batchBuf{vecs: make([]float32, loadBatch*faceDim)}
	}
	added := make(chan error, 1)
	go func() {
		var err error
		for b := range full {
			if err == nil {
				err = s.index.AddBatch(b.entries)
			}
			b.entries, b.lists = b.entries[:0], b.lists[:0]
			free <- b
		}
		added <- err
	}()
	cur := <-free
	var decoded []templates.Template
	err = s.store.Scan(func(sub *store.IndexSubject) error {
		subjects++
		decoded = decoded[:0]
		for i, raw := range sub.Templates {
			var t templates.Template
			if err := t.UnmarshalBinary(raw); err != nil {
				return fmt.Errorf("server: subject %q: template %d: %w", sub.ID, i, err)
			}
			if s.compatible(t) != nil {
				s.stale++
				continue
			}
			decoded = append(decoded, t)
		}
		switch {
		case len(decoded) == 0:
			return nil
		case len(decoded) == 1 && decoded[0].Modality == templates.ModalityFace:
			// The common case, one face: into the batch, the vector
			// copied into a reused buffer (the index copies it again).
			if len(cur.entries) == loadBatch {
				full <- cur
				cur = <-free
			}
			n := len(cur.entries)
			v := cur.vecs[n*faceDim : (n+1)*faceDim]
			copy(v, decoded[0].Vector)
			l := len(cur.lists)
			cur.lists = append(cur.lists, sub.Watchlists...)
			cur.entries = append(cur.entries, matcher.Entry{SubjectID: string(sub.ID), Vector: v, Watchlists: cur.lists[l:len(cur.lists):len(cur.lists)]})
			return nil
		}
		full := store.Subject{ID: string(sub.ID), Watchlists: slices.Clone(sub.Watchlists)}
		var fingers []fingerRef
		for _, t := range decoded {
			if t.Modality != templates.ModalityFinger {
				full.Templates = append(full.Templates, t)
				continue
			}
			ft, err := matcher.PrepareFinger(*t.Finger)
			if err != nil {
				return fmt.Errorf("server: preparing a finger of subject %q: %w", sub.ID, err)
			}
			fingers = append(fingers, fingerRef{t.Position(), ft})
		}
		if err := s.indexSubject(full, fingers); err != nil {
			return fmt.Errorf("server: indexing subject %q: %w", sub.ID, err)
		}
		return nil
	})
	if len(cur.entries) > 0 {
		full <- cur
	}
	close(full)
	if aerr := <-added; err == nil {
		err = aerr
	}
	if err != nil {
		return fmt.Errorf("server: loading index: %w", err)
	}
	ev := s.log.Info()
	if s.stale > 0 {
		ev = s.log.Warn().Int("stale_templates", s.stale).
			Str("hint", "templates of another algorithm version are not searched; re-enrol those subjects")
	}
	ev.Int("subjects", subjects).Int("templates", s.index.Len()).Int("fingers", s.fingers.Len()).
		Dur("took", time.Since(start)).Msg("index loaded")
	return nil
}

// indexSubject adds a stored subject's compatible face templates and its
// prepared fingers to the indexes. The caller holds the subject's lock (or
// is loading, alone).
func (s *Service) indexSubject(sub store.Subject, fingers []fingerRef) error {
	faces := 0
	for _, t := range sub.Templates {
		if t.Modality != templates.ModalityFace || s.compatible(t) != nil {
			continue
		}
		if err := s.index.Add(matcher.Entry{SubjectID: sub.ID, Vector: t.Vector, Watchlists: sub.Watchlists}); err != nil {
			return err
		}
		faces++
	}
	for _, f := range fingers {
		if err := s.fingers.Add(sub.ID, f.pos, f.t); err != nil {
			return err
		}
	}
	if len(fingers) == 0 {
		return nil
	}
	s.subjectsMu.Lock()
	s.fingered[sub.ID] = &subjectInfo{watchlists: sub.Watchlists, faces: faces, fingers: fingers}
	s.subjectsMu.Unlock()
	return nil
}

// faceSource reads the exact face vectors the index re-scores with from the
// store, the source of truth: templates of another algorithm, and fingers,
// are not in the index and are skipped here too.
type faceSource struct{ s *Service }

func (f faceSource) Vectors(ids []string, fn func(int, []float32)) error {
	return f.s.store.Templates(ids, func(i int, t templates.Template) {
		if t.Modality == templates.ModalityFace && f.s.compatible(t) == nil {
			fn(i, t.Vector)
		}
	})
}

// Subjects counts the subjects with a searchable template: those of the
// face index, and those with fingers only.
func (s *Service) Subjects() int {
	n := s.index.Subjects()
	s.subjectsMu.RLock()
	defer s.subjectsMu.RUnlock()
	for _, info := range s.fingered {
		if info.faces == 0 {
			n++
		}
	}
	return n
}

// unindex removes a subject from the indexes. The caller holds its lock.
func (s *Service) unindex(id string) {
	s.subjectsMu.Lock()
	delete(s.fingered, id)
	s.subjectsMu.Unlock()
	s.index.Remove(id)
	s.fingers.Remove(id)
}

// subject returns what scoring needs of an indexed subject, or nil.
func (s *Service) subject(id string) *subjectInfo {
	s.subjectsMu.RLock()
	info := s.fingered[id]
	s.subjectsMu.RUnlock()
	if info != nil {
		return info
	}
	lists, faces, ok := s.index.Subject(id)
	if !ok {
		return nil
	}
	return &subjectInfo{watchlists: lists, faces: faces}
}

// IndexSize reports the number of searchable templates (faces and fingers).
func (s *Service) IndexSize() int { return s.index.Len() + s.fingers.Len() }

func (s *Service) lock(id string) func() {
	m := &s.locks[maphash.String(s.seed, id)%uint64(len(s.locks))]
	m.Lock()
	return m.Unlock
}

func (s *Service) compatible(t templates.Template) error {
	switch t.Modality {
	case templates.ModalityFace:
		if t.Algorithm != s.algorithm {
			return fmt.Errorf("%w: template made by %s, this server uses %s", templates.ErrIncompatible, t.Algorithm, s.algorithm)
		}
		if len(t.Vector) != faceDim {
			return fmt.Errorf("%w: %d-d vector, want %d", templates.ErrIncompatible, len(t.Vector), faceDim)
		}
	case templates.ModalityFinger:
		if t.Algorithm != templates.FingerAlgorithm {
			return fmt.Errorf("%w: finger template of %s, this server uses %s", templates.ErrIncompatible, t.Algorithm, templates.FingerAlgorithm)
		}
		if t.Finger == nil {
			return fmt.Errorf("%w: finger template without minutiae", templates.ErrIncompatible)
		}
	default:
		return fmt.Errorf("%w: modality %s is not supported", templates.ErrIncompatible, t.Modality)
	}
	return nil
}

func imageStatus(what string, err error) error {
	switch {
	case errors.Is(err, templates.ErrImageTooLarge):
		return status.Errorf(codes.ResourceExhausted, "%s: %v", what, err)
	case errors.Is(err, templates.ErrNoFace), errors.Is(err, templates.ErrMultipleFaces),
		errors.Is(err, templates.ErrImageUnreadable), errors.Is(err, templates.ErrUnsupportedFormat):
		return status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	return status.Errorf(codes.Internal, "%s: extracting face: %v", what, err)
}

func storeStatus(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrInvalidPageToken):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Errorf(codes.Internal, "store: %v", err)
}

// ctxErr turns an expired or cancelled context into its status.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

// DeleteSubject implements pb.MatcherServer.
func (s *Service) DeleteSubject(ctx context.Context, req *pb.DeleteSubjectRequest) (*pb.DeleteSubjectResponse, error) {
	if req.GetSubjectId() == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	unlock := s.lock(req.GetSubjectId())
	defer unlock()
	sub, err := s.store.Delete(req.GetSubjectId())
	if err != nil {
		return nil, storeStatus(err)
	}
	s.unindex(sub.ID)
	return &pb.DeleteSubjectResponse{Subject: subjectProto(sub)}, nil
}

// GetSubject implements pb.MatcherServer.
func (s *Service) GetSubject(ctx context.Context, req *pb.GetSubjectRequest) (*pb.GetSubjectResponse, error) {
	if req.GetSubjectId() == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	sub, err := s.store.Get(req.GetSubjectId())
	if err != nil {
		return nil, storeStatus(err)
	}
	return &pb.GetSubjectResponse{Subject: subjectProto(sub)}, nil
}

// ListSubjects implements pb.MatcherServer.
func (s *Service) ListSubjects(ctx context.Context, req *pb.ListSubjectsRequest) (*pb.ListSubjectsResponse, error) {
	if req.GetPageSize() < 0 || req.GetPageSize() > 1000 {
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d outside 0..1000", req.GetPageSize())
	}
	subs, next, err := s.store.List(store.ListOptions{
		Watchlist: req.GetWatchlist(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, storeStatus(err)
	}
	resp := &pb.ListSubjectsResponse{NextPageToken: next}
	for _, sub := range subs {
		resp.Subjects = append(resp.Subjects, subjectProto(sub))
	}
	return resp, nil
}

// ListWatchlists implements pb.MatcherServer.
func (s *Service) ListWatchlists(ctx context.Context, _ *pb.ListWatchlistsRequest) (*pb.ListWatchlistsResponse, error) {
	lists, err := s.store.Watchlists()
	if err != nil {
		return nil, storeStatus(err)
	}
	resp := &pb.ListWatchlistsResponse{}
	for _, l := range lists {
		resp.Watchlists = append(resp.Watchlists, &pb.Watchlist{Name: l.Name, SubjectCount: int64(l.Subjects)})
	}
	sort.Slice(resp.Watchlists, func(i, j int) bool { return resp.Watchlists[i].Name < resp.Watchlists[j].Name })
	return resp, nil
}

func subjectProto(sub store.Subject) *pb.Subject {
	p := &pb.Subject{
		Id:         sub.ID,
		Name:       sub.Name,
		Metadata:   sub.Metadata,
		Watchlists: sub.Watchlists,
		CreatedAt:  timestamppb.New(sub.Created),
		UpdatedAt:  timestamppb.New(sub.Updated),
	}
	for _, t := range sub.Templates {
		ti := &pb.TemplateInfo{
			Modality:         pb.Modality(t.Modality),
			Algorithm:        t.Algorithm.ID,
			AlgorithmVersion: uint32(t.Algorithm.Version),
		}
		if t.Finger != nil {
			ti.FingerPosition = pb.FingerPosition(t.Finger.Position)
			ti.FingerQuality = int32(t.Finger.Quality)
			ti.Minutiae = int32(len(t.Finger.Minutiae))
		}
		p.Templates = append(p.Templates, ti)
	}
	return p
}

func qualityProto(f templates.Face) *pb.FaceQuality {
	b := f.Box
	return &pb.FaceQuality{
		Box:            &pb.Rect{X: int32(b.Min.X), Y: int32(b.Min.Y), Width: int32(b.Dx()), Height: int32(b.Dy())},
		InterEyePixels: f.Quality.InterEyePixels,
		Sharpness:      f.Quality.Sharpness,
		FaceFraction:   f.Quality.FaceFraction,
		FacesFound:     int32(f.Faces),
	}
}
