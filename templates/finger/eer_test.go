package finger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
	"github.com/bordermatch/bordermatch/matcher"
)

// eerBar is the highest EER each FVC B set may score in TestEvalEER (all
// protocol, every image attempted): the measured value (README, "Measured
// here") plus about one more genuine pair in error (1/280 = 0.36%), so
// that a real regression of the extractor or the matcher fails.
var eerBar = map[string]float64{
	"fvc2002_db1_b": 0.0180, "fvc2002_db2_b": 0.0250, "fvc2002_db3_b": 0.0360, "fvc2002_db4_b": 0.0360,
	"fvc2000_db1_b": 0.0395, "fvc2000_db2_b": 0.0345, "fvc2000_db3_b": 0.0255, "fvc2000_db4_b": 0.0465,
}

// meanEERBar bounds the mean EER of the four FVC2002 B sets (measured
// 2.50%).
const meanEERBar = 0.0260

// TestEvalEER measures images → templates → verify on the FVC B sets with
// the "all" protocol: genuine = every pair of impressions of a finger (280),
// impostor = every pair of impressions of different fingers (2,880). An
// image that fails extraction scores 0 against everything (FVC's ghost).
// FINGER_SETS=name runs only the sets whose name contains it.
func TestEvalEER(t *testing.T) {
	dir := needData(t)
	e := NewExtractor(tuned(t, Config{}))
	var m matcher.FingerMatcher
	var mean2002 float64
	n2002 := 0
	for _, set := range fvcSets {
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
		var genPair [][3]int
		for f := 101; f <= 110; f++ {
			for i := 1; i <= 8; i++ {
				for j := i + 1; j <= 8; j++ {
					gen = append(gen, score(tpl[[2]int{f, i}], tpl[[2]int{f, j}]))
					genPair = append(genPair, [3]int{f, i, j})
				}
				for g := f + 1; g <= 110; g++ {
					for j := 1; j <= 8; j++ {
						imp = append(imp, score(tpl[[2]int{f, i}], tpl[[2]int{g, j}]))
					}
				}
			}
		}
		r, thr, ok := errrate.EER(gen, imp)
		if !ok {
			t.Fatalf("%s: no EER (%d genuine, %d impostor scores)", set.name, len(gen), len(imp))
		}
		if strings.HasPrefix(set.name, "fvc2002") {
			mean2002 += r / 4
			n2002++
		}
		if os.Getenv("FINGER_WORST") != "" {
			for k, g := range gen {
				if g < thr {
					p := genPair[k]
					t.Logf("  genuine %d_%d–%d_%d scores %.4f (cylinders %d, %d)", p[0], p[1], p[0], p[2], g, cyls(tpl[[2]int{p[0], p[1]}]), cyls(tpl[[2]int{p[0], p[2]}]))
				}
			}
		}
		t.Logf("%s: EER %.2f%% at %.4f (all protocol: %d genuine, %d impostor; %d failed extractions)", set.name, 100*r, thr, len(gen), len(imp), fails)
		if r > eerBar[set.name] {
			t.Errorf("%s: EER %.2f%%, above its bar %.2f%%", set.name, 100*r, 100*eerBar[set.name])
		}
	}
	if n2002 == 4 {
		t.Logf("FVC2002 B mean EER %.2f%% (bar %.2f%%)", 100*mean2002, 100*meanEERBar)
		if mean2002 > meanEERBar {
			t.Errorf("FVC2002 B mean EER %.2f%%, above its bar %.2f%%", 100*mean2002, 100*meanEERBar)
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

func cyls(t *matcher.FingerTemplate) int {
	if t == nil {
		return 0
	}
	return t.Cylinders()
}
