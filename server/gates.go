package server

import (
	"cmp"
	"context"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/capture"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// GatesOptions configure the gate sessions.
type GatesOptions struct {
	Gates []GateConfig
	// ModelsDir holds the landmark model of the best-shot selector
	// (face.ModelFiles).
	ModelsDir string
	// AssessSlots caps the frames assessed for faces at once across all
	// gates and streams, so that cameras never take every core from the
	// matcher; 0 means half the cores (at least 1).
	AssessSlots int
	// MaxStreamFrames and MaxStreamDuration bound one IdentifyFrames
	// stream: past either, the server stops reading and answers with the
	// best face so far, so that one caller cannot keep a selector busy
	// indefinitely. 0 takes DefaultMaxStreamFrames and
	// DefaultMaxStreamDuration.
	MaxStreamFrames   int
	MaxStreamDuration time.Duration
	// CaptureState, if set, is told every state a gate's camera enters,
	// by gate id, and its scanner's, by gate id and "/scanner"
	// (Metrics.SetCaptureState).
	CaptureState func(source, state string)
	Logger       zerolog.Logger
}

// Gates is the bordermatch.v1.Gates service: it reads the gates' cameras
// and identifies the best face they show with the engine (engine.Identify).
type Gates struct {
	pb.UnimplementedGatesServer

	eng      *engine.Engine
	log      zerolog.Logger
	gates    map[string]*gate
	ids      []string
	selector *shotSelector
	slots    chan struct{}

	maxStreamFrames   int
	maxStreamDuration time.Duration

	wg sync.WaitGroup
}

// NewGates sets up the gates of opt over eng; Start opens their sources.
func NewGates(eng *engine.Engine, opt GatesOptions) (*Gates, error) {
	if err := CheckGates(opt.Gates); err != nil {
		return nil, err
	}
	n := opt.AssessSlots
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	g := &Gates{
		eng:      eng,
		log:      opt.Logger,
		gates:    map[string]*gate{},
		selector: &shotSelector{cfg: capture.SelectorConfig{ModelsDir: opt.ModelsDir}, n: n},
		slots:    make(chan struct{}, n),

		maxStreamFrames:   cmp.Or(opt.MaxStreamFrames, DefaultMaxStreamFrames),
		maxStreamDuration: cmp.Or(opt.MaxStreamDuration, DefaultMaxStreamDuration),
	}
	for _, c := range opt.Gates {
		gt := newGate(c.withDefaults(), opt.Logger, opt.CaptureState)
		g.gates[c.ID] = gt
		g.ids = append(g.ids, c.ID)
	}
	sort.Strings(g.ids)
	return g, nil
}

// Start opens every gate's source in the background: a source that cannot
// be opened is retried (or, misconfigured, reported) without holding up
// the server or the other gates.
func (g *Gates) Start() {
	// Load the selector's model (seconds) now rather than in the first
	// capture or IdentifyFrames call.
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if w, err := g.selector.newWindow(); err != nil {
			g.log.Error().Err(err).Msg("gates: best-shot selector")
		} else {
			w.close()
		}
	}()
	for _, id := range g.ids {
		g.gates[id].feed.Start()
		if sc := g.gates[id].scanner; sc != nil {
			sc.Start()
		}
	}
}

// Close stops reading the sources and frees the frames held.
func (g *Gates) Close() {
	for _, gt := range g.gates {
		gt.feed.Close()
		if gt.scanner != nil {
			gt.scanner.Close()
		}
	}
	g.wg.Wait()
	g.selector.close()
}

// gate is one configured gate: its camera's feed, its scanner and its
// counters.
type gate struct {
	cfg  GateConfig
	feed *capture.Feed
	// scanner is nil for a gate without one; fingers are the positions it
	// asks for by default.
	scanner *gateScanner
	fingers []minutiae.Position
	log     zerolog.Logger
	slots   chan struct{}
	// observe, when set before Start, sees every frame's seq and read
	// time (the latency benchmark).
	observe func(seq uint64, at time.Time)
	// setState is GatesOptions.CaptureState.
	setState func(source, state string)

	identified, noFace, refused, failed atomic.Uint64
}

func newGate(c GateConfig, log zerolog.Logger, setState func(source, state string)) *gate {
	if setState == nil {
		setState = func(string, string) {}
	}
	gt := &gate{
		cfg:      c,
		log:      log.With().Str("gate", c.ID).Logger(),
		slots:    make(chan struct{}, c.MaxCaptures),
		setState: setState,
	}
	if c.Scanner != "" {
		gt.scanner = newGateScanner(c.Scanner, c.ScannerDPI, gt.log)
		// The metric's source: the gate id and "/scanner" (ids have no '/').
		gt.scanner.onState = func(st string) { setState(c.ID+"/scanner", st) }
		gt.fingers, _ = parseGateFingers(c.Fingers) // validated
	}
	gt.feed = capture.NewFeed(capture.FeedConfig{
		Source:   c.Source,
		Options:  capture.Options{FPS: c.FPS, Loop: *c.Loop},
		Lookback: c.Lookback,
		OnState:  gt.stateChanged,
		OnFrame: func(seq uint64, at time.Time) {
			if gt.observe != nil {
				gt.observe(seq, at)
			}
		},
	})
	return gt
}

