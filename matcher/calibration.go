package matcher

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CalibrationVersion is the version of the calibration file format that
// this package reads and writes.
const CalibrationVersion = 1

// Calibration table sizes: the calibrationExact highest distinct impostor
// scores are kept exactly, because targets at the low-FMR end (a few
// false matches in the whole impostor set) are the ones a border uses and
// each score there moves the FMR by a large factor; below them at most
// calibrationSpread more points are kept, spaced geometrically in FMR.
const (
	calibrationExact  = 1000
	calibrationSpread = 999
)

// CalibrationPoint is a measured false-match rate: the share of impostor
// comparisons that scored >= Score.
type CalibrationPoint struct {
	Score float64 `json:"score"`
	FMR   float64 `json:"fmr"`
}

// Calibration maps scores of one algorithm to the false-match rate
// measured on an impostor score distribution, so that an operator sets a
// decision threshold as a target FMR instead of a raw score.
//
// A table is only as good as the data it was measured on: the FMR it
// gives holds for travellers like the ones in DataSet (age, ethnicity,
// capture conditions, image quality) and for exactly this Algorithm. An
// agency should calibrate on its own population; and below 3/ImpostorCount
// no FMR can be measured at all, which ThresholdForFMR refuses.
type Calibration struct {
	Version   int    `json:"version"`   // CalibrationVersion
	Modality  string `json:"modality"`  // "face" or "finger"
	Algorithm string `json:"algorithm"` // the template algorithm, e.g. "dlib-resnet29/v1"
	// ImpostorCount is the number of impostor comparisons, failed ones
	// included: every FMR is a count out of it.
	ImpostorCount int `json:"impostor_count"`
	GenuineCount  int `json:"genuine_count"`
	// DataSet says what the scores were measured on, with a content hash.
	DataSet string    `json:"data_set"`
	Created time.Time `json:"created"`
	Note    string    `json:"note,omitempty"`
	// ExactFrom: every distinct impostor score >= ExactFrom is a point
	// (the table is thinned only below it), so between two points at or
	// above it no impostor scored.
	ExactFrom float64 `json:"exact_from"`
	// Points are ascending in Score and so non-increasing in FMR.
	Points []CalibrationPoint `json:"points"`
	// Genuine is the genuine score distribution (SetGenuine), ascending in
	// Score and non-increasing in Accept; without it (a table of an older
	// measurement) LRAt has no answer and fusion counts the modality's
	// likelihood ratio as 1.
	Genuine []GenuinePoint `json:"genuine,omitempty"`
}

// NewCalibration measures the FMR at the impostor scores given: one point
// per distinct finite score, FMR = share of impostor scores >= it. Failed
// comparisons (-Inf or NaN) count in ImpostorCount and never match; +Inf
// scores match at every point but are not points themselves. The 1000
// highest distinct scores are kept exactly; below them at most 999 more
// points remain, each at least a fixed factor (about 2% at a million
// impostors) above the previous one in FMR, and the lowest score is always
// kept. Only Version, ImpostorCount, ExactFrom and Points are filled; the
// caller describes the rest.
func NewCalibration(impostor []float64) Calibration {
	c := Calibration{Version: CalibrationVersion, ImpostorCount: len(impostor)}
	s := make([]float64, 0, len(impostor))
	above := 0 // +Inf scores
	for _, v := range impostor {
		switch {
		case math.IsInf(v, 1):
			above++
		case !math.IsNaN(v) && !math.IsInf(v, -1):
			s = append(s, v)
		}
	}
	slices.Sort(s)
	n := float64(len(impostor))
	// Walk from the highest score down, FMR rising.
	var desc []CalibrationPoint
	var ratio float64
	for i := len(s) - 1; i >= 0; {
		v := s[i]
		for i >= 0 && s[i] == v {
			i--
		}
		fmr := float64(len(s)-1-i+above) / n
		p := CalibrationPoint{Score: v, FMR: fmr}
		switch {
		case len(desc) < calibrationExact || i < 0:
			desc = append(desc, p)
		default:
			if ratio == 0 {
				// Spread the remaining points evenly in log FMR between
				// the last exact point and the lowest score's FMR.
				lowest := float64(len(s)+above) / n
				ratio = math.Pow(lowest/desc[len(desc)-1].FMR, 1.0/calibrationSpread)
			}
			if fmr >= desc[len(desc)-1].FMR*ratio {
				desc = append(desc, p)
			}
		}
	}
	if len(desc) > 0 {
		c.ExactFrom = desc[min(len(desc), calibrationExact)-1].Score
	}
	slices.Reverse(desc)
	c.Points = desc
	return c
}

