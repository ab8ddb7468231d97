// Command loadtest prepares `make loadtest`: it bulk-loads N synthetic face
// subjects (one random 128-d template each, the gallery encrypted as matchd
// would) into a matchd data directory, and writes the Identify request that
// ghz sends: the template of one enrolled subject with noise added.
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

func face(r *rand.Rand) templates.Template {
	v := make([]float32, 128)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}
}

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
	opt, note, err := server.GalleryOptions(data, "", log)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "key:", note)
	st, err := store.Open(opt)
	if err != nil {
		return err
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var mate templates.Template
	// store.Import: batched unsynced writes and one sync per chunk, for a
	// gallery nobody else writes to yet.
	const chunk = 10_000
	subs := make([]store.Subject, 0, chunk)
	loaded := 0
	for loaded < n {
		subs = subs[:0]
		for i := loaded; i < min(n, loaded+chunk); i++ {
			t := face(r)
			if i == n/2 {
				mate = t
			}
			subs = append(subs, store.Subject{ID: fmt.Sprintf("L%07d", i), Name: fmt.Sprintf("Synthetic %d", i), Watchlists: []string{"load"}, Templates: []templates.Template{t}})
		}
		if err := st.Import(subs); err != nil {
			return err
		}
		loaded += len(subs)
		if loaded%100_000 == 0 {
			fmt.Fprintf(os.Stderr, "%d subjects loaded (%s)\n", loaded, time.Since(start).Round(time.Second))
		}
	}
	fmt.Fprintf(os.Stderr, "%d subjects loaded in %s\n", loaded, time.Since(start).Round(time.Millisecond))
	// The probe: the mid subject's template, perturbed.
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
