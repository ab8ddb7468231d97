// Command loadtest prepares `make loadtest`: it bulk-loads N synthetic face
// subjects (one random 128-d template each, the gallery encrypted as matchd
// would) into a matchd data directory, and writes the Identify request that
// ghz sends: the template of one enrolled subject with noise added.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/benchmarks"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

func main() {
	data := flag.String("data", "", "matchd data directory (new)")
	n := flag.Int("n", 1_000_000, "subjects to load")
	probe := flag.String("probe", "", "where to write the Identify request (JSON, for ghz -D)")
	flag.Parse()
	if err := run(*data, *n, *probe); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(data string, n int, probePath string) error {
	if data == "" || probePath == "" || n < 1 {
		return fmt.Errorf("usage: loadtest --data DIR --n N --probe FILE")
	}
	log := zerolog.New(os.Stderr)
	opt, note, err := engine.GalleryOptions(data, "", log)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "key:", note)
	st, err := store.Open(opt)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	if err := benchmarks.FillSynthetic(context.Background(), st, n, os.Stderr); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d subjects loaded in %s\n", n, time.Since(start).Round(time.Millisecond))
	// The probe: the mid subject's template, perturbed.
	mate := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: make([]float32, templates.FaceDim)}
	benchmarks.SyntheticVector(n/2, mate.Vector)
	r := rand.New(rand.NewPCG(1, 2))
	for j := range mate.Vector {
		mate.Vector[j] += 0.3 * float32(r.NormFloat64())
	}
	b, err := mate.MarshalBinary()
	if err != nil {
		return err
	}
	req, _ := json.Marshal(map[string]any{"probe": map[string]any{"template": base64.StdEncoding.EncodeToString(b)}, "top_k": 10})
	return os.WriteFile(probePath, req, 0o644)
}