// measurableFMR applies the rule of three: with n impostor comparisons
// and no false match, the 95% upper bound on the true FMR is 3/n, so no
// lower FMR can be told from zero. The tolerance absorbs targets such as
// 0.001 that have no exact binary form.
func measurableFMR(n int, target float64) bool {
	return float64(n)*target >= 3*(1-1e-9)
}

// ThresholdForFMR returns the lowest float32 threshold whose measured FMR
// is <= target: the matcher's scores are float32, and a score >= the
// threshold is a match.
//
// Let p be the first point (ascending score) with FMR <= target. If the
// point below it is in the exact part of the table (score >= ExactFrom),
// no impostor scored between the two, so every threshold above the lower
// one has p's FMR: the result is the smallest float32 above the lower
// point's score, which accepts the genuine scores in between that p's own
// score would reject. Where the table was thinned (FMR above about
// 1000/ImpostorCount) it is p's score rounded up to a float32: its FMR is
// still measured, never interpolated, but may be up to one spacing (about
// 2%) below the target. If no point meets the target (every impostor tied
// at the top), it is the smallest float32 above the highest point.
//
// It is an error when target is outside (0, 1) or below 3/ImpostorCount,
// the smallest FMR the table can measure.
func (c Calibration) ThresholdForFMR(target float64) (float32, error) {
	if !(target > 0 && target < 1) {
		return 0, fmt.Errorf("matcher: target FMR %v is outside (0, 1)", target)
	}
	if !measurableFMR(c.ImpostorCount, target) {
		smallest := math.Inf(1)
		if c.ImpostorCount > 0 {
			smallest = 3 / float64(c.ImpostorCount)
		}
		return 0, fmt.Errorf("matcher: target FMR %g cannot be measured with %d impostor comparisons: "+
			"the smallest measurable FMR is 3/%d = %.3g (rule of three)", target, c.ImpostorCount, c.ImpostorCount, smallest)
	}
	if len(c.Points) == 0 {
		return 0, errors.New("matcher: calibration has no points")
	}
	i := slices.IndexFunc(c.Points, func(p CalibrationPoint) bool { return p.FMR <= target })
	switch {
	case i < 0:
		return above32(c.Points[len(c.Points)-1].Score), nil
	case i > 0 && c.Points[i-1].Score >= c.ExactFrom:
		return above32(c.Points[i-1].Score), nil
	}
	return roundUp32(c.Points[i].Score), nil
}

