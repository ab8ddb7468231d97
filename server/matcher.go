// Package server serves the engine over gRPC: the bordermatch.v1 services
// as adapters between protobuf and the engine's Go types (this file for
// Matcher; gates, admin), the daemon that matchd runs (daemon.go), access
// control, audit and metrics. The matching itself is package engine's;
// errors are mapped to status codes in one place (status.go).
package server

import (
	"context"
	"image"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Service is the bordermatch.v1 Matcher service over an engine.
type Service struct {
	pb.UnimplementedMatcherServer
	eng *engine.Engine
	// node, in a cluster, coordinates the calls over every partition
	// (cluster.go); nil on a single node.
	node *clusterNode
}

// NewService returns the Matcher service of eng.
func NewService(eng *engine.Engine) *Service { return &Service{eng: eng} }

// Engine returns the engine the service serves.
func (s *Service) Engine() *engine.Engine { return s.eng }

// Enroll implements pb.MatcherServer.
func (s *Service) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	samples := make([]engine.Sample, len(req.GetSamples()))
	for i, sm := range req.GetSamples() {
		var err error
		if samples[i], err = sampleOf(sm); err != nil {
			return nil, err
		}
	}
	if s.node != nil {
		return s.node.enroll(ctx, req, samples)
	}
	res, err := s.eng.Enroll(ctx, engine.EnrollRequest{
		SubjectID:       req.GetSubjectId(),
		Name:            req.GetName(),
		Metadata:        req.GetMetadata(),
		Watchlists:      req.GetWatchlists(),
		Samples:         samples,
		NIST:            given(req.GetNistTransaction()),
		ReturnTemplates: req.GetReturnTemplates(),
	})
	if err != nil {
		return nil, err
	}
	resp := &pb.EnrollResponse{Subject: subjectProto(res.Subject), Templates: res.Templates, Nist: nistProto(res.NIST)}
	for _, q := range res.FaceQuality {
		resp.Quality = append(resp.Quality, faceQualityProto(&q))
	}
	resp.FingerQuality = fingerQualityProto(res.FingerQuality)
	return resp, nil
}

// Identify implements pb.MatcherServer.
func (s *Service) Identify(ctx context.Context, req *pb.IdentifyRequest) (*pb.IdentifyResponse, error) {
	p, err := probeOf(req.GetProbe(), req.GetFingers(), req.GetTakeLargestFace())
	if err != nil {
		return nil, err
	}
	p.NIST = given(req.GetNistTransaction())
	if s.node != nil {
		return s.node.identify(ctx, req, p)
	}
	q := engine.Query{TopK: int(req.GetTopK()), Watchlists: req.GetWatchlists(), Threshold: req.Threshold, MaxFMR: req.MaxFmr}
	res, err := s.eng.Identify(ctx, engine.IdentifyRequest{Probe: p, Query: q})
	if err != nil {
		return nil, err
	}
	return identifyProto(res), nil
}

// queryOf validates an identification's options for the gate RPCs, which
// must refuse a bad request before they spend seconds capturing frames
// (engine.Identify validates the same query again, at no cost).
func queryOf(topK int32, threshold *float32, maxFMR *float64, watchlists []string) (engine.Query, error) {
	q := engine.Query{TopK: int(topK), Watchlists: watchlists, Threshold: threshold, MaxFMR: maxFMR}
	return q, q.Validate()
}

func identifyProto(res engine.IdentifyResult) *pb.IdentifyResponse {
	d := res.Decision
	resp := &pb.IdentifyResponse{
		Threshold:      d.Threshold,
		Fused:          d.Fused,
		Rule:           d.Rule,
		MaxFmr:         fusedOnly(d, d.MaxFMR),
		FusedThreshold: fusedOnly(d, d.FusedThreshold),
		Searched:       res.Searched,
		ProbeQuality:   faceQualityProto(res.ProbeQuality),
		FingerQuality:  fingerQualityProto(res.FingerQuality),
		Coverage:       &pb.Coverage{Answered: 1, Total: 1},
		Nist:           nistProto(res.NIST),
	}
	for _, c := range res.Candidates {
		resp.Candidates = append(resp.Candidates, candidateProto(c))
	}
	return resp
}

