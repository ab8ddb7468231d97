package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// EnrollRequest is a subject to create with its samples.
type EnrollRequest struct {
	SubjectID  string
	Name       string
	Metadata   map[string]string
	Watchlists []string
	Samples    []Sample
	// ReturnTemplates asks for the encoded templates made, in sample order.
	ReturnTemplates bool
	// Created is for ApplyEnroll only: the coordinating node's time of the
	// enrolment, carried in the log, so that every replica stores the same
	// record (zero: the replica's clock). Enroll ignores it.
	Created time.Time
}

// EnrollResult is the subject as stored, with what was measured of its
// samples.
type EnrollResult struct {
	Subject       store.Subject
	FaceQuality   []FaceQuality
	FingerQuality []FingerQuality
	Templates     [][]byte
}

// Enroll makes the templates of a subject's samples and stores the subject;
// it returns once the subject is durable and searchable.
func (s *Engine) Enroll(ctx context.Context, req EnrollRequest) (EnrollResult, error) {
	sub, fingers, res, err := s.prepareEnroll(ctx, req, false)
	if err != nil {
		return res, err
	}
	// Create returns once the subject is durable; concurrent enrolments
	// share one commit (store/commit.go). The index is updated only then,
	// and under the id's lock held across both, so a delete racing this
	// enrolment cannot leave a ghost in the index.
	unlock := s.lock(sub.ID)
	defer unlock()
	created, err := s.store.Create(sub)
	if err != nil {
		return res, kindOf("", err)
	}
	return s.indexEnrolled(res, created, fingers)
}

// prepareEnroll checks an enrolment and makes its templates: the subject
// to store, its fingers for the index and the result so far. fromLog
// (ApplyEnroll) takes templates only and leaves the check that the id is
// free to the store.
func (s *Engine) prepareEnroll(ctx context.Context, req EnrollRequest, fromLog bool) (store.Subject, []fingerRef, EnrollResult, error) {
	var res EnrollResult
	sub, fingers, err := s.prepareEnrollSubject(ctx, req, fromLog, &res)
	return sub, fingers, res, err
}

