package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

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
	// Rule says which rule decided, in words an operator reads beside the
	// answer: "fused FMR <= max_fmr 0.001", or "face cosine >= threshold
	// 0.4642 (mobilefacenet-192/v1, FMR 0.001 on its calibration)".
	Rule string
	// ThresholdFMR is the FMR of Threshold on the primary algorithm's
	// calibration (one comparison), for a cosine decision; 1 without a
	// table.
	ThresholdFMR float64
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
		d.Rule = fmt.Sprintf("fused FMR <= max_fmr %g", d.MaxFMR)
		return d, nil
	}
	alg := s.def
	if p.face != nil {
		alg = p.face.fa
	}
	d.ThresholdFMR = alg.fmr(d.Threshold, 1)
	d.Rule = fmt.Sprintf("face cosine >= threshold %.4g (%s, FMR %.2g on its calibration)", d.Threshold, alg.alg, d.ThresholdFMR)
	if alg.cal == nil {
		d.Rule = fmt.Sprintf("face cosine >= threshold %.4g (%s, no calibration: every FMR reads 1)", d.Threshold, alg.alg)
	}
	return d, nil
}

// FingerScore is one probe finger's comparison with a subject or reference.
type FingerScore struct {
	Position minutiae.Position
	Score    float32
	FMR      float64
	// LR is the likelihood ratio fusion credited to the comparison (1
	// when not compared).
	LR float64
	// Compared is false when the other side has no finger of a
	// compatible position (Score 0, FMR 1).
	Compared bool
}

// Scores is one comparison of a probe with a subject or a reference, per
// modality and fused.
type Scores struct {
	Face    float32
	FaceFMR float64
	// FaceLR is the likelihood ratio fusion credited to the face.
	FaceLR  float64
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

	// fa and faceN made the face comparison: the threshold's FMR for
	// this comparison (decisionFMR) is read through them.
	fa    *faceAlgo
	faceN int
}

// setFace puts a face comparison into sc.
func (sc *Scores) setFace(e faceEvidence) {
	if e.fa == nil {
		return
	}
	sc.Face, sc.FaceFMR, sc.HasFace, sc.FaceAlgorithm = e.score, e.fmr, true, e.fa.alg
	sc.FaceLR, sc.fa, sc.faceN = e.fa.lrOf(e.score, e.n), e.fa, e.n
}