func candidateProto(c engine.Candidate) *pb.Candidate {
	pc := &pb.Candidate{
		Rank:        int32(c.Rank),
		SubjectId:   c.SubjectID,
		Name:        c.Name,
		Score:       c.Score,
		Watchlists:  c.Watchlists,
		DecisionFmr: c.DecisionFMR,
	}
	fillScores(&c.Scores, &pc.FaceScore, &pc.FaceFmr, &pc.FaceLr, &pc.FingerScores, &pc.FingerScore, &pc.FusedFmr, &pc.FusedScore)
	if c.HasFace {
		pc.FaceAlgorithm = c.FaceAlgorithm.String()
	}
	return pc
}

// fusedOnly reports v for a fused decision, 0 (absent) otherwise, as the
// responses always have.
func fusedOnly(d engine.Decision, v float64) float64 {
	if !d.Fused {
		return 0
	}
	return v
}

// fillScores is the one place a comparison's scores become response
// fields (Candidate and VerifyResponse carry the same ones).
func fillScores(sc *engine.Scores, face **float32, faceFMR, faceLR **float64, fingers *[]*pb.FingerScore, fingerMean **float32, fusedFMR, fusedScore *float64) {
	if sc.HasFace {
		f, fmr := sc.Face, sc.FaceFMR
		*face, *faceFMR = &f, &fmr
		// A candidate without a ratio (0: from a cluster partition of an
		// older version) has it absent rather than a ratio of 0.
		if lr := sc.FaceLR; lr > 0 {
			*faceLR = &lr
		}
	}
	for _, f := range sc.Fingers {
		*fingers = append(*fingers, &pb.FingerScore{Position: pb.FingerPosition(f.Position), Score: f.Score, Fmr: f.FMR, Compared: f.Compared, Lr: f.LR})
	}
	if sc.HasFinger {
		m := sc.FingerMean
		*fingerMean = &m
	}
	*fusedFMR, *fusedScore = sc.FusedFMR, sc.FusedScore
}

// Verify implements pb.MatcherServer.
func (s *Service) Verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	p, err := probeOf(req.GetProbe(), req.GetFingers(), req.GetTakeLargestFace())
	if err != nil {
		return nil, err
	}
	vr := engine.VerifyRequest{Probe: p, Threshold: req.Threshold, MaxFMR: req.MaxFmr}
	switch ref := req.GetReference().(type) {
	case *pb.VerifyRequest_SubjectId:
		if ref.SubjectId == "" {
			return nil, status.Error(codes.InvalidArgument, "reference: subject_id is empty")
		}
		if s.node != nil {
			// The partition holding the subject verifies (the probe is
			// checked above, before it travels).
			return s.node.verify(ctx, req)
		}
		vr.SubjectID = ref.SubjectId
	case *pb.VerifyRequest_ReferenceSample:
		if rs := ref.ReferenceSample; rs != nil && rs.GetKind() != nil {
			sm, err := sampleOf(rs)
			if err != nil {
				return nil, err
			}
			vr.Reference = &sm
		}
	}
	for _, f := range req.GetReferenceFingers() {
		fs, err := fingerOf(f)
		if err != nil {
			return nil, err
		}
		vr.ReferenceFingers = append(vr.ReferenceFingers, fs)
	}
	res, err := s.eng.Verify(ctx, vr)
	if err != nil {
		return nil, err
	}
	resp := verifyProto(res)
	resp.PassiveAuth = req.GetPassiveAuth()
	return resp, nil
}

// verifyProto is the answer to a 1:1 comparison (Verify, CaptureAndVerify).
func verifyProto(res engine.VerifyResult) *pb.VerifyResponse {
	d := res.Decision
	resp := &pb.VerifyResponse{
		Match:                  res.Match,
		Score:                  res.Score,
		Rule:                   d.Rule,
		DecisionFmr:            res.DecisionFMR,
		Threshold:              d.Threshold,
		Fused:                  d.Fused,
		MaxFmr:                 fusedOnly(d, d.MaxFMR),
		FusedThreshold:         fusedOnly(d, d.FusedThreshold),
		ProbeQuality:           faceQualityProto(res.ProbeQuality),
		ReferenceQuality:       faceQualityProto(res.ReferenceQuality),
		ProbeFingerQuality:     fingerQualityProto(res.ProbeFingerQuality),
		ReferenceFingerQuality: fingerQualityProto(res.ReferenceFingerQuality),
		ReferenceRecord:        faceRecordProto(res.ReferenceRecord),
	}
	fillScores(&res.Scores, &resp.FaceScore, &resp.FaceFmr, &resp.FaceLr, &resp.FingerScores, &resp.FingerScore, &resp.FusedFmr, &resp.FusedScore)
	if res.HasFace {
		resp.FaceAlgorithm = res.FaceAlgorithm.String()
	}
	return resp
}

