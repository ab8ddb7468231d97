package engine

// 1:1 verification of a probe against an enrolled subject or a reference.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// VerifyRequest is a 1:1 comparison of a probe with a reference: an
// enrolled subject (SubjectID), or a reference sample and/or reference
// fingers.
type VerifyRequest struct {
	Probe     Probe
	SubjectID string
	Reference *Sample
	// Prepared is a reference made earlier (PrepareReference), instead of
	// Reference.
	Prepared         *PreparedReference
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
	// DecisionFMR is as Candidate.DecisionFMR.
	DecisionFMR float64
	Scores
	Decision                                   Decision
	ProbeQuality, ReferenceQuality             *FaceQuality
	ProbeFingerQuality, ReferenceFingerQuality []FingerQuality
	// ReferenceRecord describes the face record (a chip's DG2) the
	// reference photo came from; nil for other references.
	ReferenceRecord *FaceRecordInfo
}

// PreparedReference is a reference sample made into a template once: a
// gate reads the chip's photo before it watches the camera, so that a bad
// reference fails at once and the comparison after the capture costs only
// the shot's extraction.
type PreparedReference struct{ x sample }

// Quality and Record describe the reference's face and the face record
// it came from (nil when it was not one).
func (r *PreparedReference) Quality() *FaceQuality   { return r.x.faceQ }
func (r *PreparedReference) Record() *FaceRecordInfo { return r.x.record }

// PrepareReference makes a face reference (a photo or a face record) into
// a template.
func (s *Engine) PrepareReference(ctx context.Context, sm Sample) (*PreparedReference, error) {
	if sm.Finger != nil {
		return nil, invalid("reference: a face is required (the chip's DG2 or a photo)")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x, err := s.template(ctx, sm, false, false, "reference")
	if err != nil {
		return nil, err
	}
	if x.t.Modality != templates.ModalityFace {
		return nil, invalid("reference: a face is required (the chip's DG2 or a photo)")
	}
	return &PreparedReference{x}, nil
}

// Verify compares a probe with a reference and decides.
func (s *Engine) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	var res VerifyResult
	if err := validRule(req.Threshold, req.MaxFMR); err != nil {
		return res, err
	}
	if req.Reference != nil && req.Prepared != nil {
		return res, invalid("reference: give a reference sample or a prepared reference, not both")
	}
	if req.Prepared != nil {
		req.Reference = &Sample{} // checked as a reference sample below
	}
	if req.SubjectID != "" && req.Reference != nil {
		return res, invalid("reference: give a reference sample or a subject_id, not both")
	}
	p, err := s.probe(ctx, req.Probe, "probe")
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
			var x sample
			if req.Prepared != nil {
				x = req.Prepared.x
			} else if x, err = s.template(ctx, *rs, req.Probe.TakeLargestFace, false, "reference"); err != nil {
				return res, err
			}
			if x.ft != nil {
				refs = append(refs, fingerRef{x.t.Position(), x.ft})
				refQ = append(refQ, *x.fingerQ)
			} else {
				res.ReferenceQuality, res.ReferenceRecord = x.faceQ, x.record
				if p.face != nil {
					e, err := s.compareFaces(ctx, *p.face, x, req.Probe.TakeLargestFace)
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
			x, err := s.finger(ctx, f, false, fmt.Sprintf("reference finger %d", i+1))
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
	res.DecisionFMR = d.decisionFMR(&sc)
	return res, nil
}

// compareFaces compares a probe face with a reference face under the
// algorithms they share, the best evidence winning (faces.go). A photo on
// one side is extracted with the other side's algorithm when that is
// loaded; with nothing in common, it is ErrIncompatible.
func (s *Engine) compareFaces(ctx context.Context, probe, ref sample, takeLargest bool) (faceEvidence, error) {
	side := func(x sample, other sample, what string) ([]faceProbe, error) {
		fs := x.faces()
		if x.img == nil {
			return fs, nil
		}
		for _, o := range other.faces() {
			if !slices.ContainsFunc(fs, func(f faceProbe) bool { return f.fa == o.fa }) && o.fa.ex != nil {
				y, err := s.extractWith(ctx, o.fa, x.img, takeLargest, what)
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
