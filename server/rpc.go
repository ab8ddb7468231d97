package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Enroll implements pb.MatcherServer.
func (s *Service) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	n := len(req.GetSamples())
	if n == 0 {
		return nil, status.Error(codes.InvalidArgument, "enrol: at least one sample is required")
	}
	nf, nfaces := 0, 0
	for _, sm := range req.GetSamples() {
		switch sm.GetKind().(type) {
		case *pb.Sample_Finger:
			nf++
		case *pb.Sample_FaceImage:
			nfaces++
		}
	}
	if n > MaxSamples+MaxFingerSamples || nf > MaxFingerSamples || nfaces > MaxSamples {
		return nil, status.Errorf(codes.InvalidArgument, "enrol: %d samples (%d face images, %d fingers), at most %d faces and %d fingers",
			n, nfaces, nf, MaxSamples, MaxFingerSamples)
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
	var fingers []fingerRef
	faces := 0
	for i, sm := range req.GetSamples() {
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		x, err := s.template(sm, false, true, fmt.Sprintf("sample %d", i+1))
		if err != nil {
			return nil, err
		}
		if x.faceQ != nil {
			resp.Quality = append(resp.Quality, x.faceQ)
		}
		if x.fingerQ != nil {
			resp.FingerQuality = append(resp.FingerQuality, x.fingerQ)
		}
		if x.ft != nil {
			fingers = append(fingers, fingerRef{x.t.Position(), x.ft})
		} else {
			faces++
		}
		if req.GetReturnTemplates() {
			b, err := x.t.MarshalBinary()
			if err != nil {
				return nil, status.Errorf(codes.Internal, "encoding template: %v", err)
			}
			resp.Templates = append(resp.Templates, b)
		}
		sub.Templates = append(sub.Templates, x.t)
	}
	// Finger templates given as Sample.template count too.
	if faces > MaxSamples || len(fingers) > MaxFingerSamples {
		return nil, status.Errorf(codes.InvalidArgument, "enrol: %d faces and %d fingers, at most %d and %d", faces, len(fingers), MaxSamples, MaxFingerSamples)
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	// Create returns once the subject is durable; concurrent enrolments
	// share one commit (store/commit.go). The index is updated only then,
	// and under the id's lock held across both, so a delete racing this
	// enrolment cannot leave a ghost in the index.
	unlock := s.lock(sub.ID)
	defer unlock()
	created, err := s.store.Create(sub)
	if err != nil {
		return nil, storeStatus(err)
	}
	// The fingers were prepared from the templates as the store holds them
	// (sample.fingerView), so the index needs nothing from created but ids.
	if err := s.indexSubject(created, fingers); err != nil {
		// The store holds the subject; the index will have it after a
		// restart. Say so rather than pretend the enrolment failed.
		s.unindex(created.ID)
		s.log.Error().Err(err).Str("subject", created.ID).Msg("indexing enrolled subject")
		return nil, status.Errorf(codes.Internal, "subject stored but not indexed: %v", err)
	}
	resp.Subject = subjectProto(created)
	return resp, nil
}

// decision is how a request is decided: on the face cosine (a face-only
// probe without max_fmr, as before fingers existed) or on the fused FMR.
type decision struct {
	fused     bool
	threshold float32 // cosine
	maxFMR    float64
}

func (s *Service) decision(p probe, threshold *float32, maxFMR *float64) (decision, error) {
	d := decision{threshold: s.threshold, maxFMR: s.maxFMR}
	if threshold != nil && maxFMR != nil {
		return d, status.Error(codes.InvalidArgument, "give threshold (a face cosine) or max_fmr, not both")
	}
	if threshold != nil {
		if len(p.fingers) > 0 {
			return d, status.Error(codes.InvalidArgument, "threshold is a face cosine; a probe with fingers is decided on max_fmr")
		}
		if *threshold < -1 || *threshold > 1 {
			return d, status.Errorf(codes.InvalidArgument, "threshold %v outside [-1, 1]", *threshold)
		}
		d.threshold = *threshold
	}
	if maxFMR != nil {
		if !(*maxFMR > 0 && *maxFMR < 1) {
			return d, status.Errorf(codes.InvalidArgument, "max_fmr %v outside (0, 1)", *maxFMR)
		}
		d.maxFMR = *maxFMR
	}
	d.fused = len(p.fingers) > 0 || maxFMR != nil
	return d, nil
}

// scores is one comparison of a probe with a subject or a reference, per
// modality and fused.
type scores struct {
	face       float32
	faceFMR    float64
	hasFace    bool
	fingers    []*pb.FingerScore
	fingerMean float32
	hasFinger  bool
	fusedFMR   float64
}

// fuse computes the FMRs and the fused FMR of a comparison. faceN is the
// number of face templates the face score is the best of; fingerN[i] the
// number of templates probe finger i was compared with (0: none).
func (s *Service) fuse(sc *scores, faceN int, fingerScore []float32, fingerN []int, positions []minutiae.Position) {
	var fmrs []float64
	if sc.hasFace {
		sc.faceFMR = bestOfFMR(s.faceCal.FMRAt(float64(sc.face)), faceN)
		fmrs = append(fmrs, sc.faceFMR)
	}
	var sum float32
	for i, v := range fingerScore {
		fsc := &pb.FingerScore{Position: pb.FingerPosition(positions[i]), Score: v, Fmr: 1}
		if fingerN[i] > 0 {
			fsc.Compared = true
			fsc.Fmr = bestOfFMR(s.fingerCal.FMRAt(float64(v)), fingerN[i])
			fmrs = append(fmrs, fsc.Fmr)
			sc.hasFinger = true
		}
		sum += v
		sc.fingers = append(sc.fingers, fsc)
	}
	if len(fingerScore) > 0 {
		sc.fingerMean = sum / float32(len(fingerScore))
	}
	sc.fusedFMR = fuseFMR(fmrs)
}

// pass reports whether a comparison passes the decision, and its score on
// the decision's scale.
func (d decision) pass(sc *scores) (bool, float32) {
	if !d.fused {
		return sc.face >= d.threshold, sc.face
	}
	return sc.fusedFMR <= d.maxFMR, float32(fusedScore(sc.fusedFMR))
}

// compatibleFingers counts a subject's fingers a probe finger is compared
// with: same position, or either unknown.
func compatibleFingers(fs []fingerRef, pos minutiae.Position) int {
	n := 0
	for _, f := range fs {
		if f.pos == pos || f.pos == minutiae.PositionUnknown || pos == minutiae.PositionUnknown {
			n++
		}
	}
	return n
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
	if err := validThreshold(req.Threshold, req.MaxFmr); err != nil {
		return nil, err
	}
	p, err := s.probe(req.GetProbe(), req.GetFingers(), req.GetTakeLargestFace(), "probe")
	if err != nil {
		return nil, err
	}
	return s.identify(ctx, p, identifyQuery{k: k, watchlists: req.GetWatchlists(), threshold: req.Threshold, maxFMR: req.MaxFmr})
}

// identifyQuery is what an identification asks besides its probe. k is
// already checked (1..MaxTopK), threshold and maxFMR are the request's.
type identifyQuery struct {
	k          int
	watchlists []string
	threshold  *float32
	maxFMR     *float64
}

// identify searches the indexes with a probe made from a request's samples
// (Identify) or from a gate camera's best shot (gates.go).
func (s *Service) identify(ctx context.Context, p probe, q identifyQuery) (*pb.IdentifyResponse, error) {
	k := q.k
	d, err := s.decision(p, q.threshold, q.maxFMR)
	if err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	resp := &pb.IdentifyResponse{Threshold: d.threshold, FingerQuality: p.fingerQuality(), Fused: d.fused}
	if d.fused {
		resp.MaxFmr = d.maxFMR
		resp.FusedThreshold = fusedScore(d.maxFMR)
	}
	if p.face != nil {
		resp.ProbeQuality = p.face.faceQ
	}
	// Candidates come from each modality's index; with more than one
	// probe modality or finger the fused rank can differ from any one
	// index's, so each gives its MaxTopK best.
	pool := k
	if d.fused {
		pool = MaxTopK
	}
	lists := q.watchlists
	faceHits := map[string]float32{}
	var order []string // candidates in the order found, for determinism
	if p.face != nil {
		resp.Searched += int64(s.index.Len())
		hits, err := s.searches.Search(ctx, p.face.t.Vector, matcher.SearchOptions{K: pool, Watchlists: lists})
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "probe: %v", err)
		}
		for _, h := range hits {
			faceHits[h.SubjectID] = h.Score
			order = append(order, h.SubjectID)
		}
	}
	// One search per probe finger: the per-finger scores are what the
	// fusion needs, and the finger index's cost is per probe finger anyway.
	fingerHits := make([]map[string]float32, len(p.fingers))
	if len(p.fingers) > 0 {
		resp.Searched += int64(s.fingers.Len())
	}
	for i, f := range p.fingers {
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		// The finger index has no watchlists: ask for every shortlisted
		// subject and filter here.
		hits, err := s.fingers.SearchFingers(map[minutiae.Position]*matcher.FingerTemplate{f.t.Position(): f.ft},
			matcher.SearchOptions{K: math.MaxInt32})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "finger search: %v", err)
		}
		fingerHits[i] = map[string]float32{}
		taken := 0
		for _, h := range hits {
			if len(lists) > 0 && !s.onLists(h.SubjectID, lists) {
				continue
			}
			fingerHits[i][h.SubjectID] = h.Score
			if taken < pool {
				taken++
				if _, dup := faceHits[h.SubjectID]; !dup {
					order = append(order, h.SubjectID)
				}
			}
		}
	}
	type cand struct {
		id    string
		sc    scores
		score float32
	}
	var cands []cand
	seen := map[string]bool{}
	positions := make([]minutiae.Position, len(p.fingers))
	for i, f := range p.fingers {
		positions[i] = f.t.Position()
	}
	for _, id := range order {
		if seen[id] {
			continue
		}
		seen[id] = true
		info := s.subject(id)
		if info == nil {
			continue // deleted while we searched
		}
		var sc scores
		if p.face != nil && info.faces > 0 {
			v, ok := faceHits[id]
			if !ok {
				v, ok, _ = s.index.Verify(p.face.t.Vector, id)
			}
			sc.face, sc.hasFace = v, ok
		}
		fs := make([]float32, len(p.fingers))
		fn := make([]int, len(p.fingers))
		for i := range p.fingers {
			fs[i] = fingerHits[i][id] // absent: not shortlisted, or no finger to compare
			fn[i] = compatibleFingers(info.fingers, positions[i])
		}
		s.fuse(&sc, info.faces, fs, fn, positions)
		if !sc.hasFace && !sc.hasFinger {
			continue
		}
		ok, score := d.pass(&sc)
		if !ok {
			continue
		}
		cands = append(cands, cand{id, sc, score})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.sc.fusedFMR, b.sc.fusedFMR); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, c := range cands {
		if len(resp.Candidates) == k {
			break
		}
		sub, err := s.store.Get(c.id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted while we searched
		} else if err != nil {
			return nil, storeStatus(err)
		}
		pc := &pb.Candidate{
			Rank:       int32(len(resp.Candidates) + 1),
			SubjectId:  sub.ID,
			Name:       sub.Name,
			Score:      c.score,
			Watchlists: sub.Watchlists,
		}
		c.sc.fill(pc)
		resp.Candidates = append(resp.Candidates, pc)
	}
	return resp, nil
}

