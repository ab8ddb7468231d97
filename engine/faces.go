package engine

// Face algorithms.
//
// A gallery may hold face templates of several algorithms: while it moves
// from one network to another (Retemplate), a subject has templates of
// both. Templates of different algorithms are never compared; the engine
// keeps one face index per algorithm, made with that algorithm's
// dimension, for every algorithm that is loaded (Config.Faces, the default,
// and Config.MoreFaces) or present in the gallery.
//
//   - Enrolment extracts photos with the default algorithm only. A face
//     given as a template must be of a loaded algorithm; a templates-only
//     engine (NoFaces) takes any algorithm, the first template of an
//     algorithm it has not seen fixing that algorithm's dimension.
//   - A probe photo is extracted with the default algorithm and with every
//     other loaded algorithm the gallery holds templates of; each template
//     is searched in its own algorithm's index. A subject's face evidence
//     is its best algorithm's: the lowest false-match rate, each algorithm's
//     score read through its own calibration table (ties go to the default
//     algorithm). The face score reported is that algorithm's cosine, and
//     the result names it (Scores.FaceAlgorithm).
//   - A probe template is searched in its algorithm's index only.
//
// Thresholds. The default algorithm decides face-only probes at
// Config.Threshold (or Config.Thresholds, DefaultThresholds). Another
// algorithm decides at Config.Thresholds[its name] if set; else at the
// score where its own calibration reaches the false-match rate the default
// algorithm's calibration gives at the default threshold, so that both
// algorithms decide at the same FMR and moving a gallery from one to the
// other keeps the operating point; else DefaultThresholds. A request's
// threshold is a cosine of the probe's primary algorithm (the default one
// for a photo, the template's own for a template) and is carried to the
// others at the same FMR. An algorithm without a calibration table, which
// only a templates-only engine can meet (a loaded algorithm must have one),
// reports every FMR as 1 and decides at its Config.Thresholds entry or at
// the default threshold.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

// faceAlgo is one face algorithm of the gallery: its index and how its
// scores are read.
type faceAlgo struct {
	alg templates.Algorithm
	dim int
	// ex extracts photos with this algorithm; nil when it is not loaded
	// (templates of it are searched by template probes only).
	ex       FaceExtractor
	index    *matcher.Index
	searches *matcher.Coalescer
	// cal maps scores to FMRs; nil when no table exists for it. lr maps
	// those FMRs to likelihood ratios (1 without genuine scores).
	cal       *matcher.Calibration
	lr        matcher.LikelihoodRatio
	threshold float32
}

// fmr is the FMR of the best of n comparisons scoring score (1 without a
// calibration table).
func (fa *faceAlgo) fmr(score float32, n int) float64 {
	if fa.cal == nil {
		return 1
	}
	return bestOfFMR(fa.cal.FMRAt(float64(score)), max(n, 1))
}

// lrOf is the likelihood ratio credited to the best of n comparisons
// scoring score (fusion.go).
func (fa *faceAlgo) lrOf(score float32, n int) float64 {
	if fa.cal == nil {
		return 1
	}
	return bestOfLR(fa.lr.At(fa.cal.FMRAt(float64(score))), max(n, 1))
}

// faceAlgos is the engine's set of face algorithms. Algorithms are only
// ever added (an index stays for the engine's life, empty or not).
type faceAlgos struct {
	mu   sync.RWMutex
	by   map[templates.Algorithm]*faceAlgo
	list []*faceAlgo // the default first, then in order of arrival; copy on write
}

func (f *faceAlgos) get(a templates.Algorithm) *faceAlgo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.by[a]
}

func (f *faceAlgos) all() []*faceAlgo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.list
}