// roundUp32 is the smallest float32 >= v.
func roundUp32(v float64) float32 {
	f := float32(v)
	if float64(f) < v {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// above32 is the smallest float32 > v.
func above32(v float64) float32 {
	f := float32(v)
	if float64(f) <= v {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// FMRAt returns the false-match rate at score, interpolated linearly
// between the two points around it, so it is continuous and non-increasing
// in score (as fusing modalities on the FMR scale needs). It clamps: below
// the lowest point it is that point's FMR, and above the highest it is the
// highest point's FMR, never lower, since no smaller FMR was measured. NaN
// for a NaN score or a table without points.
func (c Calibration) FMRAt(score float64) float64 {
	p := c.Points
	if len(p) == 0 || math.IsNaN(score) {
		return math.NaN()
	}
	if score <= p[0].Score {
		return p[0].FMR
	}
	if score >= p[len(p)-1].Score {
		return p[len(p)-1].FMR
	}
	i, _ := slices.BinarySearchFunc(p, score, func(q CalibrationPoint, s float64) int { return cmp.Compare(q.Score, s) })
	// p[i-1].Score < score <= p[i].Score
	a, b := p[i-1], p[i]
	return a.FMR + (score-a.Score)/(b.Score-a.Score)*(b.FMR-a.FMR)
}

// validCurve checks a curve of n points (score, rate) read by at: finite
// scores, strictly rising; rates in [0, 1], each a count out of count, never
// rising with the score. Errors name list[i].score or list[i].rate.
func validCurve(list, rate, countName string, count int, rises string, n int, at func(i int) (score, rate float64)) error {
	c := float64(count)
	for i := range n {
		sc, r := at(i)
		if math.IsNaN(sc) || math.IsInf(sc, 0) {
			return fmt.Errorf("%s[%d].score: %v is not finite", list, i, sc)
		}
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("%s[%d].%s: %v is outside [0, 1]", list, i, rate, r)
		}
		if k := r * c; math.Abs(k-math.Round(k)) > 1e-6*math.Max(1, k) {
			return fmt.Errorf("%s[%d].%s: %v is not a count out of %s %d", list, i, rate, r, countName, count)
		}
		if i == 0 {
			continue
		}
		if qs, qr := at(i - 1); !(sc > qs) {
			return fmt.Errorf("%s[%d].score: %v is not above %s[%d].score %v", list, i, sc, list, i-1, qs)
		} else if r > qr {
			return fmt.Errorf("%s[%d].%s: %v is above %s[%d].%s %v (%s)", list, i, rate, r, list, i-1, rate, qr, rises)
		}
	}
	return nil
}

// Validate checks what ReadCalibration requires of a file; its errors name
// the field and, for points, the index.
func (c Calibration) Validate() error {
	switch {
	case c.Version != CalibrationVersion:
		return fmt.Errorf("version: %d, want %d", c.Version, CalibrationVersion)
	case c.Modality == "":
		return errors.New("modality: missing")
	case c.Algorithm == "":
		return errors.New("algorithm: missing")
	case c.ImpostorCount <= 0:
		return fmt.Errorf("impostor_count: %d, want > 0", c.ImpostorCount)
	case c.GenuineCount < 0:
		return fmt.Errorf("genuine_count: %d, want >= 0", c.GenuineCount)
	case len(c.Points) == 0:
		return errors.New("points: empty")
	}
	if err := validCurve("points", "fmr", "impostor_count", c.ImpostorCount, "FMR cannot rise with the score", len(c.Points),
		func(i int) (float64, float64) { return c.Points[i].Score, c.Points[i].FMR }); err != nil {
		return err
	}
	if err := c.validGenuine(); err != nil {
		return err
	}
	if _, found := slices.BinarySearchFunc(c.Points, c.ExactFrom, func(p CalibrationPoint, s float64) int {
		return cmp.Compare(p.Score, s)
	}); !found {
		return fmt.Errorf("exact_from: %v is not the score of a point", c.ExactFrom)
	}
	return nil
}

// ParseCalibration decodes and validates a calibration file's contents.
// Unknown fields are errors, so that a misspelt field is not silently
// ignored by the server that loads the file.
func ParseCalibration(b []byte) (Calibration, error) {
	var c Calibration
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return c, fmt.Errorf("offset %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			return c, fmt.Errorf("%s: offset %d: %v", typ.Field, typ.Offset, err)
		case errors.Is(err, io.EOF):
			return c, errors.New("empty file")
		}
		return c, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("offset %d: data after the calibration object", dec.InputOffset())
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// ReadCalibration reads and validates the calibration file at path.
func ReadCalibration(path string) (Calibration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Calibration{}, fmt.Errorf("matcher: calibration: %w", err)
	}
	c, err := ParseCalibration(b)
	if err != nil {
		return Calibration{}, fmt.Errorf("matcher: calibration %s: %w", path, err)
	}
	return c, nil
}

// WriteFile validates c and writes it to path as indented JSON, through a
// temporary file in the same directory renamed over path, so a reader (a
// server restarting) never sees a half-written table.
func (c Calibration) WriteFile(path string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("matcher: calibration %s: %w", path, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("matcher: calibration %s: %w", path, err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("matcher: calibration: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("matcher: calibration %s: %w", path, err)
	}
	return nil
}