func (sc *scores) fill(c *pb.Candidate) {
	if sc.hasFace {
		c.FaceScore = &sc.face
		c.FaceFmr = &sc.faceFMR
	}
	c.FingerScores = sc.fingers
	if sc.hasFinger {
		c.FingerScore = &sc.fingerMean
	}
	c.FusedFmr = sc.fusedFMR
	c.FusedScore = fusedScore(sc.fusedFMR)
}

// validThreshold checks the ranges before any extraction is paid for.
func validThreshold(thr *float32, maxFMR *float64) error {
	if thr != nil && (*thr < -1 || *thr > 1 || math.IsNaN(float64(*thr))) {
		return status.Errorf(codes.InvalidArgument, "threshold %v outside [-1, 1]", *thr)
	}
	if maxFMR != nil && !(*maxFMR > 0 && *maxFMR < 1) {
		return status.Errorf(codes.InvalidArgument, "max_fmr %v outside (0, 1)", *maxFMR)
	}
	return nil
}

func (s *Service) onLists(id string, lists []string) bool {
	info := s.subject(id)
	if info == nil {
		return false
	}
	for _, l := range lists {
		if slices.Contains(info.watchlists, l) {
			return true
		}
	}
	return false
}

// Verify implements pb.MatcherServer.
func (s *Service) Verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	if err := validThreshold(req.Threshold, req.MaxFmr); err != nil {
		return nil, err
	}
	p, err := s.probe(req.GetProbe(), req.GetFingers(), req.GetTakeLargestFace(), "probe")
	if err != nil {
		return nil, err
	}
	d, err := s.decision(p, req.Threshold, req.MaxFmr)
	if err != nil {
		return nil, err
	}
	resp := &pb.VerifyResponse{Threshold: d.threshold, ProbeFingerQuality: p.fingerQuality(), Fused: d.fused}
	if d.fused {
		resp.MaxFmr = d.maxFMR
		resp.FusedThreshold = fusedScore(d.maxFMR)
	}
	if p.face != nil {
		resp.ProbeQuality = p.face.faceQ
	}
	var sc scores
	positions := make([]minutiae.Position, len(p.fingers))
	for i, f := range p.fingers {
		positions[i] = f.t.Position()
	}
	fs := make([]float32, len(p.fingers))
	fn := make([]int, len(p.fingers))
	faceN := 1
	switch ref := req.GetReference().(type) {
	case *pb.VerifyRequest_SubjectId:
		if len(req.GetReferenceFingers()) > 0 {
			return nil, status.Error(codes.InvalidArgument, "reference: give reference fingers or a subject_id, not both")
		}
		info := s.subject(ref.SubjectId)
		if info == nil {
			if _, err := s.store.Get(ref.SubjectId); err != nil {
				return nil, storeStatus(err)
			}
			return nil, status.Errorf(codes.FailedPrecondition,
				"subject %q has no template this server can compare: re-enrol it", ref.SubjectId)
		}
		if p.face != nil && info.faces > 0 {
			v, ok, err := s.index.Verify(p.face.t.Vector, ref.SubjectId)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "probe: %v", err)
			}
			sc.face, sc.hasFace = v, ok
			faceN = info.faces
		}
		for i, f := range p.fingers {
			fs[i], fn[i] = s.bestFinger(f, info.fingers)
		}
		if p.face != nil && !sc.hasFace && len(p.fingers) == 0 {
			return nil, status.Errorf(codes.FailedPrecondition,
				"subject %q has no face template of algorithm %s: re-enrol it", ref.SubjectId, s.algorithm)
		}
	case *pb.VerifyRequest_ReferenceSample, nil:
		var refs []fingerRef
		var refQ []*pb.FingerQuality
		if rs := req.GetReferenceSample(); rs != nil {
			x, err := s.template(rs, req.GetTakeLargestFace(), false, "reference")
			if err != nil {
				return nil, err
			}
			if x.ft != nil {
				refs = append(refs, fingerRef{x.t.Position(), x.ft})
				refQ = append(refQ, x.fingerQ)
			} else {
				resp.ReferenceQuality = x.faceQ
				if p.face != nil {
					sc.face, sc.hasFace = matcher.Cosine(p.face.t.Vector, x.t.Vector), true
				}
			}
		}
		if len(req.GetReferenceFingers()) > MaxFingerSamples {
			return nil, status.Errorf(codes.InvalidArgument, "reference: %d fingers, at most %d", len(req.GetReferenceFingers()), MaxFingerSamples)
		}
		for i, f := range req.GetReferenceFingers() {
			x, err := s.finger(f, false, fmt.Sprintf("reference finger %d", i+1))
			if err != nil {
				return nil, err
			}
			refs = append(refs, fingerRef{x.t.Position(), x.ft})
			refQ = append(refQ, x.fingerQ)
		}
		if req.GetReferenceSample() == nil && len(refs) == 0 {
			return nil, status.Error(codes.InvalidArgument, "reference: give a reference sample, reference fingers or a subject_id")
		}
		resp.ReferenceFingerQuality = refQ
		for i, f := range p.fingers {
			fs[i], fn[i] = s.bestFinger(f, refs)
		}
	}
	s.fuse(&sc, faceN, fs, fn, positions)
	if !sc.hasFace && !sc.hasFinger {
		return nil, status.Error(codes.InvalidArgument, "probe and reference have no modality or finger position in common")
	}
	if !d.fused && !sc.hasFace {
		return nil, status.Error(codes.InvalidArgument, "probe and reference have no face in common")
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	resp.Match, resp.Score = d.pass(&sc)
	if sc.hasFace {
		resp.FaceScore = &sc.face
		resp.FaceFmr = &sc.faceFMR
	}
	resp.FingerScores = sc.fingers
	if sc.hasFinger {
		resp.FingerScore = &sc.fingerMean
	}
	resp.FusedFmr = sc.fusedFMR
	resp.FusedScore = fusedScore(sc.fusedFMR)
	return resp, nil
}

// bestFinger scores a probe finger against the compatible fingers of the
// other side: the best score and how many were compared.
func (s *Service) bestFinger(f sample, refs []fingerRef) (float32, int) {
	pos := f.t.Position()
	var best float32
	n := 0
	for _, r := range refs {
		if r.pos == pos || r.pos == minutiae.PositionUnknown || pos == minutiae.PositionUnknown {
			n++
			best = max(best, float32(s.fm.Score(f.ft, r.t)))
		}
	}
	return best, n
}
