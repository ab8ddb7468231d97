package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/capture/fprint"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// The scanner's reopening backoff, as the cameras': 1 s doubling to 30 s.
const (
	scannerRetryMin = time.Second
	scannerRetryMax = 30 * time.Second
)

// gateScanner is a gate's fingerprint scanner. It is opened in the
// background, retried with backoff while it cannot be, and reopened when
// a capture fails on the device or the device reports that it is gone.
// Its state is what the device says when asked (fprint.StateReader), not
// only what the last operation gave.
type gateScanner struct {
	spec string
	dpi  int
	log  zerolog.Logger
	// open is fprint.OpenScanner (tests may replace it).
	open func(spec string, dpi int) (fprint.Scanner, error)
	// onState, if set, is told every state the scanner enters
	// ("connecting", "connected" …: the metric's).
	onState func(state string)

	mu       sync.Mutex
	sc       fprint.Scanner // nil while not open
	state    pb.SourceState
	since    time.Time
	lastErr  string
	attempts int64
	retryIn  time.Duration

	broken   chan struct{} // a capture or a status read found the device failing
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
	stopOnce sync.Once

	captured, failed atomic.Uint64
}

func newGateScanner(spec string, dpi int, log zerolog.Logger) *gateScanner {
	return &gateScanner{
		spec: spec, dpi: dpi,
		log:   log.With().Str("scanner", spec).Logger(),
		open:  fprint.OpenScanner,
		state: pb.SourceState_SOURCE_STATE_CONNECTING, since: time.Now(),
		broken: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Start opens the scanner in the background.
func (s *gateScanner) Start() {
	if s.started.CompareAndSwap(false, true) {
		if s.onState != nil {
			s.onState("connecting")
		}
		go s.run()
	}
}

// Close stops reopening and closes the scanner.
func (s *gateScanner) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	if s.started.CompareAndSwap(false, true) {
		// Never started: nothing to wait for.
		s.setState(pb.SourceState_SOURCE_STATE_CLOSED, "")
		return
	}
	<-s.done
}

func (s *gateScanner) setState(st pb.SourceState, lastErr string) {
	s.mu.Lock()
	changed := st != s.state
	if changed {
		s.state, s.since = st, time.Now()
	}
	if lastErr != "" {
		s.lastErr = lastErr
	}
	s.mu.Unlock()
	if changed && s.onState != nil {
		s.onState(strings.ToLower(strings.TrimPrefix(st.String(), "SOURCE_STATE_")))
	}
}

// run opens the scanner and keeps it open until Close.
func (s *gateScanner) run() {
	defer close(s.done)
	defer s.setState(pb.SourceState_SOURCE_STATE_CLOSED, "")
	backoff := scannerRetryMin
	opened := false
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.mu.Lock()
		s.attempts++
		n := s.attempts
		s.mu.Unlock()
		sc, err := s.open(s.spec, s.dpi)
		if err == nil {
			select {
			case <-s.broken: // from the previous device
			default:
			}
			s.mu.Lock()
			s.sc, s.retryIn = sc, 0
			s.mu.Unlock()
			s.setState(pb.SourceState_SOURCE_STATE_CONNECTED, "")
			s.log.Info().Str("device", sc.Name()).Int64("attempt", n).Msg("gate scanner open")
			opened, backoff = true, scannerRetryMin
			select {
			case <-s.stop:
			case <-s.broken:
			}
			s.mu.Lock()
			s.sc = nil
			s.mu.Unlock()
			if cerr := sc.Close(); cerr != nil {
				s.log.Warn().Err(cerr).Msg("closing gate scanner")
			}
			select {
			case <-s.stop:
				return
			default:
			}
			s.setState(pb.SourceState_SOURCE_STATE_RECONNECTING, "")
			s.mu.Lock()
			why := s.lastErr
			s.mu.Unlock()
			s.log.Warn().Str("error", why).Msg("gate scanner failed; reopening")
			continue
		}
		if errors.Is(err, fprint.ErrNoImages) {
			// A match-on-chip sensor stays one: fix the configuration.
			s.setState(pb.SourceState_SOURCE_STATE_FAILED, err.Error())
			s.log.Error().Err(err).Msg("gate scanner cannot be used; fix the gate configuration")
			<-s.stop
			return
		}
		st := pb.SourceState_SOURCE_STATE_CONNECTING
		if opened {
			st = pb.SourceState_SOURCE_STATE_RECONNECTING
		}
		s.setState(st, err.Error())
		s.mu.Lock()
		s.retryIn = backoff
		s.mu.Unlock()
		if n == 1 || n%10 == 0 {
			s.log.Warn().Err(err).Int64("attempt", n).Dur("retry_in_ms", backoff).Msg("gate scanner not open; retrying")
		}
		t := time.NewTimer(backoff)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, scannerRetryMax)
	}
}

