package benchmarks

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bordermatch/bordermatch/templates"
)

// Protocol says which pairs of samples a verification run compares.
type Protocol string

const (
	// ProtocolAll compares every pair of samples once: same identity
	// genuine, different identities impostor. It uses all the data, so it
	// measures the lowest FMR a data set allows.
	ProtocolAll Protocol = "all"
	// ProtocolFVC is the Fingerprint Verification Competitions' protocol:
	// genuine, every pair of samples of an identity; impostor, the first
	// sample of each identity against the first of every other, one
	// direction. It gives numbers comparable with published FVC results,
	// but few impostor pairs (45 on a 10-finger B set).
	ProtocolFVC Protocol = "fvc"
)

// ParseProtocol checks a --protocol value.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case ProtocolAll, ProtocolFVC:
		return p, nil
	}
	return "", fmt.Errorf("protocol %q: want all or fvc", s)
}

// VerifyResult is the outcome of a 1:1 evaluation.
type VerifyResult struct {
	Samples, Identities int
	// FailedToEnrol lists the samples that gave no template. Every
	// comparison involving one scores -Inf: a non-match at any threshold,
	// as FVC scores a rejected enrolment.
	FailedToEnrol []Failure
	// Genuine and Impostor are the comparison scores, in no set order.
	Genuine, Impostor []float64
	// GenuinePairs[k] and ImpostorPairs[k] are the samples (indexes into
	// the samples evaluated) that Genuine[k] and Impostor[k] compare.
	GenuinePairs, ImpostorPairs []SamplePair
	// Quality[i] is sample i's face quality; nil where the sample failed
	// or its modality has none. Quality itself is nil when no sample has
	// one.
	Quality []*templates.FaceQuality
	// ExtractTimes[i] is how long sample i's extraction took, on
	// RunOptions.Workers workers at once.
	ExtractTimes []time.Duration
}

// SamplePair names the two samples of a comparison by their index.
type SamplePair struct{ A, B int32 }

// scored is one comparison's score and samples.
type scored struct {
	score float64
	pair  SamplePair
}

// split returns the scores and the pairs of s, in the same order.
func split(s []scored) ([]float64, []SamplePair) {
	scores, ps := make([]float64, len(s)), make([]SamplePair, len(s))
	for k, v := range s {
		scores[k], ps[k] = v.score, v.pair
	}
	return scores, ps
}

// FTE is the failure-to-enrol rate: failed samples over all samples.
func (r VerifyResult) FTE() float64 {
	if r.Samples == 0 {
		return 0
	}
	return float64(len(r.FailedToEnrol)) / float64(r.Samples)
}

// EvaluateVerification extracts every sample and scores the pairs the
// protocol names, on all cores. progress, if not nil, receives a bar.
func EvaluateVerification(ctx context.Context, mod Modality, samples []Sample, proto Protocol, opt RunOptions) (VerifyResult, error) {
	res := VerifyResult{Samples: len(samples), Identities: Identities(samples)}
	if res.Identities < 2 {
		return res, fmt.Errorf("%d identities: impostor comparisons need at least 2", res.Identities)
	}
	bar := newProgress(opt.Progress, int64(len(samples)), "extracting")
	x, err := extractAll(ctx, mod, samples, opt.Workers, bar)
	bar.done()
	if err != nil {
		return res, err
	}
	res.FailedToEnrol = failures(x, samples)
	res.ExtractTimes = x.times
	res.Quality = x.qualities()
	score := func(i, j int) scored {
		p := SamplePair{A: int32(i), B: int32(j)}
		if !x.ok(i) || !x.ok(j) {
			return scored{math.Inf(-1), p}
		}
		return scored{mod.Compare(x.templates[i], x.templates[j]), p}
	}

	var genuine, impostor []scored
	switch proto {
	case ProtocolAll:
		n := len(samples)
		total := int64(n) * int64(n-1) / 2
		bar := newProgress(opt.Progress, total, "comparing")
		genuine, impostor, err = pairs(ctx, n, opt.Workers, bar, func(i int, g, im []scored) ([]scored, []scored) {
			for j := i + 1; j < n; j++ {
				if samples[i].Identity == samples[j].Identity {
					g = append(g, score(i, j))
				} else {
					im = append(im, score(i, j))
				}
			}
			return g, im
		})
		bar.done()
	case ProtocolFVC:
		var firsts []int
		for i := range samples {
			if i == 0 || samples[i].Identity != samples[i-1].Identity {
				firsts = append(firsts, i)
			}
		}
		n := len(samples)
		genuine, impostor, err = pairs(ctx, n, opt.Workers, nil, func(i int, g, im []scored) ([]scored, []scored) {
			for j := i + 1; j < n && samples[j].Identity == samples[i].Identity; j++ {
				g = append(g, score(i, j))
			}
			return g, im
		})
		for a, i := range firsts {
			for _, j := range firsts[a+1:] {
				impostor = append(impostor, score(i, j))
			}
		}
	default:
		return res, fmt.Errorf("protocol %q: want all or fvc", proto)
	}
	res.Genuine, res.GenuinePairs = split(genuine)
	res.Impostor, res.ImpostorPairs = split(impostor)
	return res, err
}

// pairs runs row(i) for i in [0, n) on workers goroutines, each appending
// to its own genuine and impostor slices, and joins them. Rows are handed
// out one at a time because their lengths differ (row i of "every pair"
// has n-1-i pairs).
func pairs[T any](ctx context.Context, n, workers int, bar *progress, row func(i int, g, im []T) ([]T, []T)) (genuine, impostor []T, err error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var g, im []T
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				ng, ni := len(g), len(im)
				g, im = row(i, g, im)
				bar.add(len(g) - ng + len(im) - ni)
			}
			mu.Lock()
			genuine, impostor = append(genuine, g...), append(impostor, im...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return genuine, impostor, ctx.Err()
}

func failures(x extraction, samples []Sample) []Failure {
	var out []Failure
	for i := range samples {
		if f, ok := x.failures[i]; ok {
			out = append(out, f)
		}
	}
	return out
}

// qualities is each sample's face quality, nil when no template has one.
func (x extraction) qualities() []*templates.FaceQuality {
	out := make([]*templates.FaceQuality, len(x.templates))
	has := false
	for i, t := range x.templates {
		if q, ok := faceQuality(t); ok {
			out[i], has = &q, true
		}
	}
	if !has {
		return nil
	}
	return out
}

// RunOptions are what every evaluation takes besides its data.
type RunOptions struct {
	// Workers is the number of goroutines; <= 0 means GOMAXPROCS.
	Workers int
	// Progress receives progress bars when it is a terminal; nil for none.
	Progress io.Writer
}