// stateChanged reports a change of the gate's source: to the metric
// (labelled with the gate id, never the source, which may carry a
// password) and to the log.
func (gt *gate) stateChanged(st capture.FeedStatus) {
	gt.setState(gt.cfg.ID, st.State.String())
	name := gt.feed.Name()
	switch {
	case st.Permanent:
		gt.log.Error().Str("error", st.LastError).Str("source", name).Msg("gate source cannot be used; fix the gate configuration")
	case st.Ended != "":
		gt.log.Error().Str("source", name).Str("reason", st.Ended).Msg("gate source stopped")
	case !st.Opened && st.RetryIn > 0 && (st.Attempts == 1 || st.Attempts%10 == 0):
		gt.log.Warn().Str("error", st.LastError).Str("source", name).Int64("attempt", st.Attempts).Dur("retry_in_ms", st.RetryIn).Msg("gate source not open; retrying")
	case st.Opened && st.State == capture.StateConnected:
		gt.log.Info().Str("source", name).Msg("gate source connected")
	}
}

// captureErr is the status of a gate whose source cannot give frames now,
// or nil.
func (gt *gate) captureErr() error {
	st := gt.feed.Status()
	id, name := gt.cfg.ID, gt.feed.Name()
	if !st.Opened {
		if st.Permanent {
			return status.Errorf(codes.FailedPrecondition, "gate %s: source %s cannot be used: %s", id, name, st.LastError)
		}
		if st.LastError == "" {
			return status.Errorf(codes.Unavailable, "gate %s: source %s is being opened", id, name)
		}
		return status.Errorf(codes.Unavailable, "gate %s: source %s is not available (%d attempts to open it, retrying): %s", id, name, st.Attempts, st.LastError)
	}
	if st.Ended != "" && st.Latest == 0 {
		return status.Errorf(codes.FailedPrecondition, "gate %s: source %s stopped: %s", id, name, st.Ended)
	}
	if st.Ended != "" && time.Since(st.LatestTime) > gt.cfg.Lookback {
		return status.Errorf(codes.FailedPrecondition, "gate %s: source %s stopped %v ago: %s", id, name, time.Since(st.LatestTime).Round(time.Second), st.Ended)
	}
	return nil
}

func sourceState(s capture.State) pb.SourceState {
	switch s {
	case capture.StateConnecting:
		return pb.SourceState_SOURCE_STATE_CONNECTING
	case capture.StateConnected:
		return pb.SourceState_SOURCE_STATE_CONNECTED
	case capture.StateReconnecting:
		return pb.SourceState_SOURCE_STATE_RECONNECTING
	case capture.StateFailed:
		return pb.SourceState_SOURCE_STATE_FAILED
	case capture.StateEnded:
		return pb.SourceState_SOURCE_STATE_ENDED
	case capture.StateClosed:
		return pb.SourceState_SOURCE_STATE_CLOSED
	}
	return pb.SourceState_SOURCE_STATE_UNSPECIFIED
}

// status is the gate's GateStatus entry; its scanner's state is read from
// the device.
func (gt *gate) status() *pb.GateState {
	st := gt.feed.Status()
	s := &pb.GateState{
		Gate:               gt.cfg.ID,
		Source:             gt.feed.Name(),
		State:              sourceState(st.State),
		Since:              timestamppb.New(st.Since),
		LastError:          st.LastError,
		OpenAttempts:       st.Attempts,
		FramesRead:         st.FramesRead,
		FramesDropped:      st.FramesDropped,
		DecodeErrors:       st.DecodeErrors,
		Reconnects:         st.Reconnects,
		CapturesRunning:    int32(len(gt.slots)),
		MaxCaptures:        int32(cap(gt.slots)),
		CapturesIdentified: gt.identified.Load(),
		CapturesNoFace:     gt.noFace.Load(),
		CapturesRefused:    gt.refused.Load(),
		CapturesFailed:     gt.failed.Load(),
	}
	if st.Latest != 0 {
		s.LastFrameTime = timestamppb.New(st.LatestTime)
		s.FramesHeld = int32(st.Held)
	}
	if gt.scanner != nil {
		sc := gt.scanner.status()
		s.Scanner, s.ScannerState, s.ScannerDevice, s.ScannerLastError = sc.Scanner, sc.ScannerState, sc.ScannerDevice, sc.ScannerLastError
		s.ScannerOpenAttempts, s.ScannerSince = sc.ScannerOpenAttempts, sc.ScannerSince
		s.FingersCaptured, s.FingersFailed = sc.FingersCaptured, sc.FingersFailed
	}
	return s
}

// GateStatus implements pb.GatesServer.
func (g *Gates) GateStatus(ctx context.Context, req *pb.GateStatusRequest) (*pb.GateStatusResponse, error) {
	ids := req.GetGates()
	if len(ids) == 0 {
		ids = g.ids
	}
	resp := &pb.GateStatusResponse{}
	for _, id := range ids {
		gt, err := g.gate(id)
		if err != nil {
			return nil, err
		}
		resp.Gates = append(resp.Gates, gt.status())
	}
	return resp, nil
}

func (g *Gates) gate(id string) (*gate, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "gate is required")
	}
	gt := g.gates[id]
	if gt == nil {
		if len(g.ids) == 0 {
			return nil, status.Errorf(codes.NotFound, "gate %q is not configured: matchd has no gates (--gates FILE, --gate ID=SOURCE)", id)
		}
		return nil, status.Errorf(codes.NotFound, "gate %q is not configured (gates: %s)", id, strings.Join(g.ids, ", "))
	}
	return gt, nil
}
