package benchmarks

import (
	"context"
	"fmt"
	"io"
	"time"

	synth "github.com/bordermatch/bordermatch/internal/synthetic"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// SyntheticVector fills v with the face vector of synthetic subject i:
// seeded, so every run and every tool (bmbench load, make loadtest) makes
// the same gallery (internal/synthetic).
func SyntheticVector(i int, v []float32) { synth.Vector(i, v) }

// SyntheticID is the id of synthetic subject i.
func SyntheticID(i int) string { return synth.ID(i) }

// SyntheticWatchlist holds every tenth synthetic subject, for searches
// filtered by watchlist.
const SyntheticWatchlist = "wanted"

// FillSynthetic writes subjects 0..n-1, each with one face template, into
// an empty store with store.Import (batched unsynced writes and one sync
// per chunk: for a gallery nobody else writes to yet), reporting progress
// to log every 100,000.
func FillSynthetic(ctx context.Context, st *store.Store, n int, log io.Writer) error {
	const chunk = 50_000
	start := time.Now()
	subs := make([]store.Subject, 0, chunk)
	for lo := 0; lo < n; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		subs = subs[:0]
		for i := lo; i < min(lo+chunk, n); i++ {
			v := make([]float32, templates.FaceDim)
			SyntheticVector(i, v)
			sub := store.Subject{ID: SyntheticID(i), Name: fmt.Sprintf("Synthetic %d", i), Templates: []templates.Template{{
				Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}}}
			if i%10 == 0 {
				sub.Watchlists = []string{SyntheticWatchlist}
			}
			subs = append(subs, sub)
		}
		if err := st.Import(subs); err != nil {
			return err
		}
		if done := lo + len(subs); done%100_000 == 0 || done == n {
			fmt.Fprintf(log, "%d subjects loaded (%s)\n", done, time.Since(start).Round(time.Second))
		}
	}
	return nil
}
