// Package server implements the bordermatch.v1 Matcher gRPC service: it turns
// samples into templates, keeps the Badger store (the source of truth) and the
// in-memory matcher index in step, and answers 1:N and 1:1 queries.
package server

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
)

// FaceExtractor makes face templates from photos. templates.FaceExtractor is
// the production implementation.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// Limits of a single request, checked before any work is done.
const (
	MaxSamples  = 16
	MaxTopK     = 100
	DefaultTopK = 10
)

// Config configures a Service.
type Config struct {
	Store *store.Store
	Faces FaceExtractor
	// Threshold is the default decision threshold on the cosine score.
	Threshold float32
	Logger    zerolog.Logger
}

// Service is the Matcher gRPC service.
type Service struct {
	pb.UnimplementedMatcherServer

	store     *store.Store
	faces     FaceExtractor
	threshold float32
	log       zerolog.Logger
	algorithm templates.Algorithm

	index *matcher.Index
	// locks serialises the store-then-index updates of one subject id, so a
	// delete racing an enrolment of the same id cannot leave a ghost entry in
	// the index. Striped: ids hash onto a fixed set of mutexes.
	locks [256]sync.Mutex
	seed  maphash.Seed

	// stale counts stored templates of another algorithm version, which are
	// kept on disk but not searched until the subject is re-enrolled.
	stale int
}