func (s *Engine) prepareEnrollSubject(ctx context.Context, req EnrollRequest, fromLog bool, res *EnrollResult) (store.Subject, []fingerRef, error) {
	var none store.Subject
	n := len(req.Samples)
	if n == 0 {
		return none, nil, invalid("enrol: at least one sample is required")
	}
	nf, nfaces := 0, 0
	for _, sm := range req.Samples {
		switch {
		case sm.Finger != nil:
			nf++
		case sm.FaceImage != nil || sm.Face != nil:
			nfaces++
		}
	}
	if n > MaxSamples+MaxFingerSamples || nf > MaxFingerSamples || nfaces > MaxSamples {
		return none, nil, invalid("enrol: %d samples (%d face images, %d fingers), at most %d faces and %d fingers",
			n, nfaces, nf, MaxSamples, MaxFingerSamples)
	}
	if req.SubjectID == "" {
		return none, nil, invalid("enrol: subject_id is required")
	}
	if fromLog {
		// Extraction happens once, on the coordinating node: the log
		// carries templates, so that every replica stores the same ones.
		for i, sm := range req.Samples {
			face := sm.Template != nil && sm.FaceImage == nil && sm.Face == nil && sm.Finger == nil
			finger := sm.Template == nil && sm.FaceImage == nil && sm.Face == nil && sm.Finger != nil &&
				sm.Finger.Template != nil && sm.Finger.Image == nil && sm.Finger.Record == nil
			if !face && !finger {
				return none, nil, invalid("apply enrol: sample %d is not a template (the log carries templates only)", i+1)
			}
		}
	} else if _, err := s.store.Get(req.SubjectID); err == nil {
		// Cheap refusal before the expensive extraction; Create re-checks atomically.
		return none, nil, fmt.Errorf("%w: subject %q already exists", ErrExists, req.SubjectID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return none, nil, kindOf("enrol", err)
	}
	sub := store.Subject{
		ID:         req.SubjectID,
		Name:       req.Name,
		Metadata:   req.Metadata,
		Watchlists: req.Watchlists,
	}
	if fromLog {
		sub.Created = req.Created
	}
	var fingers []fingerRef
	faces := 0
	for i, sm := range req.Samples {
		if err := ctx.Err(); err != nil {
			return none, nil, err
		}
		x, err := s.template(sm, false, true, fmt.Sprintf("sample %d", i+1))
		if err != nil {
			return none, nil, err
		}
		if x.faceQ != nil {
			res.FaceQuality = append(res.FaceQuality, *x.faceQ)
		}
		if x.fingerQ != nil {
			res.FingerQuality = append(res.FingerQuality, *x.fingerQ)
		}
		if x.ft != nil {
			fingers = append(fingers, fingerRef{x.t.Position(), x.ft})
		} else {
			faces++
		}
		if req.ReturnTemplates {
			b, err := x.t.MarshalBinary()
			if err != nil {
				return none, nil, fmt.Errorf("%w: encoding template: %w", ErrInternal, err)
			}
			res.Templates = append(res.Templates, b)
		}
		sub.Templates = append(sub.Templates, x.t)
		if s.keepSamples {
			if kept, ok := keptSample(sm); ok {
				sub.Samples = append(sub.Samples, kept)
			}
		}
	}
	if n := keptBytes(sub.Samples); n > store.MaxKeptBytes {
		// Over what one transaction keeps: enrol without them.
		s.log.Warn().Str("subject", sub.ID).Int("bytes", n).Int("max", store.MaxKeptBytes).
			Msg("enrolment's samples too large to keep: re-templating will list it for re-enrolment")
		sub.Samples = nil
	}
	// Finger templates given as Sample.Template count too.
	if faces > MaxSamples || len(fingers) > MaxFingerSamples {
		return none, nil, invalid("enrol: %d faces and %d fingers, at most %d and %d", faces, len(fingers), MaxSamples, MaxFingerSamples)
	}
	if err := ctx.Err(); err != nil {
		return none, nil, err
	}
	return sub, fingers, nil
}

// indexEnrolled puts a subject just stored into the indexes, under its id's
// lock, and completes the result.
func (s *Engine) indexEnrolled(res EnrollResult, created store.Subject, fingers []fingerRef) (EnrollResult, error) {
	// The fingers were prepared from the templates as the store holds them
	// (sample.fingerView), so the index needs nothing from created but ids.
	if err := s.indexSubject(created, fingers); err != nil {
		// The store holds the subject; the index will have it after a
		// restart. Say so rather than pretend the enrolment failed.
		s.unindex(created.ID)
		s.log.Error().Err(err).Str("subject", created.ID).Msg("indexing enrolled subject")
		return res, fmt.Errorf("%w: subject stored but not indexed: %w", ErrInternal, err)
	}
	res.Subject = created
	return res, nil
}

// keptBytes is about what samples take in the store (their encoding adds a
// few bytes each).
func keptBytes(sms []store.Sample) int {
	n := 0
	for _, sm := range sms {
		n += len(sm.Data) + len(sm.Format) + 16
	}
	return n
}

// keptSample is the source sample to keep of an enrolment's sample: a
// photo, a fingerprint image or a minutiae record as received; not a
// template or a face found already, which no new algorithm can re-read.
func keptSample(sm Sample) (store.Sample, bool) {
	switch {
	case sm.FaceImage != nil:
		return store.Sample{Kind: store.SampleFacePhoto, Data: sm.FaceImage}, true
	case sm.Finger != nil && sm.Finger.Image != nil:
		f := sm.Finger
		return store.Sample{Kind: store.SampleFingerImage, Data: f.Image, Format: f.Format, DPI: f.DPI, Position: uint8(f.Position)}, true
	case sm.Finger != nil && sm.Finger.Record != nil:
		return store.Sample{Kind: store.SampleFingerRecord, Data: sm.Finger.Record, Position: uint8(sm.Finger.Position)}, true
	}
	return store.Sample{}, false
}

// Query is what an identification asks besides its probe: how many
// candidates, from which watchlists, and the decision rule (Decide).
type Query struct {
	// TopK is the most candidates to return: 1..MaxTopK, 0 for DefaultTopK.
	TopK int
	// Watchlists limits the search to subjects on any of them; none: all.
	Watchlists []string
	// Threshold (a face cosine) or MaxFMR (on the fused scale), or
	// neither for the engine's default; not both.
	Threshold *float32
	MaxFMR    *float64
}

// MaxQueryWatchlists bounds the watchlists one identification names.
const MaxQueryWatchlists = 64

// Validate checks a query before any extraction is paid for, and fills in
// the default TopK. Identify calls it; services call it first to refuse a
// bad request before reading its samples.
func (q *Query) Validate() error {
	switch {
	case q.TopK == 0:
		q.TopK = DefaultTopK
	case q.TopK < 0 || q.TopK > MaxTopK:
		return invalid("top_k %d outside 1..%d", q.TopK, MaxTopK)
	}
	if len(q.Watchlists) > MaxQueryWatchlists {
		return invalid("watchlists: %d named, at most %d", len(q.Watchlists), MaxQueryWatchlists)
	}
	for _, l := range q.Watchlists {
		// A name the store refuses could match no subject: say so
		// rather than answer "no hit".
		if err := store.ValidWatchlist(l); err != nil {
			return kindOf("watchlists", err)
		}
	}
	return validRule(q.Threshold, q.MaxFMR)
}

// Decision is the rule a request was decided by: on the face cosine
// (Threshold; a face-only probe without MaxFMR) or on the fused FMR
// (Fused: MaxFMR, and FusedThreshold = -log10 MaxFMR on the score scale).
type Decision struct {
	Fused bool
	// Threshold is the cosine threshold of the probe's primary face
	// algorithm (the default one for a photo); AlgorithmThresholds has
	// that of every algorithm the probe was compared under (faces.go).
	Threshold           float32
	AlgorithmThresholds map[templates.Algorithm]float32
	MaxFMR              float64
	FusedThreshold      float64
}

// thresholdOf is the face-only threshold of an algorithm.
func (d Decision) thresholdOf(a templates.Algorithm) float32 {
	if t, ok := d.AlgorithmThresholds[a]; ok {
		return t
	}
	return d.Threshold
}

// decision is the rule of a request whose threshold and max FMR passed
// validRule, for its probe.
func (s *Engine) decision(p probe, threshold *float32, maxFMR *float64) (Decision, error) {
	d := Decision{Threshold: s.def.threshold, MaxFMR: s.maxFMR}
	if threshold != nil && len(p.fingers) > 0 {
		return d, invalid("threshold is a face cosine; a probe with fingers is decided on max_fmr")
	}
	if p.face != nil {
		primary := p.face.fa
		d.Threshold = primary.threshold
		if threshold != nil {
			d.Threshold = *threshold
		}
		// Every algorithm's: a 1:1 comparison may extract a photo under
		// the other side's algorithm.
		d.AlgorithmThresholds = map[templates.Algorithm]float32{}
		for _, fa := range s.algos.all() {
			t := fa.threshold
			if threshold != nil {
				var ok bool
				if t, ok = s.carry(primary, fa, *threshold); !ok {
					// Stricter than its table measures: nothing of it
					// passes on its own.
					t = math.Nextafter32(1, 2)
				}
			}
			d.AlgorithmThresholds[fa.alg] = t
		}
	} else if threshold != nil {
		d.Threshold = *threshold
	}
	if maxFMR != nil {
		d.MaxFMR = *maxFMR
	}
	d.Fused = len(p.fingers) > 0 || maxFMR != nil
	if d.Fused {
		d.FusedThreshold = fusedScore(d.MaxFMR)
	}
	return d, nil
}

// FingerScore is one probe finger's comparison with a subject or reference.
type FingerScore struct {
	Position minutiae.Position
	Score    float32
	FMR      float64
	// Compared is false when the other side has no finger of a
	// compatible position (Score 0, FMR 1).
	Compared bool
}

// Scores is one comparison of a probe with a subject or a reference, per
// modality and fused.
type Scores struct {
	Face    float32
	FaceFMR float64
	HasFace bool
	// FaceAlgorithm made the face comparison that gave Face: the probe's
	// best evidence among the algorithms it was compared under.
	FaceAlgorithm templates.Algorithm
	Fingers       []FingerScore
	FingerMean    float32
	HasFinger     bool
	FusedFMR      float64
	// FusedScore is -log10 FusedFMR.
	FusedScore float64
}

// setFace puts a face comparison into sc.
func (sc *Scores) setFace(e faceEvidence) {
	if e.fa == nil {
		return
	}
	sc.Face, sc.FaceFMR, sc.HasFace, sc.FaceAlgorithm = e.score, e.fmr, true, e.fa.alg
}

// fuse computes the finger FMRs and the fused FMR of a comparison whose
// face, if any, is set (setFace). fingerN[i] is the number of templates
// probe finger i was compared with (0: none).
func (s *Engine) fuse(sc *Scores, fingerScore []float32, fingerN []int, positions []minutiae.Position) {
	var fmrs []float64
	if sc.HasFace {
		fmrs = append(fmrs, sc.FaceFMR)
	}
	var sum float32
	for i, v := range fingerScore {
		fsc := FingerScore{Position: positions[i], Score: v, FMR: 1}
		if fingerN[i] > 0 {
			fsc.Compared = true
			fsc.FMR = bestOfFMR(s.fingerCal.FMRAt(float64(v)), fingerN[i])
			fmrs = append(fmrs, fsc.FMR)
			sc.HasFinger = true
		}
		sum += v
		sc.Fingers = append(sc.Fingers, fsc)
	}
	if len(fingerScore) > 0 {
		sc.FingerMean = sum / float32(len(fingerScore))
	}
	sc.FusedFMR = FuseFMR(fmrs)
	sc.FusedScore = fusedScore(sc.FusedFMR)
}

// pass reports whether a comparison passes the decision, and its score on
// the decision's scale.
func (d Decision) pass(sc *Scores) (bool, float32) {
	if !d.Fused {
		return sc.Face >= d.thresholdOf(sc.FaceAlgorithm), sc.Face
	}
	return sc.FusedFMR <= d.MaxFMR, float32(sc.FusedScore)
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

// IdentifyRequest is a 1:N search.
type IdentifyRequest struct {
	Probe Probe
	Query
}

// Candidate is a subject that passed the decision.
type Candidate struct {
	Rank       int
	SubjectID  string
	Name       string
	Watchlists []string
	// Score is on the decision's scale: the face cosine, or the fused
	// score.
	Score float32
	Scores
}

// IdentifyResult is a search's answer.
type IdentifyResult struct {
	Candidates []Candidate
	// Searched counts the templates searched.
	Searched      int64
	Decision      Decision
	ProbeQuality  *FaceQuality
	FingerQuality []FingerQuality
}

// Identify searches the gallery with a probe.
func (s *Engine) Identify(ctx context.Context, req IdentifyRequest) (IdentifyResult, error) {
	q := req.Query
	if err := q.Validate(); err != nil {
		return IdentifyResult{}, err
	}
	p, err := s.probe(req.Probe, "probe")
	if err != nil {
		return IdentifyResult{}, err
	}
	return s.identify(ctx, p, q)
}

// identify searches the indexes with a probe made from a request's samples.
func (s *Engine) identify(ctx context.Context, p probe, q Query) (IdentifyResult, error) {
	k := q.TopK
	d, err := s.decision(p, q.Threshold, q.MaxFMR)
	if err != nil {
		return IdentifyResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return IdentifyResult{}, err
	}
	res := IdentifyResult{Decision: d, FingerQuality: p.fingerQuality()}
	if p.face != nil {
		res.ProbeQuality = p.face.faceQ
	}
	// Candidates come from each modality's index; with more than one
	// probe modality or finger the fused rank can differ from any one
	// index's, so each gives its MaxTopK best.
	pool := k
	if d.Fused {
		pool = MaxTopK
	}
	lists := q.Watchlists
	// Each probe face is searched in its algorithm's index; a subject
	// keeps its best evidence (faces.go).
	faceHits := map[string]faceEvidence{}
	rank := map[*faceAlgo]int{}
	var order []string // candidates in the order found, for determinism
	var faces []faceProbe
	if p.face != nil {
		faces = p.face.faces()
	}
	for i, fp := range faces {
		rank[fp.fa] = i
		res.Searched += int64(fp.fa.index.Len())
		hits, err := fp.fa.searches.Search(ctx, fp.t.Vector, matcher.SearchOptions{K: pool, Watchlists: lists})
		if err != nil {
			return IdentifyResult{}, kindOf("face search", err)
		}
		for _, h := range hits {
			_, n, ok := fp.fa.index.Subject(h.SubjectID)
			if !ok {
				continue // removed while we searched
			}
			e := faceEvidence{fa: fp.fa, score: h.Score, fmr: fp.fa.fmr(h.Score, n), n: n}
			old, seen := faceHits[h.SubjectID]
			if !seen {
				order = append(order, h.SubjectID)
			}
			if e.better(old, i, rank[old.fa]) {
				faceHits[h.SubjectID] = e
			}
		}
	}
	// One search per probe finger: the per-finger scores are what the
	// fusion needs, and the finger index's cost is per probe finger anyway.
	fingerHits := make([]map[string]float32, len(p.fingers))
	if len(p.fingers) > 0 {
		res.Searched += int64(s.fingers.Len())
	}
	for i, f := range p.fingers {
		if err := ctx.Err(); err != nil {
			return IdentifyResult{}, err
		}
		// The finger index has no watchlists: ask for every shortlisted
		// subject and filter here.
		hits, err := s.fingers.SearchFingers(map[minutiae.Position]*matcher.FingerTemplate{f.t.Position(): f.ft},
			matcher.SearchOptions{K: math.MaxInt32})
		if err != nil {
			return IdentifyResult{}, kindOf("finger search", fmt.Errorf("%w: %w", ErrInternal, err))
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
		sc    Scores
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
		var sc Scores
		if len(faces) > 0 && info.faces > 0 {
			e, ok := faceHits[id]
			if !ok || len(faces) > 1 {
				// Not a hit of every algorithm's search: compare it
				// under each (the best evidence may be another's).
				var err error
				if e, err = s.compareFace(faces, id); err != nil {
					return IdentifyResult{}, err
				}
			}
			sc.setFace(e)
		}
		fs := make([]float32, len(p.fingers))
		fn := make([]int, len(p.fingers))
		for i := range p.fingers {
			fs[i] = fingerHits[i][id] // absent: not shortlisted, or no finger to compare
			fn[i] = compatibleFingers(info.fingers, positions[i])
		}
		s.fuse(&sc, fs, fn, positions)
		if !sc.HasFace && !sc.HasFinger {
			continue
		}
		ok, score := d.pass(&sc)
		if !ok {
			continue
		}
		cands = append(cands, cand{id, sc, score})
	}
	merged := len(faces) > 1 && !d.Fused
	slices.SortFunc(cands, func(a, b cand) int {
		if merged {
			// Cosines of different algorithms do not compare: rank
			// face evidence by its FMR first.
			if c := cmp.Compare(a.sc.FaceFMR, b.sc.FaceFMR); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.sc.FusedFMR, b.sc.FusedFMR); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, c := range cands {
		if len(res.Candidates) == k {
			break
		}
		sub, err := s.store.Get(c.id)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted while we searched
		} else if err != nil {
			return IdentifyResult{}, kindOf("reading a candidate", err)
		}
		res.Candidates = append(res.Candidates, Candidate{
			Rank:       len(res.Candidates) + 1,
			SubjectID:  sub.ID,
			Name:       sub.Name,
			Score:      c.score,
			Watchlists: sub.Watchlists,
			Scores:     c.sc,
		})
	}
	return res, nil
}

// validRule checks a request's decision rule before any extraction is
// paid for: a threshold (a face cosine) or a max FMR, not both, each in
// range.
func validRule(thr *float32, maxFMR *float64) error {
	if thr != nil && maxFMR != nil {
		return invalid("give threshold (a face cosine) or max_fmr, not both")
	}
	if thr != nil && !(*thr >= -1 && *thr <= 1) {
		return invalid("threshold %v outside [-1, 1]", *thr)
	}
	if maxFMR != nil && !(*maxFMR > 0 && *maxFMR < 1) {
		return invalid("max_fmr %v outside (0, 1)", *maxFMR)
	}
	return nil
}

func (s *Engine) onLists(id string, lists []string) bool {
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

// VerifyRequest is a 1:1 comparison of a probe with a reference: an
// enrolled subject (SubjectID), or a reference sample and/or reference
// fingers.
type VerifyRequest struct {
	Probe            Probe
	SubjectID        string
	Reference        *Sample
	ReferenceFingers []FingerSample
	// Threshold or MaxFMR as in Query.
	Threshold *float32
	MaxFMR    *float64
}

// VerifyResult is a comparison and its decision.
type VerifyResult struct {
	Match bool
	// Score is on the decision's scale (Candidate.Score).
	Score float32
	Scores
	Decision                                   Decision
	ProbeQuality, ReferenceQuality             *FaceQuality
	ProbeFingerQuality, ReferenceFingerQuality []FingerQuality
}

// Verify compares a probe with a reference and decides.
func (s *Engine) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	var res VerifyResult
	if err := validRule(req.Threshold, req.MaxFMR); err != nil {
		return res, err
	}
	if req.SubjectID != "" && req.Reference != nil {
		return res, invalid("reference: give a reference sample or a subject_id, not both")
	}
	p, err := s.probe(req.Probe, "probe")
	if err != nil {
		return res, err
	}
	d, err := s.decision(p, req.Threshold, req.MaxFMR)
	if err != nil {
		return res, err
	}
	res.Decision, res.ProbeFingerQuality = d, p.fingerQuality()
	if p.face != nil {
		res.ProbeQuality = p.face.faceQ
	}
	var sc Scores
	positions := make([]minutiae.Position, len(p.fingers))
	for i, f := range p.fingers {
		positions[i] = f.t.Position()
	}
	fs := make([]float32, len(p.fingers))
	fn := make([]int, len(p.fingers))
	if id := req.SubjectID; id != "" {
		if len(req.ReferenceFingers) > 0 {
			return res, invalid("reference: give reference fingers or a subject_id, not both")
		}
		info := s.subject(id)
		if info == nil {
			if _, err := s.store.Get(id); err != nil {
				return res, kindOf("reference", err)
			}
			return res, fmt.Errorf("%w: subject %q has no template this server can compare: re-enrol it", ErrIncompatible, id)
		}
		if p.face != nil && info.faces > 0 {
			e, err := s.compareFace(p.face.faces(), id)
			if err != nil {
				return res, err
			}
			sc.setFace(e)
		}
		for i, f := range p.fingers {
			fs[i], fn[i] = s.bestFinger(f, info.fingers)
		}
		if p.face != nil && !sc.HasFace && len(p.fingers) == 0 {
			var have []string
			for _, fa := range s.algos.all() {
				if _, _, ok := fa.index.Subject(id); ok {
					have = append(have, fa.alg.String())
				}
			}
			var probed []string
			for _, fp := range p.face.faces() {
				probed = append(probed, fp.fa.alg.String())
			}
			return res, fmt.Errorf("%w: subject %q has no face template of %s (it has %s): re-enrol it or re-template the gallery",
				ErrIncompatible, id, strings.Join(probed, ", "), strings.Join(append(have, "none")[:max(1, len(have))], ", "))
		}
	} else {
		var refs []fingerRef
		var refQ []FingerQuality
		if rs := req.Reference; rs != nil {
			x, err := s.template(*rs, req.Probe.TakeLargestFace, false, "reference")
			if err != nil {
				return res, err
			}
			if x.ft != nil {
				refs = append(refs, fingerRef{x.t.Position(), x.ft})
				refQ = append(refQ, *x.fingerQ)
			} else {
				res.ReferenceQuality = x.faceQ
				if p.face != nil {
					e, err := s.compareFaces(*p.face, x, req.Probe.TakeLargestFace)
					if err != nil {
						return res, err
					}
					sc.setFace(e)
				}
			}
		}
		if len(req.ReferenceFingers) > MaxFingerSamples {
			return res, invalid("reference: %d fingers, at most %d", len(req.ReferenceFingers), MaxFingerSamples)
		}
		for i, f := range req.ReferenceFingers {
			x, err := s.finger(f, false, fmt.Sprintf("reference finger %d", i+1))
			if err != nil {
				return res, err
			}
			refs = append(refs, fingerRef{x.t.Position(), x.ft})
			refQ = append(refQ, *x.fingerQ)
		}
		if req.Reference == nil && len(refs) == 0 {
			return res, invalid("reference: give a reference sample, reference fingers or a subject_id")
		}
		res.ReferenceFingerQuality = refQ
		for i, f := range p.fingers {
			fs[i], fn[i] = s.bestFinger(f, refs)
		}
	}
	s.fuse(&sc, fs, fn, positions)
	if !sc.HasFace && !sc.HasFinger {
		return res, invalid("probe and reference have no modality or finger position in common")
	}
	if !d.Fused && !sc.HasFace {
		return res, invalid("probe and reference have no face in common")
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Scores = sc
	res.Match, res.Score = d.pass(&sc)
	return res, nil
}

// compareFaces compares a probe face with a reference face under the
// algorithms they share, the best evidence winning (faces.go). A photo on
// one side is extracted with the other side's algorithm when that is
// loaded; with nothing in common, it is ErrIncompatible.
func (s *Engine) compareFaces(probe, ref sample, takeLargest bool) (faceEvidence, error) {
	side := func(x sample, other sample, what string) ([]faceProbe, error) {
		fs := x.faces()
		if x.img == nil {
			return fs, nil
		}
		for _, o := range other.faces() {
			if !slices.ContainsFunc(fs, func(f faceProbe) bool { return f.fa == o.fa }) && o.fa.ex != nil {
				y, err := s.extractWith(o.fa, x.img, takeLargest, what)
				if err != nil {
					return nil, err
				}
				fs = append(fs, faceProbe{o.fa, y.t})
			}
		}
		return fs, nil
	}
	ps, err := side(probe, ref, "probe")
	if err != nil {
		return faceEvidence{}, err
	}
	rs, err := side(ref, probe, "reference")
	if err != nil {
		return faceEvidence{}, err
	}
	var best faceEvidence
	bestRank := 0
	for i, p := range ps {
		for _, r := range rs {
			if p.fa != r.fa {
				continue
			}
			if err := p.t.Compatible(r.t); err != nil {
				return best, kindOf("reference", err)
			}
			v := matcher.Cosine(p.t.Vector, r.t.Vector)
			e := faceEvidence{fa: p.fa, score: v, fmr: p.fa.fmr(v, 1), n: 1}
			if e.better(best, i, bestRank) {
				best, bestRank = e, i
			}
		}
	}
	if best.fa == nil {
		return best, fmt.Errorf("%w: the probe is a face of %s, the reference of %s; templates of different algorithms are never compared",
			ErrIncompatible, probe.t.Algorithm, ref.t.Algorithm)
	}
	return best, nil
}

// bestFinger scores a probe finger against the compatible fingers of the
// other side: the best score and how many were compared.
func (s *Engine) bestFinger(f sample, refs []fingerRef) (float32, int) {
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
