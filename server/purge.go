package server

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/store"
)

// purgeLoop runs st.Purge every interval when subjects were deleted since
// the last one, until stop is closed, so deleted subjects' bytes leave the
// disk within about an interval (store/gc.go).
func purgeLoop(st *store.Store, interval time.Duration, log zerolog.Logger, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n := st.DeletesSincePurge()
		if n == 0 {
			continue
		}
		start := time.Now()
		ps, err := st.Purge()
		if err != nil {
			log.Error().Err(err).Msg("purging deleted subjects")
			continue
		}
		log.Info().Int64("deleted_subjects", n).Int64("lsm_bytes", ps.LSMBytes).Int64("vlog_bytes", ps.VlogBytes).
			Dur("took_ms", time.Since(start)).Msg("purged deleted subjects from disk")
	}
}