// fuse computes the finger FMRs and the fused FMR of a comparison whose
// face, if any, is set (setFace). fingerN[i] is the number of templates
// probe finger i was compared with (0: none).
func (s *Engine) fuse(sc *Scores, fingerScore []float32, fingerN []int, positions []minutiae.Position) {
	var ev []Evidence
	if sc.HasFace {
		ev = append(ev, Evidence{sc.FaceFMR, sc.FaceLR})
	}
	var sum float32
	for i, v := range fingerScore {
		fsc := FingerScore{Position: positions[i], Score: v, FMR: 1, LR: 1}
		if fingerN[i] > 0 {
			fsc.Compared = true
			f := s.fingerCal.FMRAt(float64(v))
			fsc.FMR = bestOfFMR(f, fingerN[i])
			fsc.LR = bestOfLR(s.fingerLR.At(f), fingerN[i])
			ev = append(ev, Evidence{fsc.FMR, fsc.LR})
			sc.HasFinger = true
		}
		sum += v
		sc.Fingers = append(sc.Fingers, fsc)
	}
	if len(fingerScore) > 0 {
		sc.FingerMean = sum / float32(len(fingerScore))
	}
	sc.FusedFMR = Fuse(ev)
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

// decisionFMR is the FMR the decision was made at for this comparison: the
// max FMR of a fused decision; for a cosine decision, the FMR of the face
// algorithm's threshold for the best of as many templates as the face was
// compared with, which a matching face's FMR never exceeds and a
// non-matching one's never falls below (the FMR never rises with the
// score).
func (d Decision) decisionFMR(sc *Scores) float64 {
	if d.Fused {
		return d.MaxFMR
	}
	if sc.fa == nil {
		return d.ThresholdFMR
	}
	return sc.fa.fmr(d.thresholdOf(sc.FaceAlgorithm), sc.faceN)
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
	// Partition: this engine holds one partition of a cluster's gallery,
	// so a watchlist it does not know is searched as an empty one rather
	// than refused; the coordinator refuses it when no partition knows it
	// (UnknownWatchlists, cluster.Coordinator).
	Partition bool
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
	// DecisionFMR is the FMR the decision was made at for this candidate
	// (Decision.decisionFMR): its FaceFMR (cosine rule) or FusedFMR is at
	// most this.
	DecisionFMR float64
	Scores
}

// IdentifyResult is a search's answer.
type IdentifyResult struct {
	Candidates []Candidate
	// Searched counts the templates searched: those of the watchlists
	// named, of the probe's modalities.
	Searched      int64
	Decision      Decision
	ProbeQuality  *FaceQuality
	FingerQuality []FingerQuality
	// NIST says what was taken from the probe's transaction.
	NIST *NISTUse
}

// Identify searches the gallery with a probe.
func (s *Engine) Identify(ctx context.Context, req IdentifyRequest) (IdentifyResult, error) {
	q := req.Query
	if err := q.Validate(); err != nil {
		return IdentifyResult{}, err
	}
	if !req.Partition {
		if err := s.CheckWatchlists(q.Watchlists); err != nil {
			return IdentifyResult{}, err
		}
	}
	in, use, err := probeWithNIST(req.Probe)
	if err != nil {
		return IdentifyResult{}, err
	}
	p, err := s.probe(ctx, in, "probe")
	if err != nil {
		return IdentifyResult{}, err
	}
	res, err := s.identify(ctx, p, q)
	res.NIST = use
	return res, err
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
	res.Searched = s.searchedTemplates(faces, len(p.fingers) > 0, lists)
	// The default algorithm (first) is searched last: a re-templating job
	// adds a subject to the default's index before it removes it from
	// another's (reindexFaces), so a subject missed in another's index
	// mid-move is in the default's by the time that is searched.
	for i, fp := range slices.Backward(faces) {
		rank[fp.fa] = i
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
	for i, f := range p.fingers {
		if err := ctx.Err(); err != nil {
			return IdentifyResult{}, err
		}
		// Every shortlisted subject on the lists: the fused rank needs the
		// finger scores of candidates found by other fingers or the face.
		// The index filters by watchlist (its first stage draws the
		// shortlist from the lists' subjects only), and concurrent
		// searches share its scans (FingerCoalescer).
		hits, err := s.fingerSearches.SearchFingers(ctx, map[minutiae.Position]*matcher.FingerTemplate{f.t.Position(): f.ft},
			matcher.SearchOptions{K: math.MaxInt32, Watchlists: lists})
		if err != nil {
			if ctx.Err() != nil {
				return IdentifyResult{}, kindOf("finger search", err)
			}
			return IdentifyResult{}, kindOf("finger search", fmt.Errorf("%w: %w", ErrInternal, err))
		}
		fingerHits[i] = map[string]float32{}
		taken := 0
		for _, h := range hits {
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
		for i, f := range p.fingers {
			fn[i] = compatibleFingers(info.fingers, positions[i])
			var hit bool
			if fs[i], hit = fingerHits[i][id]; !hit && fn[i] > 0 {
				// Found by the face or another finger, not shortlisted by
				// this one: its score is unknown, not 0 (which reads as
				// evidence against a subject the face may have found).
				fs[i], _ = s.bestFinger(f, info.fingers)
			}
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
	// FMRs under three impostor matches in a table's count are not
	// measured apart (the rule of three's 95% bound), and each table's
	// count differs: below the largest such bound of the algorithms
	// searched, a cosine of one algorithm decides against another's.
	var floor float64
	for _, fp := range faces {
		if c := fp.fa.cal; c != nil && c.ImpostorCount > 0 {
			floor = max(floor, 3/float64(c.ImpostorCount))
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if merged {
			// Cosines of different algorithms do not compare: rank
			// face evidence by its FMR first.
			if c := cmp.Compare(max(a.sc.FaceFMR, floor), max(b.sc.FaceFMR, floor)); c != 0 {
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
			Rank:        len(res.Candidates) + 1,
			SubjectID:   sub.ID,
			Name:        sub.Name,
			Score:       c.score,
			DecisionFMR: d.decisionFMR(&c.sc),
			Watchlists:  sub.Watchlists,
			Scores:      c.sc,
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
