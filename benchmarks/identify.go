package benchmarks

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/jpeg"
	"image/png"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"

	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
)

// FaceExtractor makes face templates; templates.FaceExtractor implements it.
type FaceExtractor interface {
	Extract(img []byte, opt templates.ExtractOptions) (templates.Face, error)
}

// IdentifyOptions configures EvaluateIdentification.
type IdentifyOptions struct {
	// PadCrops retries an image in which no face was found with a border
	// around it: tightly cropped face chips leave a detector no context.
	PadCrops bool
}

// Distribution summarises a set of scores.
type Distribution struct {
	N            int
	Mean, StdDev float64
	Min, Max     float64
}

func distribution(s []float64) Distribution {
	d := Distribution{N: len(s)}
	if len(s) == 0 {
		return d
	}
	d.Min, d.Max = math.Inf(1), math.Inf(-1)
	for _, v := range s {
		d.Mean += v
		d.Min = math.Min(d.Min, v)
		d.Max = math.Max(d.Max, v)
	}
	d.Mean /= float64(len(s))
	for _, v := range s {
		d.StdDev += (v - d.Mean) * (v - d.Mean)
	}
	d.StdDev = math.Sqrt(d.StdDev / float64(len(s)))
	return d
}

// IdentifyResult is the outcome of a closed-set identification run.
type IdentifyResult struct {
	Identities int // identities enrolled
	Probes     int // probes searched (mated: their identity is enrolled)
	// FailedToEnrol lists enrolment samples with no usable face; their
	// identity is then enrolled from its next sample, if any.
	FailedToEnrol []string
	// FailedToAcquire lists probes with no usable face. They count as misses.
	FailedToAcquire []string
	Rank1           int          // probes whose best candidate is their own identity
	Genuine         Distribution // probe vs its own identity's enrolled template
	Impostor        Distribution // probe vs every other identity's template
	// DPrime is the separation of the two distributions:
	// |mean_g - mean_i| / sqrt((sd_g² + sd_i²)/2).
	DPrime float64
	// Misses names the probes identified as someone else.
	Misses            []string
	genuine, impostor []float64
}

// Rank1Rate is the rank-1 identification rate over all probes, failures to
// acquire included as misses.
func (r IdentifyResult) Rank1Rate() float64 {
	if r.Probes == 0 {
		return 0
	}
	return float64(r.Rank1) / float64(r.Probes)
}

// GenuineScores and ImpostorScores return the raw scores.
func (r IdentifyResult) GenuineScores() []float64  { return r.genuine }
func (r IdentifyResult) ImpostorScores() []float64 { return r.impostor }

// EvaluateIdentification enrols the first usable sample of each identity and
// searches with all the others (1:N against the full gallery).
func EvaluateIdentification(ex FaceExtractor, samples []Sample, opt IdentifyOptions) (IdentifyResult, error) {
	faces, errs := extractAll(ex, samples, opt)
	var res IdentifyResult
	ix := matcher.NewIndex(128)
	enrolled := map[string][]float32{}
	var probes []int
	for i, s := range samples {
		if _, ok := enrolled[s.Identity]; ok {
			probes = append(probes, i)
			continue
		}
		if errs[i] != nil {
			if isSampleError(errs[i]) {
				res.FailedToEnrol = append(res.FailedToEnrol, fmt.Sprintf("%s: %v", s.Path, errs[i]))
				continue
			}
			return res, fmt.Errorf("%s: %w", s.Path, errs[i])
		}
		v := faces[i].Template.Vector
		if err := ix.Add(matcher.Entry{SubjectID: s.Identity, Vector: v}); err != nil {
			return res, err
		}
		enrolled[s.Identity] = v
	}
	res.Identities = len(enrolled)
	for _, i := range probes {
		s := samples[i]
		res.Probes++
		if errs[i] != nil {
			if !isSampleError(errs[i]) {
				return res, fmt.Errorf("%s: %w", s.Path, errs[i])
			}
			res.FailedToAcquire = append(res.FailedToAcquire, fmt.Sprintf("%s: %v", s.Path, errs[i]))
			continue
		}
		v := faces[i].Template.Vector
		hits, err := ix.Search(v, matcher.SearchOptions{K: 1})
		if err != nil {
			return res, err
		}
		if len(hits) > 0 && hits[0].SubjectID == s.Identity {
			res.Rank1++
		} else if len(hits) > 0 {
			res.Misses = append(res.Misses, fmt.Sprintf("%s → %s (%.3f)", s.Path, hits[0].SubjectID, hits[0].Score))
		}
		ids := make([]string, 0, len(enrolled))
		for id := range enrolled {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			score := float64(matcher.Cosine(v, enrolled[id]))
			if id == s.Identity {
				res.genuine = append(res.genuine, score)
			} else {
				res.impostor = append(res.impostor, score)
			}
		}
	}
	res.Genuine, res.Impostor = distribution(res.genuine), distribution(res.impostor)
	if res.Genuine.N > 0 && res.Impostor.N > 0 {
		res.DPrime = math.Abs(res.Genuine.Mean-res.Impostor.Mean) /
			math.Sqrt((res.Genuine.StdDev*res.Genuine.StdDev+res.Impostor.StdDev*res.Impostor.StdDev)/2)
	}
	return res, nil
}

// isSampleError reports whether err is about the sample (it counts as a
// failure to enrol or acquire) rather than about the system.
func isSampleError(err error) bool {
	return errors.Is(err, templates.ErrNoFace) || errors.Is(err, templates.ErrMultipleFaces) ||
		errors.Is(err, templates.ErrImageUnreadable) || errors.Is(err, templates.ErrUnsupportedFormat) ||
		errors.Is(err, templates.ErrImageTooLarge)
}

// extractAll extracts every sample on all cores.
func extractAll(ex FaceExtractor, samples []Sample, opt IdentifyOptions) ([]templates.Face, []error) {
	faces := make([]templates.Face, len(samples))
	errs := make([]error, len(samples))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				faces[i], errs[i] = extractFile(ex, samples[i].Path, opt)
			}
		}()
	}
	for i := range samples {
		next <- i
	}
	close(next)
	wg.Wait()
	return faces, errs
}

func extractFile(ex FaceExtractor, path string, opt IdentifyOptions) (templates.Face, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return templates.Face{}, err
	}
	f, err := ex.Extract(b, templates.ExtractOptions{})
	if err == nil || !opt.PadCrops || !errors.Is(err, templates.ErrNoFace) {
		return f, err
	}
	padded, perr := pad(b)
	if perr != nil {
		return f, err
	}
	return ex.Extract(padded, templates.ExtractOptions{})
}

// pad puts the image in the middle of a grey canvas twice its size, giving a
// detector the context a tight crop lacks.
func pad(b []byte) ([]byte, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r := img.Bounds()
	canvas := image.NewRGBA(image.Rect(0, 0, 2*r.Dx(), 2*r.Dy()))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	draw.Draw(canvas, r.Sub(r.Min).Add(image.Pt(r.Dx()/2, r.Dy()/2)), img, r.Min, draw.Src)
	var out bytes.Buffer
	if err := png.Encode(&out, canvas); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
