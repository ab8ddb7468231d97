package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Template is a modality's comparable form of one sample: whatever its
// Compare takes.
type Template any

// Modality is what an evaluation needs of a biometric modality: a way to
// make a template from a sample file and a comparison score. Higher scores
// mean more alike. A new modality is one implementation of this.
type Modality interface {
	// Name is the --modality value: "face", "finger".
	Name() string
	// Algorithm names the extractor and comparator and their version, as
	// templates carry it ("dlib-resnet29/v1"): a report or a calibration
	// is only valid for that algorithm.
	Algorithm() string
	// Extract makes the template of one sample. An error wrapped in a
	// *SampleError says the sample itself is unusable (no face, too poor a
	// print): that is a failure to enrol or acquire, which the evaluation
	// counts. Any other error stops the evaluation.
	Extract(s Sample) (Template, error)
	// Compare scores two templates Extract made. It must be safe for
	// concurrent use.
	Compare(a, b Template) float64
	// DefaultThreshold is the decision threshold the engine uses by default,
	// shown in reports beside the measured rates.
	DefaultThreshold() float64
}

// SampleError marks a sample that failed extraction for a reason of its
// own — a failure to enrol (FTE) or to acquire (FTA) in ISO/IEC 19795-1's
// terms — rather than a fault of the system.
type SampleError struct {
	Path string
	Err  error
}

func (e *SampleError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *SampleError) Unwrap() error { return e.Err }

// Failure is a sample that failed extraction, for reports.
type Failure struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	// Kind is the reason's kind, for counting them: "no face found",
	// "several faces", "unreadable image"…
	Kind string `json:"kind,omitempty"`
}

// extraction holds the templates of a data set, or why a sample has none.
type extraction struct {
	templates []Template // nil where the sample failed
	failures  map[int]Failure
	// times[i] is how long sample i's extraction took (failed ones too),
	// with the other workers extracting beside it.
	times []time.Duration
}

func (x extraction) ok(i int) bool { return x.templates[i] != nil }

// extractAll runs mod.Extract over every sample on workers goroutines
// (GOMAXPROCS when <= 0). It stops at the first system error or when ctx
// is cancelled.
func extractAll(parent context.Context, mod Modality, samples []Sample, workers int, prog *progress) (extraction, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	x := extraction{templates: make([]Template, len(samples)), failures: map[int]Failure{}, times: make([]time.Duration, len(samples))}
	errs := make([]error, len(samples))
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				t, err := mod.Extract(samples[i])
				x.times[i] = time.Since(start)
				var se *SampleError
				if err != nil && !errors.As(err, &se) {
					cancel()
				}
				x.templates[i], errs[i] = t, err
				prog.add(1)
			}
		})
	}
feed:
	for i := range samples {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		var se *SampleError
		switch {
		case err == nil:
		case errors.As(err, &se):
			x.templates[i] = nil
			x.failures[i] = Failure{Path: samples[i].Path, Reason: se.Err.Error(), Kind: failureReason(se.Err)}
		default:
			return x, fmt.Errorf("%s: %w", samples[i].Path, err)
		}
	}
	// Samples never handed out (Ctrl-C) have neither a template nor a
	// failure: the run is not complete, so it says so rather than report.
	return x, parent.Err()
}