// markBroken has the scanner reopened, with why.
func (s *gateScanner) markBroken(why string) {
	s.setState(pb.SourceState_SOURCE_STATE_RECONNECTING, why)
	select {
	case s.broken <- struct{}{}:
	default:
	}
}

// current is the open scanner and the device's own state, or nil and why
// it cannot capture now. A device that says it is not ready (unplugged,
// closed, hot) is reopened when it is gone.
func (s *gateScanner) current() (fprint.Scanner, fprint.DeviceState, string) {
	s.mu.Lock()
	sc := s.sc
	s.mu.Unlock()
	var ds fprint.DeviceState
	if sc != nil {
		ds = fprint.DeviceState{Open: true, Listed: true}
		if r, ok := sc.(fprint.StateReader); ok {
			ds = r.State()
		}
		if !ds.Ready() {
			if !ds.Listed || !ds.Open {
				s.markBroken("the device reports " + ds.String())
			}
			return nil, ds, fmt.Sprintf("scanner %s is not ready: the device reports %s", s.spec, ds)
		}
		return sc, ds, ""
	}
	st := s.status()
	why := fmt.Sprintf("scanner %s is not ready (%s", s.spec, strings.TrimPrefix(st.GetScannerState().String(), "SOURCE_STATE_"))
	if st.GetScannerOpenAttempts() > 0 && st.GetScannerState() != pb.SourceState_SOURCE_STATE_FAILED {
		why += fmt.Sprintf(", %d attempts to open it, retrying", st.GetScannerOpenAttempts())
	}
	why += ")"
	if e := st.GetScannerLastError(); e != "" {
		why += ": " + e
	}
	return nil, ds, why
}

// status fills the scanner fields of a GateState (reading the device).
func (s *gateScanner) status() *pb.GateState {
	s.mu.Lock()
	sc := s.sc
	g := &pb.GateState{
		Scanner:             s.spec,
		ScannerState:        s.state,
		ScannerLastError:    s.lastErr,
		ScannerOpenAttempts: s.attempts,
		FingersCaptured:     s.captured.Load(),
		FingersFailed:       s.failed.Load(),
	}
	since := s.since
	s.mu.Unlock()
	if sc != nil {
		if r, ok := sc.(fprint.StateReader); ok {
			ds := r.State()
			g.ScannerDevice = ds.String()
			if !ds.Ready() && g.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTED {
				// The device's word over the last operation's.
				g.ScannerState = pb.SourceState_SOURCE_STATE_RECONNECTING
				g.ScannerLastError = "the device reports " + ds.String()
				if !ds.Listed || !ds.Open {
					s.markBroken(g.ScannerLastError)
				}
			}
		}
	}
	g.ScannerSince = timestamppb.New(since)
	return g
}

// scanOutcome is one finger's scan: the scan, or the outcome that ended
// the tries and why.
type scanOutcome struct {
	scan    fprint.Scan
	outcome pb.FingerCaptureOutcome
	detail  string
	retries int
}

// capture waits up to timeout (and ctx) for a finger. Bad scans the
// scanner reports are taken again within the timeout. A device error has
// the scanner reopened.
func (s *gateScanner) capture(ctx context.Context, timeout time.Duration) scanOutcome {
	sc, _, why := s.current()
	if sc == nil {
		return scanOutcome{outcome: pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_UNAVAILABLE, detail: why}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var o scanOutcome
	var lastRetry error
	for {
		scan, err := sc.Capture(cctx)
		switch {
		case err == nil:
			o.scan, o.outcome = scan, pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED
			return o
		case errors.Is(err, fprint.ErrRetry):
			o.retries++
			lastRetry = err
			continue
		case cctx.Err() != nil && ctx.Err() == nil:
			if lastRetry != nil {
				o.outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_BAD_SCAN
				o.detail = fmt.Sprintf("no good scan in %v (%s, the last: %v)", timeout, plural(o.retries, "bad scan"), lastRetry)
			} else {
				o.outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_TIMEOUT
				o.detail = fmt.Sprintf("no finger on the scanner in %v", timeout)
			}
			return o
		case ctx.Err() != nil:
			o.outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SKIPPED
			o.detail = "the call ended before a finger was scanned: " + ctx.Err().Error()
			return o
		case errors.Is(err, fprint.ErrClosed):
			o.outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_UNAVAILABLE
			o.detail = fmt.Sprintf("scanner %s was closed during the capture (reopening)", s.spec)
			return o
		default:
			s.markBroken(err.Error())
			o.outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_ERROR
			o.detail = fmt.Sprintf("scanner %s failed (reopening it): %v", s.spec, err)
			return o
		}
	}
}
