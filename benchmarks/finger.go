package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/finger"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// Finger is the fingerprint modality: minutiae from templates/finger,
// compared by the MCC matcher, as matchd scores fingerprints.
type Finger struct {
	Extractor *finger.Extractor
	Matcher   *matcher.FingerMatcher
	// DPI is the resolution of images that do not declare one (the FVC
	// TIFFs declare a bogus 1 dpi, read as none); 0 means 500. FVC2002 DB2
	// is 569 dpi.
	DPI int
}

// NewFinger returns the fingerprint modality with the extractor's defaults
// but the quality floor: images below it are failures to enrol (0: none,
// as the FVC evaluations attempt every image).
func NewFinger(dpi, qualityFloor int) Finger {
	return Finger{Extractor: finger.NewExtractor(finger.Config{DPI: dpi, QualityFloor: qualityFloor}), Matcher: &matcher.FingerMatcher{}, DPI: dpi}
}

func newFingerModality(dpi, qualityFloor int) (Modality, error) {
	if dpi != 0 && !fpimage.PlausibleDPI(dpi) {
		return nil, usageErr{fmt.Errorf("--dpi %d: want %d..%d", dpi, fpimage.MinDPI, fpimage.MaxDPI)}
	}
	if qualityFloor < 0 || qualityFloor > 100 {
		return nil, usageErr{fmt.Errorf("--quality-floor %d: want 0..100 (0: accept all)", qualityFloor)}
	}
	return NewFinger(dpi, qualityFloor), nil
}

func (f Finger) Name() string      { return "finger" }
func (f Finger) Algorithm() string { return templates.FingerAlgorithm.String() }

// DefaultThreshold is the score at which the server's built-in finger
// calibration measures an FMR of engine.DefaultMaxFMR (a single finger
// decides at that FMR on the fused scale).
func (f Finger) DefaultThreshold() float64 {
	_, cal, err := engine.DefaultCalibrations()
	if err != nil {
		return 0
	}
	t, err := cal.ThresholdForFMR(engine.DefaultMaxFMR)
	if err != nil {
		return 0
	}
	return float64(t)
}

// Compare is the MCC similarity, 0..1.
func (f Finger) Compare(a, b Template) float64 {
	return f.Matcher.Score(a.(*matcher.FingerTemplate), b.(*matcher.FingerTemplate))
}

// Extract decodes the image, finds its minutiae and prepares the matcher's
// template. Unreadable, blank, too small and too poor images are sample
// failures.
func (f Finger) Extract(s Sample) (Template, error) {
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, err
	}
	if recordExts[strings.ToLower(filepath.Ext(s.Path))] {
		// A minutiae record (ISO/IEC 19794-2, ANSI INCITS 378): matching
		// alone, on another extractor's minutiae.
		rec, err := minutiae.Parse(b)
		if err != nil {
			return nil, &SampleError{Path: s.Path, Err: err}
		}
		t, err := matcher.PrepareFinger(rec.Views[0])
		if err != nil {
			return nil, &SampleError{Path: s.Path, Err: err}
		}
		return t, nil
	}
	img, info, err := fpimage.Decode(b)
	if err != nil {
		return nil, &SampleError{Path: s.Path, Err: err}
	}
	dpi := info.DPI
	if dpi == 0 {
		dpi = f.DPI
	}
	res, err := f.Extractor.Extract(img, dpi)
	if err != nil {
		if errors.Is(err, finger.ErrLowQuality) || errors.Is(err, finger.ErrTooSmall) || errors.Is(err, finger.ErrNoFingerprint) {
			return nil, &SampleError{Path: s.Path, Err: err}
		}
		return nil, err
	}
	t, err := matcher.PrepareFinger(res.View)
	if err != nil {
		return nil, &SampleError{Path: s.Path, Err: err}
	}
	return t, nil
}

// recordExts are the file names read as minutiae records rather than images.
var recordExts = map[string]bool{".iso": true, ".ist": true, ".ansi": true, ".fmr": true}

// GallerySpeed is 1:N search speed at one gallery size.
type GallerySpeed struct {
	N                    int     `json:"n"`
	Probes               int     `json:"probes"`
	ProbeP50MS           float64 `json:"probe_p50_ms"`
	ProbeP95MS           float64 `json:"probe_p95_ms"`
	ProbeP99MS           float64 `json:"probe_p99_ms"`
	ComparisonsPerSecond float64 `json:"comparisons_per_second"`
	Kernel               string  `json:"kernel"`
}

// searchSpeed measures 1:N search over galleries of the extracted
// templates, repeated under distinct subject ids up to each size (every
// comparison is a real one; the gallery is not that many distinct
// fingers), probing with the templates in turn.
func (f Finger) searchSpeed(ctx context.Context, tmpls []Template, sizes []int, probes int, logf func(string, ...any)) ([]GallerySpeed, error) {
	if len(tmpls) == 0 {
		return nil, errors.New("1:N speed needs extracted templates: give --data")
	}
	if probes <= 0 {
		probes = 50
	}
	var out []GallerySpeed
	for _, n := range sizes {
		ix := matcher.NewFingerIndex()
		for i := range n {
			if err := ix.Add("s"+strconv.Itoa(i), minutiae.PositionUnknown, tmpls[i%len(tmpls)].(*matcher.FingerTemplate)); err != nil {
				return out, err
			}
		}
		lat := make([]time.Duration, 0, probes)
		start := time.Now()
		for p := range probes {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			t0 := time.Now()
			if _, err := ix.Search(tmpls[p%len(tmpls)].(*matcher.FingerTemplate), matcher.SearchOptions{K: 10}); err != nil {
				return out, err
			}
			lat = append(lat, time.Since(t0))
		}
		total := time.Since(start)
		slices.Sort(lat)
		g := GallerySpeed{N: n, Probes: probes, Kernel: matcher.FingerKernel(),
			ProbeP50MS: ms(lat[len(lat)/2]), ProbeP95MS: ms(lat[len(lat)*95/100]), ProbeP99MS: ms(lat[len(lat)*99/100]),
			ComparisonsPerSecond: float64(n) * float64(probes) / total.Seconds()}
		logf("finger 1:N: n=%d probe p50 %.2f ms p95 %.2f ms p99 %.2f ms, %.0f comparisons/s (%s kernel)\n",
			n, g.ProbeP50MS, g.ProbeP95MS, g.ProbeP99MS, g.ComparisonsPerSecond, g.Kernel)
		out = append(out, g)
	}
	return out, nil
}
