package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// callsShare is the part of ShutdownGrace in-flight calls may take; closing
// the engine, the audit log and the gallery has the rest, so that a stop
// whose calls took their whole share still flushes the gallery.
const callsShare = 0.75

// ErrStopTimedOut is what Serve returns when its stop did not finish within
// ShutdownGrace: the steps still running were abandoned (the log names
// them), and main exits with them.
var ErrStopTimedOut = errors.New("stop did not finish within --shutdown-grace")

// stopSteps records the step of the stop being run, so that a stop past its
// grace can say what did not finish and what that loses.
type stopSteps struct {
	mu   sync.Mutex
	step string
	lost string
}

// at records that the stop is now running step; lost is what is lost if
// it never ends.
func (s *stopSteps) at(step, lost string) {
	s.mu.Lock()
	s.step, s.lost = step, lost
	s.mu.Unlock()
}

func (s *stopSteps) current() (step, lost string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step, s.lost
}

// Serve runs the Matcher service until ctx is done, then stops gracefully:
// health turns NOT_SERVING, in-flight calls finish (up to three quarters
// of ShutdownGrace), and the store is closed so every acknowledged write is
// on disk. The whole stop is bounded by ShutdownGrace: a step that hangs
// past it (a gallery on a failed disk retrying its flush forever) is
// abandoned, logged with what it loses, and Serve returns ErrStopTimedOut.
func Serve(ctx context.Context, opt Options) error {
	if err := opt.Validate(); err != nil {
		return err
	}
	steps := &stopSteps{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, opt, steps) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if opt.ShutdownGrace <= 0 {
		// 0: in-flight calls are not waited for, and the store is closed
		// however long that takes (nothing bounds a stop with no grace).
		return <-done
	}
	timer := time.NewTimer(opt.ShutdownGrace)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
	}
	step, lost := steps.current()
	if step == "" {
		step = "starting up"
	}
	ev := opt.Logger.Error().Dur("grace_ms", opt.ShutdownGrace).Str("unfinished", step)
	if lost != "" {
		ev = ev.Str("lost", lost)
	}
	ev.Msg("stop did not finish within the shutdown grace; exiting without it")
	return fmt.Errorf("%w (%s): still %s", ErrStopTimedOut, opt.ShutdownGrace, step)
}

// callsGrace is how long the stop waits for in-flight calls.
func callsGrace(grace time.Duration) time.Duration {
	return time.Duration(float64(grace) * callsShare)
}

// logStopStep logs a step of the stop at debug level.
func logStopStep(log zerolog.Logger, steps *stopSteps, step, lost string) {
	steps.at(step, lost)
	log.Debug().Str("step", step).Msg("stopping")
}

// byteSize is a flag of a number of bytes: plain, or with a unit (KiB, MiB,
// GiB; KB, MB, GB; K, M, G are the binary ones).
type byteSize struct{ p *int64 }

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

func (b byteSize) String() string {
	if b.p == nil {
		return "0"
	}
	v := *b.p
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v != 0 && v%u.m == 0 {
			return strconv.FormatInt(v/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b byteSize) Set(s string) error {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<62 {
		return fmt.Errorf("%q is not a size in bytes (e.g. 2GiB, 512MiB, 1073741824)", s)
	}
	*b.p = int64(n * float64(mult))
	return nil
}

func (byteSize) Type() string { return "size" }
