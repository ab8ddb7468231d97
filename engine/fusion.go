package engine

import (
	"embed"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strings"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

// Fusion of modalities (issue 18).
//
// Face cosines and finger MCC scores live on unrelated scales, so every
// comparison is read through its modality's calibration table twice:
//
//   - its false-match rate f (FMR): the share of impostor comparisons that
//     scored at least as high. A comparison of a probe with the best of n
//     templates of a subject (n face photos, or n fingers of compatible
//     position) has the FMR of the best of n impostor comparisons,
//     1-(1-f)^n, so that enrolling more samples does not raise impostor
//     scores unnoticed;
//   - its likelihood ratio λ (LR): how much likelier a genuine comparison
//     is to score there than an impostor one (ISO/IEC TR 24722's
//     score-level likelihood ratio), read from the table's genuine and
//     impostor distributions (matcher.Calibration.LikelihoodRatio: the
//     slope of the ROC's convex hull, so λ never falls as the score rises).
//     For the best of n, λ above 1 is divided by n (floored at 1): the
//     impostor's chance of reaching that score grew n-fold, a genuine's
//     no more than that. A table without a genuine distribution gives λ = 1.
//
// The rule: with the comparisons made (f1, λ1) … (fk, λk) (the face, and
// every probe finger the subject has a finger to compare with), each
// comparison gives a reading, its FMR with the others' likelihood ratios
// applied as Bayes factors (a likelihood ratio moves the odds of a match by
// itself), and the fused FMR is the strongest reading:
//
//	fused FMR = min over i of  fi / Π_{j≠i} λj'   (at most 1)
//
// where λj' = λj when comparison i favours a match (λi ≥ 1), and
// λj' = min(λj, 1) when it does not: a comparison that is itself evidence
// against a match is not lent the others' evidence for one (a mismatching
// finger beside a strong face would otherwise read as strongly as the
// face). One comparison's fused FMR is its own FMR, so a finger alone or a
// face alone decides exactly as its table says.
//
// Monotone. The neutral point of a comparison is λ = 1. A comparison whose
// score favours a match (λ ≥ 1) divides the readings of the favourable
// comparisons by λ, leaves the others' as they were and adds one of its
// own, so it never raises the fused FMR (never lowers the fused score). A
// comparison that favours an impostor (λ < 1) multiplies every reading by
// 1/λ and may raise it. Fisher's method, used before, was not monotone: it
// charges every added comparison for the chance of being compared once
// more, so a matching photo rated FMR 0.64 turned a finger hit at 0.00094
// into 0.0051.
//
// Why this one. Fisher's combination is exact for p-values under
// independence, but no rule that charges for the count can also let a
// mildly favourable comparison stand; a product of likelihood ratios (the
// optimal fused score by Neyman-Pearson) does, but its FMR would need the
// impostor distribution of the product for every combination of
// modalities and fingers. Reading each comparison's own measured FMR and
// using the others only as likelihood ratios keeps the scale an FMR an
// operator sets (max_fmr), measured rather than modelled. Its price:
// under independence, the chance that an impostor's fused FMR is at most α
// is at most Σ_i E[min(1, α·Π_{j≠i} λj)] ≤ k·α (each term is at most α,
// since an impostor's likelihood ratios have mean 1), and below α in
// practice, an impostor's other comparisons having λ far below 1 almost
// always: impostors drawn from the built-in tables (TestFuseNullRate)
// reach fused FMR 0.001 at 0.9 of that rate with a dlib face and a finger,
// 0.1 with a mobilefacenet-192 face, less with more fingers.
//
// The fused score is -log10(fused FMR): 3 means one impostor in a thousand
// would score as high. A candidate matches when its fused FMR is at most the
// decision's max FMR (matchd --max-fmr, default DefaultMaxFMR; per request
// IdentifyRequest.max_fmr), i.e. when its fused score is at least
// -log10(max FMR). A face-only probe without max_fmr is decided on the face
// cosine threshold; the answer then states the threshold's own FMR
// (Decision.Rule, Candidate.DecisionFMR), which the face FMR of a match
// never exceeds.
//
// Limits. Independence holds well for face versus finger and reasonably for
// different fingers of one person; it fails for two impressions of one
// finger, which is why a probe has at most one finger per position. An FMR
// is never below the smallest one the table measured (1/impostor count),
// and a likelihood ratio never above the genuine share over it, so no
// single comparison claims more than its table measured.

// DefaultMaxFMR is the default decision threshold on the fused scale: a
// fused FMR of one in a thousand. The default finger calibration measures
// FMRs down to 3/23,040 ≈ 1.3e-4, so this is a measured point, not an
// extrapolation; an unattended gate should set a stricter one, calibrated on
// its own travellers.
const DefaultMaxFMR = 1e-3

// The default calibrations, measured by TestWriteDefaultCalibrations (see
// calibration_gen_test.go for the data and the protocol):
//
//   - face, one table per algorithm, in calibration/face-<id>-v<version>.json
//     (the algorithm's templates.Algorithm, "/v" written "-v"):
//     dlib-resnet29/v1 on every impostor pair of idols.json (820,641
//     comparisons of dlib's original network), a population the network
//     separates poorly, so its FMRs are conservative for most travellers;
//     the ONNX models (mobilefacenet-192/v1, faceplugin-512/v1) on every
//     impostor pair of the shared labeled photos (lfw-dev, idols, bbt:
//     143,871 comparisons, pooled);
//   - finger: templates/finger and matcher.FingerMatcher on the FVC2000 and
//     FVC2002 B sets, 23,040 impostor comparisons within each set.
var (
	//go:embed calibration
	calibrationFiles embed.FS
	//go:embed calibration/finger.json
	defaultFingerCalibration []byte
)

// DefaultThresholds are the built-in face decision thresholds on the
// cosine score, by algorithm (templates.Algorithm.String()). An algorithm
// without one decides at the FMR of the default algorithm's threshold (see
// Config.Thresholds).
//
// The ONNX models' thresholds are the scores at FMR 0.1% of their built-in
// calibrations (every impostor pair of the 539 shared labeled photos,
// 143,871 comparisons), where the genuine pairs of the same photos were
// rejected 2.14% (mobilefacenet-192) and 1.96% (faceplugin-512) of the
// time: `go test ./engine -run TestWriteDefaultCalibrations -calibrate`
// prints both.
var DefaultThresholds = map[string]float32{
	templates.FaceAlgorithm.String(): matcher.DefaultFaceThreshold,
	"mobilefacenet-192/v1":           0.4642,
	"faceplugin-512/v1":              0.3392,
}

// DefaultFaceCalibrations returns the built-in face calibrations, keyed by
// algorithm (templates.Algorithm.String()): every
// calibration/face-<id>-v<version>.json file, whose table must say it was
// measured for that algorithm.
func DefaultFaceCalibrations() (map[string]matcher.Calibration, error) {
	out := map[string]matcher.Calibration{}
	files, err := fs.Glob(calibrationFiles, "calibration/face-*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := calibrationFiles.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cal, err := matcher.ParseCalibration(b)
		if err != nil {
			return nil, fmt.Errorf("engine: built-in calibration %s: %w", f, err)
		}
		if want := "face-" + strings.Replace(cal.Algorithm, "/v", "-v", 1) + ".json"; path.Base(f) != want || cal.Modality != "face" {
			return nil, fmt.Errorf("engine: built-in calibration %s is of %s %s: name it %s", f, cal.Modality, cal.Algorithm, want)
		}
		out[cal.Algorithm] = cal
	}
	return out, nil
}

// DefaultCalibrations returns the built-in calibrations of dlib's face
// algorithm (templates.FaceAlgorithm) and of fingers; DefaultFaceCalibrations
// has every face algorithm's.
func DefaultCalibrations() (face, finger matcher.Calibration, err error) {
	faces, err := DefaultFaceCalibrations()
	if err != nil {
		return face, finger, err
	}
	face, ok := faces[templates.FaceAlgorithm.String()]
	if !ok {
		return face, finger, fmt.Errorf("engine: no built-in face calibration of %s", templates.FaceAlgorithm)
	}
	if finger, err = matcher.ParseCalibration(defaultFingerCalibration); err != nil {
		return face, finger, fmt.Errorf("engine: default finger calibration: %w", err)
	}
	return face, finger, nil
}

// bestOfFMR is the FMR of the best of n independent comparisons of FMR f.
func bestOfFMR(f float64, n int) float64 {
	if n <= 1 || f >= 1 {
		return f
	}
	return -math.Expm1(float64(n) * math.Log1p(-f))
}

// Evidence is one comparison's reading for fusion: its FMR (best of n
// already applied) and its likelihood ratio (bestOfLR applied).
type Evidence struct {
	FMR float64
	LR  float64
}

// bestOfLR is the likelihood ratio credited to the best of n comparisons
// whose single-comparison ratio is l: l/n for a favourable l, never below
// 1, and l itself for an unfavourable one.
func bestOfLR(l float64, n int) float64 {
	if n <= 1 || l <= 1 {
		return l
	}
	return max(1, l/float64(n))
}

// Fuse combines the evidence of independent comparisons by the rule above.
// It returns 1 for no comparison.
func Fuse(ev []Evidence) float64 {
	if len(ev) == 0 {
		return 1
	}
	// In logs: the product of ratios with a small FMR may underflow, and
	// the score must stay finite and ordered.
	var all, against float64 // Σ ln λ, and over λ < 1 only
	for _, e := range ev {
		l := math.Log(max(e.LR, math.SmallestNonzeroFloat64))
		all += l
		against += min(l, 0)
	}
	best := math.Inf(1)
	for _, e := range ev {
		l := math.Log(max(e.LR, math.SmallestNonzeroFloat64))
		others := all - l
		if l < 0 {
			others = against - l
		}
		best = min(best, math.Log(max(e.FMR, math.SmallestNonzeroFloat64))-others)
	}
	return math.Exp(min(0, best))
}

// fusedScore is -log10 of a fused FMR; an FMR that underflowed to 0 is
// read as the smallest float, so the score stays finite.
func fusedScore(fmr float64) float64 {
	return -math.Log10(max(fmr, math.SmallestNonzeroFloat64))
}

// ReadCalibration reads a calibration table and checks that it was measured
// for the given algorithm: a table of another modality or algorithm version
// maps scores that mean something else.
func ReadCalibration(path string, want templates.Algorithm) (matcher.Calibration, error) {
	cal, err := matcher.ReadCalibration(path)
	if err != nil {
		return cal, fmt.Errorf("calibration: %w", err)
	}
	if cal.Algorithm != want.String() {
		return cal, fmt.Errorf("calibration %s was measured for %s %s; this server scores that modality with %s",
			path, cal.Modality, cal.Algorithm, want)
	}
	return cal, nil
}
