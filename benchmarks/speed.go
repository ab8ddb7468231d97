package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SpeedOptions configure Speed.
type SpeedOptions struct {
	RunOptions
	// Samples is how many samples of the data set to extract (the first
	// ones); 0 means 50.
	Samples int
	// CompareFor is how long to run 1:1 comparisons; 0 means 2 s.
	CompareFor time.Duration
	// Search configures the 1:N measurement; no Sizes, none.
	Search SearchSpeedOptions
	// Log receives the scale: lines and progress notes; nil for none.
	Log io.Writer
}

// SpeedReport is what bmbench speed measured; its report.json.
type SpeedReport struct {
	Tool      string    `json:"tool"`
	Version   string    `json:"version"`
	Command   string    `json:"command"`
	Date      time.Time `json:"date"`
	Modality  string    `json:"modality"`
	Algorithm string    `json:"algorithm"`
	CPUs      int       `json:"cpus"`
	DataSet   *DataSet  `json:"dataset,omitempty"`

	// Extraction: one sample at a time (latency), then on all cores
	// (throughput). Failed samples are counted, and timed like the others.
	Extracted        int     `json:"extracted"`
	ExtractFailed    int     `json:"extract_failed"`
	ExtractMedianMS  float64 `json:"extract_median_ms"`
	ExtractP95MS     float64 `json:"extract_p95_ms"`
	ExtractPerSecond float64 `json:"extract_per_second"`
	// ComparePerSecond is 1:1 comparisons of extracted templates per
	// second on all cores.
	ComparePerSecond float64 `json:"compare_per_second"`
	// Models is each face model's extraction figures, the first model's
	// also being the fields above.
	Models []ModelSpeed `json:"models,omitempty"`
	// Search is 1:N face search at each gallery size, on synthetic vectors.
	Search []SearchSpeedResult `json:"search,omitempty"`
	// GallerySearch is 1:N search at each gallery size for modalities whose
	// galleries are built from the extracted templates (fingerprints).
	GallerySearch []GallerySpeed `json:"gallery_search,omitempty"`
}

// Speed measures extraction, 1:1 comparison and 1:N search speed. mod may
// be nil when there are no samples (only the 1:N part runs).
func Speed(ctx context.Context, mod Modality, samples []Sample, opt SpeedOptions) (SpeedReport, error) {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	r := SpeedReport{Tool: "bmbench", Version: toolVersion(), Command: "speed", Date: time.Now().UTC().Truncate(time.Second), CPUs: workers}
	if mod != nil {
		r.Modality, r.Algorithm = mod.Name(), mod.Algorithm()
	}
	logf := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format, a...)
		}
	}
	if mod != nil && len(samples) > 0 {
		n := opt.Samples
		if n <= 0 {
			n = 50
		}
		samples = samples[:min(n, len(samples))]
		// Latency: one at a time, so each time is one extraction on an
		// otherwise idle core.
		lat := make([]time.Duration, 0, len(samples))
		var tmpls []Template
		bar := newProgress(opt.Progress, int64(len(samples)), "extracting (latency)")
		for _, s := range samples {
			if err := ctx.Err(); err != nil {
				return r, err
			}
			start := time.Now()
			t, err := mod.Extract(s)
			lat = append(lat, time.Since(start))
			bar.add(1)
			var se *SampleError
			switch {
			case err == nil:
				tmpls = append(tmpls, t)
			case errors.As(err, &se):
				r.ExtractFailed++
			default:
				return r, fmt.Errorf("%s: %w", s.Path, err)
			}
		}
		bar.done()
		r.Extracted = len(samples)
		slices.Sort(lat)
		r.ExtractMedianMS = ms(lat[len(lat)/2])
		r.ExtractP95MS = ms(lat[min(len(lat)-1, len(lat)*95/100)])
		logf("extraction: %d samples, median %.1f ms, p95 %.1f ms (one at a time)\n", len(samples), r.ExtractMedianMS, r.ExtractP95MS)

		// Throughput: all cores.
		bar = newProgress(opt.Progress, int64(len(samples)), "extracting (throughput)")
		start := time.Now()
		if _, err := extractAll(ctx, mod, samples, workers, bar); err != nil {
			return r, err
		}
		bar.done()
		r.ExtractPerSecond = float64(len(samples)) / time.Since(start).Seconds()
		logf("extraction: %.1f samples/s on %d workers\n", r.ExtractPerSecond, workers)

		if len(tmpls) >= 2 {
			r.ComparePerSecond = compareRate(ctx, mod, tmpls, workers, opt.CompareFor)
			logf("1:1: %.0f comparisons/s on %d workers\n", r.ComparePerSecond, workers)
		}
		if f, ok := mod.(Finger); ok && len(opt.Search.Sizes) > 0 {
			g, err := f.searchSpeed(ctx, tmpls, opt.Search.Sizes, opt.Search.Probes, logf)
			r.GallerySearch = g
			return r, err
		}
	}
	if mod != nil && mod.Name() == "finger" {
		return r, nil
	}
	if len(opt.Search.Sizes) > 0 {
		res, err := SearchSpeed(ctx, opt.Search, opt.Log)
		r.Search = res
		if err != nil {
			return r, err
		}
	}
	return r, ctx.Err()
}