// New opens the service over an open store and loads the index from it.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Faces == nil {
		return nil, errors.New("server: Store and Faces are required")
	}
	if cfg.Threshold < -1 || cfg.Threshold > 1 {
		return nil, fmt.Errorf("server: threshold %v outside [-1, 1]", cfg.Threshold)
	}
	s := &Service{
		store:     cfg.Store,
		faces:     cfg.Faces,
		threshold: cfg.Threshold,
		log:       cfg.Logger,
		algorithm: templates.FaceAlgorithm,
		index:     matcher.NewIndex(faceDim),
		seed:      maphash.MakeSeed(),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// faceDim is the length of a face descriptor of templates.FaceAlgorithm.
const faceDim = 128

func (s *Service) load() error {
	start := time.Now()
	subjects := 0
	err := s.store.Each(func(sub store.Subject) error {
		subjects++
		for _, t := range sub.Templates {
			if s.compatible(t) != nil {
				s.stale++
				continue
			}
			if err := s.index.Add(matcher.Entry{SubjectID: sub.ID, Vector: t.Vector, Watchlists: sub.Watchlists}); err != nil {
				return fmt.Errorf("server: indexing subject %q: %w", sub.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("server: loading index: %w", err)
	}
	ev := s.log.Info()
	if s.stale > 0 {
		ev = s.log.Warn().Int("stale_templates", s.stale).
			Str("hint", "templates of another algorithm version are not searched; re-enrol those subjects")
	}
	ev.Int("subjects", subjects).Int("templates", s.index.Len()).
		Dur("took", time.Since(start)).Msg("index loaded")
	return nil
}

// IndexSize reports the number of searchable templates.
func (s *Service) IndexSize() int { return s.index.Len() }

func (s *Service) lock(id string) func() {
	m := &s.locks[maphash.String(s.seed, id)%uint64(len(s.locks))]
	m.Lock()
	return m.Unlock
}

func (s *Service) compatible(t templates.Template) error {
	if t.Modality != templates.ModalityFace {
		return fmt.Errorf("%w: modality %s is not supported yet", templates.ErrIncompatible, t.Modality)
	}
	if t.Algorithm != s.algorithm {
		return fmt.Errorf("%w: template made by %s, this server uses %s", templates.ErrIncompatible, t.Algorithm, s.algorithm)
	}
	if len(t.Vector) != faceDim {
		return fmt.Errorf("%w: %d-d vector, want %d", templates.ErrIncompatible, len(t.Vector), faceDim)
	}
	return nil
}

// template turns a sample into a template. quality is nil for a template sample.
func (s *Service) template(sm *pb.Sample, takeLargest bool, what string) (templates.Template, *pb.FaceQuality, error) {
	switch k := sm.GetKind().(type) {
	case *pb.Sample_FaceImage:
		face, err := s.faces.Extract(k.FaceImage, templates.ExtractOptions{TakeLargest: takeLargest})
		if err != nil {
			return templates.Template{}, nil, imageStatus(what, err)
		}
		return face.Template, qualityProto(face), nil
	case *pb.Sample_Template:
		var t templates.Template
		if err := t.UnmarshalBinary(k.Template); err != nil {
			return t, nil, status.Errorf(codes.InvalidArgument, "%s: %v", what, err)
		}
		if err := s.compatible(t); err != nil {
			return t, nil, status.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
		}
		return t, nil, nil
	default:
		return templates.Template{}, nil, status.Errorf(codes.InvalidArgument, "%s: no image or template given", what)
	}
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

func (s *Service) decisionThreshold(override *float32) (float32, error) {
	if override == nil {
		return s.threshold, nil
	}
	if *override < -1 || *override > 1 {
		return 0, status.Errorf(codes.InvalidArgument, "threshold %v outside [-1, 1]", *override)
	}
	return *override, nil
}

// Enroll implements pb.MatcherServer.
func (s *Service) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	n := len(req.GetSamples())
	if n == 0 {
		return nil, status.Error(codes.InvalidArgument, "enrol: at least one sample is required")
	}
	if n > MaxSamples {
		return nil, status.Errorf(codes.InvalidArgument, "enrol: %d samples, at most %d", n, MaxSamples)
	}
	if req.GetSubjectId() == "" {
		return nil, status.Error(codes.InvalidArgument, "enrol: subject_id is required")
	}
	// Cheap refusal before the expensive extraction; Create re-checks atomically.
	if _, err := s.store.Get(req.GetSubjectId()); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "subject %q already exists", req.GetSubjectId())
	}
	resp := &pb.EnrollResponse{}
	sub := store.Subject{
		ID:         req.GetSubjectId(),
		Name:       req.GetName(),
		Metadata:   req.GetMetadata(),
		Watchlists: req.GetWatchlists(),
	}
	for i, sm := range req.GetSamples() {
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		t, q, err := s.template(sm, false, fmt.Sprintf("sample %d", i+1))
		if err != nil {
			return nil, err
		}
		if q != nil {
			resp.Quality = append(resp.Quality, q)
		}
		if req.GetReturnTemplates() {
			b, err := t.MarshalBinary()
			if err != nil {
				return nil, status.Errorf(codes.Internal, "encoding template: %v", err)
			}
			resp.Templates = append(resp.Templates, b)
		}
		sub.Templates = append(sub.Templates, t)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	unlock := s.lock(sub.ID)
	defer unlock()
	created, err := s.store.Create(sub)
	if err != nil {
		return nil, storeStatus(err)
	}
	for _, t := range created.Templates {
		if err := s.index.Add(matcher.Entry{SubjectID: created.ID, Vector: t.Vector, Watchlists: created.Watchlists}); err != nil {
			// The store holds the subject; the index will have it after a
			// restart. Say so rather than pretend the enrolment failed.
			s.log.Error().Err(err).Str("subject", created.ID).Msg("indexing enrolled subject")
			return nil, status.Errorf(codes.Internal, "subject stored but not indexed: %v", err)
		}
	}
	resp.Subject = subjectProto(created)
	return resp, nil
}

// Identify implements pb.MatcherServer.
func (s *Service) Identify(ctx context.Context, req *pb.IdentifyRequest) (*pb.IdentifyResponse, error) {
	k := int(req.GetTopK())
	switch {
	case k == 0:
		k = DefaultTopK
	case k < 0 || k > MaxTopK:
		return nil, status.Errorf(codes.InvalidArgument, "top_k %d outside 1..%d", k, MaxTopK)
	}
	thr, err := s.decisionThreshold(req.Threshold)
	if err != nil {
		return nil, err
	}
	probe, q, err := s.template(req.GetProbe(), req.GetTakeLargestFace(), "probe")
	if err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	hits, err := s.index.Search(probe.Vector, matcher.SearchOptions{K: k, Watchlists: req.GetWatchlists()})
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "probe: %v", err)
	}
	resp := &pb.IdentifyResponse{Threshold: thr, ProbeQuality: q, Searched: int64(s.index.Len())}
	for _, h := range hits {
		if h.Score < thr {
			break
		}
		sub, err := s.store.Get(h.SubjectID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted while we searched
		} else if err != nil {
			return nil, storeStatus(err)
		}
		resp.Candidates = append(resp.Candidates, &pb.Candidate{
			Rank:       int32(len(resp.Candidates) + 1),
			SubjectId:  sub.ID,
			Name:       sub.Name,
			Score:      h.Score,
			Watchlists: sub.Watchlists,
		})
	}
	return resp, nil
}

// Verify implements pb.MatcherServer.
func (s *Service) Verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	thr, err := s.decisionThreshold(req.Threshold)
	if err != nil {
		return nil, err
	}
	probe, pq, err := s.template(req.GetProbe(), req.GetTakeLargestFace(), "probe")
	if err != nil {
		return nil, err
	}
	resp := &pb.VerifyResponse{Threshold: thr, ProbeQuality: pq}
	switch ref := req.GetReference().(type) {
	case *pb.VerifyRequest_ReferenceSample:
		t, rq, err := s.template(ref.ReferenceSample, req.GetTakeLargestFace(), "reference")
		if err != nil {
			return nil, err
		}
		resp.ReferenceQuality = rq
		resp.Score = matcher.Cosine(probe.Vector, t.Vector)
	case *pb.VerifyRequest_SubjectId:
		score, ok, err := s.index.Verify(probe.Vector, ref.SubjectId)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "probe: %v", err)
		}
		if !ok {
			if _, err := s.store.Get(ref.SubjectId); err != nil {
				return nil, storeStatus(err)
			}
			return nil, status.Errorf(codes.FailedPrecondition,
				"subject %q has no template of algorithm %s: re-enrol it", ref.SubjectId, s.algorithm)
		}
		resp.Score = score
	default:
		return nil, status.Error(codes.InvalidArgument, "reference: give a reference sample or a subject_id")
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	resp.Match = resp.Score >= thr
	return resp, nil
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
	s.index.Remove(sub.ID)
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
		p.Templates = append(p.Templates, &pb.TemplateInfo{
			Modality:         pb.Modality(t.Modality),
			Algorithm:        t.Algorithm.ID,
			AlgorithmVersion: uint32(t.Algorithm.Version),
		})
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