// names lists the algorithms (with templates in the gallery, or loaded),
// for error messages.
func (f *faceAlgos) names() string {
	var n []string
	for _, fa := range f.all() {
		if fa.ex != nil || fa.index.Len() > 0 {
			n = append(n, fa.alg.String())
		}
	}
	if len(n) == 0 {
		return "none"
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// newFaceAlgo makes the index of an algorithm.
func (s *Engine) newFaceAlgo(a templates.Algorithm, dim int, ex FaceExtractor) *faceAlgo {
	fa := &faceAlgo{alg: a, dim: dim, ex: ex}
	fa.index = matcher.NewIndexWithSource(dim, faceSource{s, a, dim})
	fa.searches = matcher.NewCoalescer(fa.index, 0)
	fa.searches.Observe = s.observeBatch
	if c, ok := s.faceCals[a.String()]; ok {
		fa.cal = &c
		var err error
		if fa.lr, err = c.LikelihoodRatio(); err != nil {
			s.log.Warn().Str("algorithm", a.String()).Msg("face calibration without genuine scores: fusion counts its likelihood ratio as 1 (re-measure it with bmbench calibrate)")
		}
	}
	return fa
}

// addAlgo registers an algorithm; the caller checked it is new.
func (s *Engine) addAlgo(fa *faceAlgo) {
	s.algos.mu.Lock()
	defer s.algos.mu.Unlock()
	if s.algos.by == nil {
		s.algos.by = map[templates.Algorithm]*faceAlgo{}
	}
	s.algos.by[fa.alg] = fa
	s.algos.list = append(slices.Clip(s.algos.list), fa)
}

// algoFor returns the index of a face template's algorithm. An algorithm
// the engine does not have is ErrIncompatible, unless create is set and the
// engine is templates-only: then its index is made with the template's
// dimension. A template of another dimension than its algorithm's is
// ErrInvalid.
func (s *Engine) algoFor(t templates.Template, create bool) (*faceAlgo, error) {
	fa := s.algos.get(t.Algorithm)
	if fa == nil {
		if !create {
			return nil, fmt.Errorf("%w: a face template of %s; the gallery has face templates of %s", ErrIncompatible, t.Algorithm, s.algos.names())
		}
		s.algos.mu.Lock()
		fa = s.algos.by[t.Algorithm]
		s.algos.mu.Unlock()
		if fa == nil {
			fa = s.newFaceAlgo(t.Algorithm, len(t.Vector), nil)
			fa.threshold = s.derivedThreshold(fa)
			s.addAlgo(fa)
			if fa.cal == nil {
				s.log.Warn().Str("algorithm", t.Algorithm.String()).Int("dim", fa.dim).
					Msg("face algorithm without a calibration table: its FMRs count as 1, its face-only decisions use its --threshold")
			}
		}
	}
	if len(t.Vector) != fa.dim {
		return nil, invalid("a %d-d face template of %s, whose templates are %d-d", len(t.Vector), t.Algorithm, fa.dim)
	}
	return fa, nil
}

// derivedThreshold is an algorithm's face-only threshold when the caller
// gave none: Config.Thresholds, else the default algorithm's FMR carried
// through its own calibration, else DefaultThresholds, else the default
// algorithm's threshold.
func (s *Engine) derivedThreshold(fa *faceAlgo) float32 {
	if t, ok := s.thresholds[fa.alg.String()]; ok {
		return t
	}
	if t, ok := s.carry(s.def, fa, s.def.threshold); ok {
		return t
	}
	if t, ok := DefaultThresholds[fa.alg.String()]; ok {
		return t
	}
	return s.def.threshold
}

// carry translates a threshold of algorithm from into one of algorithm to
// at the same FMR, through their calibrations.
func (s *Engine) carry(from, to *faceAlgo, thr float32) (float32, bool) {
	if from == to {
		return thr, true
	}
	if from.cal == nil || to.cal == nil {
		return 0, false
	}
	f := from.cal.FMRAt(float64(thr))
	if f >= 1 {
		return -1, true // at or below every impostor score measured: all pass
	}
	t, err := to.cal.ThresholdForFMR(f)
	if err != nil {
		return 0, false
	}
	return t, true
}

// faceSource reads the exact face vectors an algorithm's index re-scores
// with from the store, the source of truth: only that algorithm's face
// templates of its dimension.
type faceSource struct {
	s   *Engine
	alg templates.Algorithm
	dim int
}

func (f faceSource) Vectors(ids []string, fn func(int, []float32)) error {
	return f.s.store.Templates(ids, func(i int, t templates.Template) {
		if t.Modality == templates.ModalityFace && t.Algorithm == f.alg && len(t.Vector) == f.dim && t.Comparable() == nil {
			fn(i, t.Vector)
		}
	})
}

// faceEvidence is a subject's best face comparison with a probe.
type faceEvidence struct {
	fa    *faceAlgo
	score float32
	fmr   float64
	n     int // the subject's templates of fa
}

// better reports whether e beats o (the zero o always loses): the lower
// FMR, and at equal FMR the earlier algorithm of the probe (rank).
func (e faceEvidence) better(o faceEvidence, rankE, rankO int) bool {
	if o.fa == nil {
		return true
	}
	if e.fmr != o.fmr {
		return e.fmr < o.fmr
	}
	if e.fa == o.fa {
		return e.score > o.score
	}
	return rankE < rankO
}

// faceProbe is a probe face under one algorithm.
type faceProbe struct {
	fa *faceAlgo
	t  templates.Template
}

// compareFace scores the probe faces with subject id's templates of their
// algorithms and returns the best evidence (fa nil: no template in common).
func (s *Engine) compareFace(faces []faceProbe, id string) (faceEvidence, error) {
	var best faceEvidence
	bestRank := 0
	for i, fp := range faces {
		_, n, ok := fp.fa.index.Subject(id)
		if !ok {
			continue
		}
		v, ok, err := fp.fa.index.Verify(fp.t.Vector, id)
		if err != nil {
			return best, kindOf("face comparison", err)
		}
		if !ok {
			continue
		}
		e := faceEvidence{fa: fp.fa, score: v, fmr: fp.fa.fmr(v, n), n: n}
		if e.better(best, i, bestRank) {
			best, bestRank = e, i
		}
	}
	return best, nil
}

// AlgorithmStats is one face algorithm's share of the index.
type AlgorithmStats struct {
	Algorithm templates.Algorithm
	Dim       int
	Loaded    bool // an extractor of it is loaded
	Default   bool
	Templates int
	Subjects  int
	Threshold float32
}

// FaceAlgorithms reports every face algorithm of the engine, the default
// first.
func (s *Engine) FaceAlgorithms() []AlgorithmStats {
	var out []AlgorithmStats
	for _, fa := range s.algos.all() {
		out = append(out, AlgorithmStats{Algorithm: fa.alg, Dim: fa.dim, Loaded: fa.ex != nil, Default: fa == s.def,
			Templates: fa.index.Len(), Subjects: fa.index.Subjects(), Threshold: fa.threshold})
	}
	return out
}

// DefaultAlgorithm is the algorithm of new enrolments and probe photos.
func (s *Engine) DefaultAlgorithm() templates.Algorithm { return s.def.alg }