// compareRate runs Compare over pairs of tmpls on every worker for about d.
func compareRate(ctx context.Context, mod Modality, tmpls []Template, workers int, d time.Duration) float64 {
	if d <= 0 {
		d = 2 * time.Second
	}
	var (
		total atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
		sink  atomic.Uint64
	)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			n, i, j := int64(0), w%len(tmpls), (w+1)%len(tmpls)
			var acc float64
			for !stop.Load() {
				for range 256 {
					acc += mod.Compare(tmpls[i], tmpls[j])
					if j++; j == len(tmpls) {
						j = 0
						if i++; i == len(tmpls) {
							i = 0
						}
					}
				}
				n += 256
			}
			total.Add(n)
			sink.Add(uint64(int64(acc)))
		})
	}
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	return float64(total.Load()) / time.Since(start).Seconds()
}

// ModelSpeed is one face model's extraction figures.
type ModelSpeed struct {
	Model            string  `json:"model"`
	Algorithm        string  `json:"algorithm"`
	Extracted        int     `json:"extracted"`
	ExtractFailed    int     `json:"extract_failed"`
	ExtractMedianMS  float64 `json:"extract_median_ms"`
	ExtractP95MS     float64 `json:"extract_p95_ms"`
	ExtractPerSecond float64 `json:"extract_per_second"`
	ComparePerSecond float64 `json:"compare_per_second"`
}

func (r SpeedReport) modelSpeed(model string) ModelSpeed {
	return ModelSpeed{Model: model, Algorithm: r.Algorithm, Extracted: r.Extracted, ExtractFailed: r.ExtractFailed,
		ExtractMedianMS: r.ExtractMedianMS, ExtractP95MS: r.ExtractP95MS, ExtractPerSecond: r.ExtractPerSecond, ComparePerSecond: r.ComparePerSecond}
}

// modelsMarkdown is speed.md: the models' extraction figures side by side.
func (r SpeedReport) modelsMarkdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# bmbench speed by face model\n\nExtraction one photo at a time (latency) and on %d workers (throughput).\n\n", r.CPUs)
	fmt.Fprintf(&b, "| model | algorithm | photos | failed | p50 ms | p95 ms | photos/s | 1:1 comparisons/s |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.Models {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.1f | %.1f | %.1f | %.0f |\n", m.Model, m.Algorithm, m.Extracted, m.ExtractFailed,
			m.ExtractMedianMS, m.ExtractP95MS, m.ExtractPerSecond, m.ComparePerSecond)
	}
	b.WriteString("\n")
	return []byte(b.String())
}
