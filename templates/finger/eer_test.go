package finger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bordermatch/bordermatch/matcher"
)

// TestEvalEER measures images → templates → verify on the FVC B sets with
// the "all" protocol: genuine = every pair of impressions of a finger (280),
// impostor = every pair of impressions of different fingers (2,880). An
// image that fails extraction scores 0 against everything (FVC's ghost).
func TestEvalEER(t *testing.T) {
	dir := needData(t)
	e := NewExtractor(tuned(t, Config{}))
	var m matcher.FingerMatcher
	var mean2002 float64
	worst := 0.0
	for si, set := range fvcSets {
		if !strings.Contains(set.name, os.Getenv("FINGER_SETS")) {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, set.name, "*.tif"))
		tpl := make(map[[2]int]*matcher.FingerTemplate)
		var mu sync.Mutex
		var wg sync.WaitGroup
		fails := 0
		work := make(chan string)
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for f := range work {
					var finger, imp int
					fmt.Sscanf(filepath.Base(f), "%d_%d.tif", &finger, &imp)
					res, err := e.Extract(loadGray(t, f), set.dpi)
					var ft *matcher.FingerTemplate
					if err == nil || errors.Is(err, ErrLowQuality) {
						ft, err = matcher.PrepareFinger(res.View)
					}
					mu.Lock()
					if err != nil {
						fails++
					}
					tpl[[2]int{finger, imp}] = ft
					mu.Unlock()
				}
			})
		}
		for _, f := range files {
			work <- f
		}
		close(work)
		wg.Wait()
		score := func(a, b *matcher.FingerTemplate) float64 {
			if a == nil || b == nil {
				return 0
			}
			return m.Score(a, b)
		}
		var gen, imp []float64
		for f := 101; f <= 110; f++ {
			for i := 1; i <= 8; i++ {
				for j := i + 1; j <= 8; j++ {
					gen = append(gen, score(tpl[[2]int{f, i}], tpl[[2]int{f, j}]))
				}
				for g := f + 1; g <= 110; g++ {
					for j := 1; j <= 8; j++ {
						imp = append(imp, score(tpl[[2]int{f, i}], tpl[[2]int{g, j}]))
					}
				}
			}
		}
		r := equalErrorRate(gen, imp)
		if si < 4 {
			mean2002 += r / 4
			worst = max(worst, r)
		}
		t.Logf("%s: EER %.2f%% (all protocol: %d genuine, %d impostor; %d failed extractions)", set.name, 100*r, len(gen), len(imp), fails)
	}
	t.Logf("FVC2002 B mean EER %.2f%%, worst %.2f%% (bar: mean ≤ 4%%, none above 8%%)", 100*mean2002, 100*worst)
}

// equalErrorRate sweeps the threshold over every score and returns the
// mean of FMR and FNMR where they are closest (FVC's estimate).
func equalErrorRate(gen, imp []float64) float64 {
	g, im := slices.Clone(gen), slices.Clone(imp)
	slices.Sort(g)
	slices.Sort(im)
	th := append(slices.Clone(g), im...)
	slices.Sort(th)
	best, gap := 1.0, 2.0
	for _, x := range th {
		nb, _ := slices.BinarySearch(g, x) // genuine below x are rejected
		ib, _ := slices.BinarySearch(im, x)
		fnmr := float64(nb) / float64(len(g))
		fmr := float64(len(im)-ib) / float64(len(im))
		if d := fnmr - fmr; d*d < gap*gap {
			gap, best = max(d, -d), (fnmr+fmr)/2
		}
	}
	return best
}

func TestEqualErrorRate(t *testing.T) {
	for _, c := range []struct {
		gen, imp []float64
		want     float64
	}{
		{[]float64{0.9, 0.8, 0.7}, []float64{0.1, 0.2, 0.3}, 0},
		{[]float64{0.1, 0.2}, []float64{0.8, 0.9}, 1},
		{[]float64{0.5, 0.9}, []float64{0.1, 0.6}, 0.5},
	} {
		if got := equalErrorRate(c.gen, c.imp); got != c.want {
			t.Errorf("equalErrorRate(%v, %v) = %v, want %v", c.gen, c.imp, got, c.want)
		}
	}
}

// tuned applies FINGER_CFG ("Field=value,…", fields of Config) to c, for
// trying parameters without editing code.
func tuned(t testing.TB, c Config) Config {
	env := os.Getenv("FINGER_CFG")
	if env == "" {
		return c
	}
	v := reflect.ValueOf(&c).Elem()
	for _, kv := range strings.Split(env, ",") {
		k, val, _ := strings.Cut(kv, "=")
		f := v.FieldByName(k)
		if !f.IsValid() {
			t.Fatalf("FINGER_CFG: no field %q", k)
		}
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("FINGER_CFG: %s: %v", kv, err)
		}
		if f.Kind() == reflect.Int {
			f.SetInt(int64(x))
		} else {
			f.SetFloat(x)
		}
	}
	t.Logf("config %+v", c)
	return c
}