func faceRecordProto(r *engine.FaceRecordInfo) *pb.FaceRecordInfo {
	if r == nil {
		return nil
	}
	return &pb.FaceRecordInfo{
		Container: r.Container, Format: r.Format, Faces: int32(r.Faces), ImageType: r.ImageType,
		Width: int32(r.Width), Height: int32(r.Height), FaceImageType: r.FaceImageType, Quality: int32(r.Quality),
	}
}

// DeleteSubject implements pb.MatcherServer.
func (s *Service) DeleteSubject(ctx context.Context, req *pb.DeleteSubjectRequest) (*pb.DeleteSubjectResponse, error) {
	if s.node != nil {
		return s.node.deleteSubject(ctx, req)
	}
	sub, err := s.eng.Delete(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	return &pb.DeleteSubjectResponse{Subject: subjectProto(sub)}, nil
}

// GetSubject implements pb.MatcherServer.
func (s *Service) GetSubject(ctx context.Context, req *pb.GetSubjectRequest) (*pb.GetSubjectResponse, error) {
	if s.node != nil {
		return s.node.getSubject(ctx, req)
	}
	sub, err := s.eng.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	return &pb.GetSubjectResponse{Subject: subjectProto(sub)}, nil
}

// ListSubjects implements pb.MatcherServer.
func (s *Service) ListSubjects(ctx context.Context, req *pb.ListSubjectsRequest) (*pb.ListSubjectsResponse, error) {
	if s.node != nil {
		return s.node.listSubjects(ctx, req)
	}
	subs, next, err := s.eng.List(ctx, store.ListOptions{
		Watchlist: req.GetWatchlist(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, err
	}
	resp := &pb.ListSubjectsResponse{NextPageToken: next}
	for _, sub := range subs {
		resp.Subjects = append(resp.Subjects, subjectProto(sub))
	}
	return resp, nil
}

// ListWatchlists implements pb.MatcherServer.
func (s *Service) ListWatchlists(ctx context.Context, _ *pb.ListWatchlistsRequest) (*pb.ListWatchlistsResponse, error) {
	if s.node != nil {
		return s.node.listWatchlists(ctx)
	}
	lists, err := s.eng.Watchlists(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListWatchlistsResponse{}
	for _, l := range lists {
		resp.Watchlists = append(resp.Watchlists, &pb.Watchlist{Name: l.Name, SubjectCount: int64(l.Subjects)})
	}
	return resp, nil
}

// sampleOf, fingerOf and probeOf turn request messages into the engine's
// samples; they check only what the protobuf types allow and the engine's
// cannot express (a negative position).
func sampleOf(sm *pb.Sample) (engine.Sample, error) {
	switch k := sm.GetKind().(type) {
	case *pb.Sample_FaceImage:
		return engine.Sample{FaceImage: nonNil(k.FaceImage)}, nil
	case *pb.Sample_Template:
		return engine.Sample{Template: nonNil(k.Template)}, nil
	case *pb.Sample_Finger:
		fs, err := fingerOf(k.Finger)
		return engine.Sample{Finger: &fs}, err
	case *pb.Sample_FaceRecord:
		return engine.Sample{FaceRecord: nonNil(k.FaceRecord)}, nil
	}
	return engine.Sample{}, nil // the engine names what is missing
}

func fingerOf(fs *pb.FingerSample) (engine.FingerSample, error) {
	if p := fs.GetPosition(); p < 0 || p > pb.FingerPosition(minutiae.LeftLittle) {
		return engine.FingerSample{}, status.Errorf(codes.InvalidArgument, "finger position %d outside 0..10", p)
	}
	out := engine.FingerSample{Position: minutiae.Position(fs.GetPosition()), Format: fs.GetFormat(), DPI: int(fs.GetDpi())}
	switch k := fs.GetKind().(type) {
	case *pb.FingerSample_Image:
		out.Image = nonNil(k.Image)
	case *pb.FingerSample_Record:
		out.Record = nonNil(k.Record)
	case *pb.FingerSample_Template:
		out.Template = nonNil(k.Template)
	}
	return out, nil
}

func probeOf(sm *pb.Sample, fingers []*pb.FingerSample, takeLargest bool) (engine.Probe, error) {
	p := engine.Probe{TakeLargestFace: takeLargest}
	if sm.GetKind() != nil {
		x, err := sampleOf(sm)
		if err != nil {
			return p, err
		}
		p.Sample = &x
	}
	for _, f := range fingers {
		fs, err := fingerOf(f)
		if err != nil {
			return p, err
		}
		p.Fingers = append(p.Fingers, fs)
	}
	return p, nil
}

// given is a bytes field that is set: proto3 cannot tell an empty one
// from an absent one, so both are absent.
func given(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nistProto(u *engine.NISTUse) *pb.NISTUse {
	if u == nil {
		return nil
	}
	return &pb.NISTUse{Domain: u.Domain, Tot: u.TOT, Faces: int32(u.Faces), Fingers: int32(u.Fingers), Skipped: u.Skipped, Attributes: u.Attributes}
}

// ExportSubject implements pb.MatcherServer.
func (s *Service) ExportSubject(ctx context.Context, req *pb.ExportSubjectRequest) (*pb.ExportSubjectResponse, error) {
	if f := req.GetFormat(); f != "" && f != "an2k" {
		return nil, status.Errorf(codes.InvalidArgument, "format %q: the only format is an2k (ANSI/NIST-ITL 1-2011 traditional encoding)", f)
	}
	if s.node != nil {
		return s.node.exportSubject(ctx, req)
	}
	ex, err := s.eng.ExportNIST(ctx, req.GetSubjectId(), engine.ExportOptions{
		Profile: req.GetProfile(), TOT: req.GetTot(), Originator: req.GetOriginator(), Destination: req.GetDestination(),
	})
	if err != nil {
		return nil, err
	}
	resp := &pb.ExportSubjectResponse{Data: ex.Data, Format: "an2k", Records: map[int32]int32{}, LeftOut: ex.LeftOut}
	for t, n := range ex.Records {
		resp.Records[int32(t)] = int32(n)
	}
	return resp, nil
}

// nonNil keeps "given but empty" apart from "not given": the engine tells
// them by nil.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func subjectProto(sub store.Subject) *pb.Subject {
	p := &pb.Subject{
		Id:          sub.ID,
		Name:        sub.Name,
		Metadata:    sub.Metadata,
		Watchlists:  sub.Watchlists,
		CreatedAt:   timestamppb.New(sub.Created),
		UpdatedAt:   timestamppb.New(sub.Updated),
		SampleCount: int32(sub.SampleCount),
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

func faceQualityProto(q *engine.FaceQuality) *pb.FaceQuality {
	if q == nil {
		return nil
	}
	return &pb.FaceQuality{
		Box:                rectProto(q.Box),
		InterEyePixels:     q.InterEyePixels,
		Sharpness:          q.Sharpness,
		FaceFraction:       q.FaceFraction,
		FacesFound:         int32(q.FacesFound),
		Detector:           q.Detector,
		DetectorConfidence: q.DetectorConfidence,
		Yaw:                q.Yaw,
		Pitch:              q.Pitch,
		Roll:               q.Roll,
	}
}

func rectProto(b image.Rectangle) *pb.Rect {
	return &pb.Rect{X: int32(b.Min.X), Y: int32(b.Min.Y), Width: int32(b.Dx()), Height: int32(b.Dy())}
}

func fingerQualityProto(qs []engine.FingerQuality) []*pb.FingerQuality {
	var out []*pb.FingerQuality
	for _, q := range qs {
		out = append(out, &pb.FingerQuality{
			Position:       pb.FingerPosition(q.Position),
			Quality:        int32(q.Quality),
			Minutiae:       int32(q.Minutiae),
			UsableMinutiae: int32(q.UsableMinutiae),
			Width:          int32(q.Width),
			Height:         int32(q.Height),
			Dpi:            int32(q.DPI),
			Format:         q.Format,
		})
	}
	return out
}
