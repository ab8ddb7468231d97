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

// Fusion of modalities.
//
// Face cosines and finger MCC scores live on unrelated scales, so the
// server puts every score on one scale first: the false-match rate (FMR)
// its modality's calibration table measured at that score (the share of
// impostor comparisons scoring at least as high). A comparison of a probe
// with the best of n templates of a subject (n face photos, or n fingers of
// compatible position) has the FMR of the best of n impostor comparisons,
// 1-(1-f)^n, which the server uses, so that enrolling more samples does not
// raise impostor scores unnoticed.
//
// The rule: with the FMRs f1..fk of the k comparisons made (the face, and
// every probe finger the subject has a finger to compare with), and
// assuming impostor scores of different modalities and different fingers
// independent, p = f1·…·fk, and the fused FMR is the chance that k
// independent impostor comparisons give a product as small:
//
//	fused FMR = p · Σ_{j<k} (-ln p)^j / j!
//
// (the product of k uniform variables; Fisher's method of combining
// p-values). It is exact under independence, equals f1 for one comparison,
// and, unlike the plain product, does not reward an impostor for merely
// being compared more times. The fused score is -log10(fused FMR): 3 means
// one impostor in a thousand would score as high. A candidate matches when
// its fused FMR is at most the decision's max FMR (matchd --max-fmr, default
// DefaultMaxFMR; per request IdentifyRequest.max_fmr), i.e. when its fused
// score is at least -log10(max FMR).
//
// Limits. Independence holds well for face versus finger and reasonably for
// different fingers of one person; it fails for two impressions of one
// finger, which is why a probe has at most one finger per position. An FMR
// is never below the smallest one the table measured (1/impostor count), so
// the fused score of k comparisons is bounded by about k·log10(impostor
// count) and a single finger cannot claim more than its table measured.

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

// FuseFMR combines the FMRs of independent comparisons by the rule above.
// It returns 1 for no comparison.
func FuseFMR(fmrs []float64) float64 {
	if len(fmrs) == 0 {
		return 1
	}
	logp := 0.0
	for _, f := range fmrs {
		logp += math.Log(max(f, math.SmallestNonzeroFloat64))
	}
	// p·Σ (-ln p)^j/j!, term by term in logs so that p underflowing to
	// zero (k large FMR floors) still gives the right score.
	x := -logp
	sum, term := 0.0, 1.0
	for j := range len(fmrs) {
		if j > 0 {
			term *= x / float64(j)
		}
		sum += term
	}
	return min(1, math.Exp(logp+math.Log(sum)))
}

// fusedScore is -log10 of a fused FMR.
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
