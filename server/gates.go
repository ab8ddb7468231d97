package server

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // frame headers pushed to IdentifyFrames
	_ "image/png"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"gocv.io/x/gocv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/capture"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/face"
)

// Gate defaults and limits.
const (
	DefaultMaxWait      = 3 * time.Second
	MaxMaxWait          = 30 * time.Second
	DefaultLookback     = 2 * time.Second
	MaxLookback         = 10 * time.Second
	DefaultGateCaptures = 2
	// lookbackFPS is how many frames a second are kept for the lookback:
	// a traveller does not change pose faster than that, and each kept
	// frame of a 1080p camera holds 6 MB.
	lookbackFPS = 5
	// reopenMax bounds the wait between attempts to open a source that
	// could not be opened (a camera not yet up, a stream not reachable).
	reopenMax = 30 * time.Second
)

// GateConfig is one gate of matchd's configuration (--gates FILE, --gate
// ID=SOURCE).
type GateConfig struct {
	// ID names the gate in requests: letters, digits, '.', '_', '-'.
	ID string `yaml:"id" json:"id"`
	// Source is the camera, as capture.Open takes it: /dev/video0, v4l2:0,
	// rtsp://…, http(s)://…, a video file, folder:DIR or a directory.
	Source string `yaml:"source" json:"source"`
	// Scanner is the gate's fingerprint scanner, if any (capture/fprint);
	// see GatesOptions.OpenScanner.
	Scanner string `yaml:"scanner,omitempty" json:"scanner,omitempty"`
	// FPS is the replay rate of a folder or file (capture.Options.FPS).
	FPS float64 `yaml:"fps,omitempty" json:"fps,omitempty"`
	// Loop replays a file or folder from its start when it ends; default
	// true (a gate with a finite source would otherwise stop working).
	Loop *bool `yaml:"loop,omitempty" json:"loop,omitempty"`
	// Lookback is how long frames are kept for captures (default 2s, at
	// most 10s).
	Lookback time.Duration `yaml:"lookback,omitempty" json:"lookback,omitempty"`
	// MaxCaptures caps the captures running at once on the gate (default
	// 2); more are refused with ResourceExhausted.
	MaxCaptures int `yaml:"max_captures,omitempty" json:"max_captures,omitempty"`
}

var gateIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c *GateConfig) check() error {
	if !gateIDPattern.MatchString(c.ID) {
		return fmt.Errorf("gate id %q: want 1 to 64 letters, digits, '.', '_' or '-'", c.ID)
	}
	if strings.TrimSpace(c.Source) == "" {
		return fmt.Errorf("gate %s: no source", c.ID)
	}
	if c.FPS > 1000 || math.IsNaN(c.FPS) {
		return fmt.Errorf("gate %s: fps %v is not a frame rate", c.ID, c.FPS)
	}
	if c.Lookback < 0 || c.Lookback > MaxLookback {
		return fmt.Errorf("gate %s: lookback %v outside 0..%v", c.ID, c.Lookback, MaxLookback)
	}
	if c.MaxCaptures < 0 || c.MaxCaptures > 64 {
		return fmt.Errorf("gate %s: max_captures %d outside 0..64", c.ID, c.MaxCaptures)
	}
	return nil
}

// gatesFile is the layout of a --gates file:
//
//	gates:
//	  - id: "3"
//	    source: rtsp://cam3/stream
//	    scanner: fprint:0
type gatesFile struct {
	Gates []GateConfig `yaml:"gates"`
}

// ReadGatesFile reads a gates configuration file (YAML; JSON is YAML too).
// Unknown keys are refused, so that a misspelt setting is not silently
// ignored.
func ReadGatesFile(path string) ([]GateConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gates file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f gatesFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("gates file %s: %w", path, err)
	}
	if err := CheckGates(f.Gates); err != nil {
		return nil, fmt.Errorf("gates file %s: %w", path, err)
	}
	return f.Gates, nil
}

// ParseGateFlag parses a --gate ID=SOURCE flag.
func ParseGateFlag(s string) (GateConfig, error) {
	id, src, ok := strings.Cut(s, "=")
	if !ok {
		return GateConfig{}, fmt.Errorf("%q: want ID=SOURCE, e.g. 3=rtsp://cam3/stream", s)
	}
	c := GateConfig{ID: strings.TrimSpace(id), Source: strings.TrimSpace(src)}
	if err := c.check(); err != nil {
		return GateConfig{}, err
	}
	return c, nil
}

// MergeGates returns base with each of over replacing the gate of the same
// id or added (flags over the file).
func MergeGates(base, over []GateConfig) []GateConfig {
	out := slices.Clone(base)
	for _, g := range over {
		if i := slices.IndexFunc(out, func(b GateConfig) bool { return b.ID == g.ID }); i >= 0 {
			out[i] = g
		} else {
			out = append(out, g)
		}
	}
	return out
}

// CheckGates checks every gate and that ids are unique.
func CheckGates(gs []GateConfig) error {
	seen := map[string]bool{}
	for i := range gs {
		if err := gs[i].check(); err != nil {
			return err
		}
		if seen[gs[i].ID] {
			return fmt.Errorf("gate %s is configured twice", gs[i].ID)
		}
		seen[gs[i].ID] = true
	}
	return nil
}

// Scanner is a gate's fingerprint scanner (capture/fprint). The gates only
// open, report and close it so far.
type Scanner interface {
	Name() string
	// State says whether it is ready ("ready", "no device", …).
	State() string
	Close() error
}

// GatesOptions configure the gate sessions.
type GatesOptions struct {
	Gates []GateConfig
	// OpenScanner opens a gate's scanner; nil reports configured scanners
	// as not wired.
	OpenScanner func(ctx context.Context, uri string) (Scanner, error)
	// CaptureState, if set, is told every state a gate's camera enters,
	// by gate id (Metrics.SetCaptureState).
	CaptureState func(source, state string)
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
	Logger            zerolog.Logger
}

// The limits of an IdentifyFrames stream: a minute of a 15 fps camera. A
// gate that has not seen a usable face by then will not see one in this
// passage.
const (
	DefaultMaxStreamFrames   = 900
	DefaultMaxStreamDuration = time.Minute
)

// Gates is the bordermatch.v1.Gates service: it reads the gates' cameras
// and identifies the best face they show with the Service's identify path.
type Gates struct {
	pb.UnimplementedGatesServer

	svc    *Service
	log    zerolog.Logger
	gates  map[string]*gate
	ids    []string
	picker shotPicker
	slots  chan struct{}
	open   func(ctx context.Context, uri string) (Scanner, error)

	maxStreamFrames   int
	maxStreamDuration time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewGates sets up the gates of opt over svc; Start opens their sources.
func NewGates(svc *Service, opt GatesOptions) (*Gates, error) {
	if err := CheckGates(opt.Gates); err != nil {
		return nil, err
	}
	n := opt.AssessSlots
	if n <= 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	g := &Gates{
		svc:    svc,
		log:    opt.Logger,
		gates:  map[string]*gate{},
		picker: &selectorPicker{cfg: capture.SelectorConfig{ModelsDir: opt.ModelsDir}, n: n},
		slots:  make(chan struct{}, n),
		open:   opt.OpenScanner,

		maxStreamFrames:   cmp.Or(opt.MaxStreamFrames, DefaultMaxStreamFrames),
		maxStreamDuration: cmp.Or(opt.MaxStreamDuration, DefaultMaxStreamDuration),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if opt.CaptureState == nil {
		opt.CaptureState = func(string, string) {}
	}
	for _, c := range opt.Gates {
		if c.Lookback == 0 {
			c.Lookback = DefaultLookback
		}
		if c.MaxCaptures == 0 {
			c.MaxCaptures = DefaultGateCaptures
		}
		gt := &gate{
			cfg:      c,
			name:     redactURI(c.Source),
			log:      opt.Logger.With().Str("gate", c.ID).Logger(),
			slots:    make(chan struct{}, c.MaxCaptures),
			state:    pb.SourceState_SOURCE_STATE_CONNECTING,
			since:    time.Now(),
			newFrame: make(chan struct{}),
			setState: opt.CaptureState,
		}
		g.gates[c.ID] = gt
		g.ids = append(g.ids, c.ID)
	}
	sort.Strings(g.ids)
	return g, nil
}

// Start opens every gate's source and scanner in the background: a source
// that cannot be opened is retried (or, misconfigured, reported) without
// holding up the server or the other gates.
func (g *Gates) Start() {
	// Load the selector's model (seconds) now rather than in the first
	// capture or IdentifyFrames call.
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if w, err := g.picker.newWindow(); err != nil {
			g.log.Error().Err(err).Msg("gates: best-shot selector")
		} else {
			w.close()
		}
	}()
	for _, id := range g.ids {
		gt := g.gates[id]
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			gt.run(g.ctx)
		}()
		if gt.cfg.Scanner != "" {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				gt.openScanner(g.ctx, g.open)
			}()
		}
	}
}

// Close stops reading the sources and frees the frames held.
func (g *Gates) Close() {
	g.cancel()
	for _, gt := range g.gates {
		gt.mu.Lock()
		src := gt.src
		gt.mu.Unlock()
		if src != nil {
			src.Close()
		}
	}
	g.wg.Wait()
	g.picker.close()
	for _, gt := range g.gates {
		gt.mu.Lock()
		for i := range gt.ring {
			gt.ring[i].Close()
		}
		gt.ring = nil
		gt.latest.Close()
		gt.latest = capture.Frame{}
		if gt.scanner != nil {
			gt.scanner.Close()
		}
		gt.mu.Unlock()
	}
}

// gate is one configured gate: its source, the frames kept for the
// lookback, and its counters.
type gate struct {
	cfg   GateConfig
	name  string // the source with any password removed
	log   zerolog.Logger
	slots chan struct{}

	mu sync.Mutex
	// Before the source is open: the opening state.
	src       capture.Source
	state     pb.SourceState
	since     time.Time
	lastErr   string
	attempts  int64
	permanent bool // the source cannot work as configured
	// latest is the newest frame; ring the older frames kept for the
	// lookback, oldest first, at most lookbackFPS a second. Each owns its
	// Mat.
	latest   capture.Frame
	ring     []capture.Frame
	newFrame chan struct{} // closed (and replaced) when a frame arrives
	ended    string        // why the reader stopped, once it did

	scanner      Scanner
	scannerState string
	setState     func(source, state string) // GatesOptions.CaptureState
	// observe, when set before Start, sees every frame's seq and read
	// time (the latency benchmark).
	observe func(seq uint64, at time.Time)

	identified, noFace, refused, failed atomic.Uint64
}

func redactURI(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// scrub removes the source's password from a message: OpenCV's errors
// quote the URL they were given.
func (gt *gate) scrub(msg string) string {
	u, err := url.Parse(gt.cfg.Source)
	if err != nil || u.User == nil {
		return msg
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, gt.cfg.Source, gt.name)
	return strings.ReplaceAll(msg, ":"+pw+"@", ":xxxxx@")
}

// run opens the source, retrying with backoff unless the source is
// misconfigured, and reads it until ctx is done or the source ends.
func (gt *gate) run(ctx context.Context) {
	loop := true
	if gt.cfg.Loop != nil {
		loop = *gt.cfg.Loop
	}
	backoff := time.Second
	var src capture.Source
	for {
		// The metric is labelled with the gate id, never the source URI,
		// which may carry a password.
		gt.setState(gt.cfg.ID, capture.StateConnecting.String())
		s, err := capture.Open(ctx, gt.cfg.Source, capture.Options{FPS: gt.cfg.FPS, Loop: loop,
			OnState: func(st capture.Status) { gt.setState(gt.cfg.ID, st.State.String()) }})
		if ctx.Err() != nil {
			if s != nil {
				s.Close()
			}
			return
		}
		gt.mu.Lock()
		gt.attempts++
		attempt := gt.attempts
		if err == nil {
			gt.src = s
			gt.lastErr = ""
			gt.mu.Unlock()
			src = s
			break
		}
		gt.lastErr = gt.scrub(err.Error())
		if errors.Is(err, capture.ErrBadURI) {
			gt.permanent = true
			gt.setState(gt.cfg.ID, capture.StateFailed.String())
			gt.state = pb.SourceState_SOURCE_STATE_FAILED
			gt.since = time.Now()
			gt.mu.Unlock()
			gt.log.Error().Str("error", gt.lastErr).Str("source", gt.name).Msg("gate source cannot be used; fix the gate configuration")
			return
		}
		gt.mu.Unlock()
		if attempt == 1 || attempt%10 == 0 {
			gt.log.Warn().Str("error", gt.scrub(err.Error())).Str("source", gt.name).Int64("attempt", attempt).Dur("retry_in", backoff).Msg("gate source not open; retrying")
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, reopenMax)
	}
	gt.log.Info().Str("source", src.Name()).Msg("gate source open")
	for {
		f, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, capture.ErrClosed) {
				return
			}
			why := gt.scrub(err.Error())
			if errors.Is(err, io.EOF) {
				why = "the source was read to its end (loop: false)"
			}
			gt.mu.Lock()
			gt.ended = why
			close(gt.newFrame)
			gt.newFrame = make(chan struct{})
			gt.mu.Unlock()
			gt.log.Error().Str("source", src.Name()).Str("reason", why).Msg("gate source stopped")
			return
		}
		gt.keep(f)
	}
}

// keep makes f the latest frame; the one it replaces goes to the lookback
// ring when the ring's newest is old enough, and frames beyond the
// lookback leave it.
func (gt *gate) keep(f capture.Frame) {
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if gt.observe != nil {
		gt.observe(f.Seq, f.Time)
	}
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if prev := gt.latest; prev.Mat.Ptr() != nil {
		if n := len(gt.ring); n == 0 || prev.Time.Sub(gt.ring[n-1].Time) >= time.Second/lookbackFPS {
			gt.ring = append(gt.ring, prev)
		} else {
			prev.Close()
		}
	}
	gt.latest = f
	limit := int(gt.cfg.Lookback.Seconds()*lookbackFPS) + 2
	cut := 0
	for cut < len(gt.ring) && (len(gt.ring)-cut > limit || f.Time.Sub(gt.ring[cut].Time) > gt.cfg.Lookback) {
		gt.ring[cut].Close()
		cut++
	}
	if cut > 0 {
		n := copy(gt.ring, gt.ring[cut:])
		clear(gt.ring[n:])
		gt.ring = gt.ring[:n]
	}
	close(gt.newFrame)
	gt.newFrame = make(chan struct{})
}

// openScanner opens the gate's fingerprint scanner, for the status.
func (gt *gate) openScanner(ctx context.Context, open func(context.Context, string) (Scanner, error)) {
	if open == nil {
		gt.mu.Lock()
		gt.scannerState = "not wired (no scanner driver in this build)"
		gt.mu.Unlock()
		return
	}
	sc, err := open(ctx, gt.cfg.Scanner)
	gt.mu.Lock()
	defer gt.mu.Unlock()
	if err != nil {
		gt.scannerState = "error: " + err.Error()
		gt.log.Warn().Err(err).Str("scanner", gt.cfg.Scanner).Msg("gate scanner not open")
		return
	}
	gt.scanner = sc
}

// snapshot returns a copy of the frame of the given seq (the latest or one
// of the ring), if it is still held.
func (gt *gate) clone(seq uint64) (capture.Frame, bool) {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	var f *capture.Frame
	if gt.latest.Seq == seq && gt.latest.Mat.Ptr() != nil {
		f = &gt.latest
	} else if i := slices.IndexFunc(gt.ring, func(r capture.Frame) bool { return r.Seq == seq }); i >= 0 {
		f = &gt.ring[i]
	}
	if f == nil {
		return capture.Frame{}, false
	}
	return capture.Frame{Mat: f.Mat.Clone(), Seq: f.Seq, Time: f.Time}, true
}

// captureErr is the status of a gate whose source cannot give frames now,
// or nil.
func (gt *gate) captureErr() error {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	id, name := gt.cfg.ID, gt.name
	if gt.src == nil {
		if gt.permanent {
			return status.Errorf(codes.FailedPrecondition, "gate %s: source %s cannot be used: %s", id, name, gt.lastErr)
		}
		if gt.lastErr == "" {
			return status.Errorf(codes.Unavailable, "gate %s: source %s is being opened", id, name)
		}
		return status.Errorf(codes.Unavailable, "gate %s: source %s is not available (%d attempts to open it, retrying): %s", id, name, gt.attempts, gt.lastErr)
	}
	if gt.ended != "" && gt.latest.Mat.Ptr() == nil {
		return status.Errorf(codes.FailedPrecondition, "gate %s: source %s stopped: %s", id, name, gt.ended)
	}
	if gt.ended != "" && time.Since(gt.latest.Time) > gt.cfg.Lookback {
		return status.Errorf(codes.FailedPrecondition, "gate %s: source %s stopped %v ago: %s", id, name, time.Since(gt.latest.Time).Round(time.Second), gt.ended)
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

func (gt *gate) status() *pb.GateState {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	st := &pb.GateState{
		Gate:               gt.cfg.ID,
		Source:             gt.name,
		State:              gt.state,
		Since:              timestamppb.New(gt.since),
		LastError:          gt.lastErr,
		OpenAttempts:       gt.attempts,
		CapturesRunning:    int32(len(gt.slots)),
		MaxCaptures:        int32(cap(gt.slots)),
		CapturesIdentified: gt.identified.Load(),
		CapturesNoFace:     gt.noFace.Load(),
		CapturesRefused:    gt.refused.Load(),
		CapturesFailed:     gt.failed.Load(),
		Scanner:            redactURI(gt.cfg.Scanner),
		ScannerState:       gt.scannerState,
	}
	if gt.src != nil {
		s := gt.src.Status()
		st.State = sourceState(s.State)
		st.Since = timestamppb.New(s.Since)
		st.LastError = gt.scrub(s.LastError)
		st.FramesRead = s.FramesRead
		st.FramesDropped = s.FramesDropped
		st.DecodeErrors = s.DecodeErrors
		st.Reconnects = s.Reconnects
		if gt.ended != "" {
			st.LastError = gt.ended
		}
	}
	if gt.latest.Mat.Ptr() != nil {
		st.LastFrameTime = timestamppb.New(gt.latest.Time)
		st.FramesHeld = int32(len(gt.ring) + 1)
	}
	if gt.scanner != nil {
		st.ScannerState = gt.scanner.State()
	}
	return st
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

// assess offers a frame to a window, holding one of the assessment slots.
func (g *Gates) assess(ctx context.Context, w shotWindow, f capture.Frame) (bool, string, error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return false, "", ctx.Err()
	}
	defer func() { <-g.slots }()
	return w.offer(f)
}

// CaptureAndIdentify implements pb.GatesServer.
func (g *Gates) CaptureAndIdentify(ctx context.Context, req *pb.CaptureAndIdentifyRequest) (*pb.CaptureAndIdentifyResponse, error) {
	start := time.Now()
	gt, err := g.gate(req.GetGate())
	if err != nil {
		return nil, err
	}
	q, err := queryOf(req.GetTopK(), req.Threshold, req.MaxFmr, req.GetWatchlists())
	if err != nil {
		return nil, err
	}
	wait := DefaultMaxWait
	if d := req.GetMaxWait(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > MaxMaxWait {
			return nil, status.Errorf(codes.InvalidArgument, "max_wait %v outside 0..%v", d.AsDuration(), MaxMaxWait)
		}
		if d.AsDuration() > 0 {
			wait = d.AsDuration()
		}
	}
	lookback := gt.cfg.Lookback
	if d := req.GetLookback(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > lookback {
			return nil, status.Errorf(codes.InvalidArgument, "lookback %v outside 0..%v (gate %s keeps %v)", d.AsDuration(), lookback, gt.cfg.ID, lookback)
		}
		if d.AsDuration() > 0 {
			lookback = d.AsDuration()
		}
	}
	if req.GetFreshFramesOnly() {
		lookback = 0
	}
	select {
	case gt.slots <- struct{}{}:
		defer func() { <-gt.slots }()
	default:
		gt.refused.Add(1)
		return nil, status.Errorf(codes.ResourceExhausted, "gate %s: %d captures are already running (max_captures)", gt.cfg.ID, cap(gt.slots))
	}
	if err := gt.captureErr(); err != nil {
		gt.failed.Add(1)
		return nil, err
	}
	// Leave part of the caller's deadline to the extraction and search.
	end := start.Add(wait)
	if dl, ok := ctx.Deadline(); ok {
		if e := dl.Add(-time.Until(dl) / 5); e.Before(end) {
			end = e
		}
	}
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	w, err := g.picker.newWindow()
	if err != nil {
		return nil, err
	}
	defer w.close()
	var lastReject string
	offer := func(f capture.Frame) error {
		t0 := time.Now()
		face, reject, err := g.assess(wctx, w, f)
		gt.log.Debug().Uint64("seq", f.Seq).Bool("face", face).Str("reject", reject).Dur("took", time.Since(t0)).Msg("frame assessed")
		f.Close()
		if err != nil {
			return err
		}
		if !face && reject != "" {
			lastReject = reject
		}
		return nil
	}

	// The frames read before the call, newest first: the traveller is most
	// likely still in front of the camera.
	gt.mu.Lock()
	var history []uint64
	callSeq := gt.latest.Seq
	if gt.latest.Mat.Ptr() != nil && lookback > 0 {
		for i := len(gt.ring) - 1; i >= -1; i-- {
			f := gt.latest
			if i >= 0 {
				f = gt.ring[i]
			}
			if start.Sub(f.Time) <= lookback {
				history = append(history, f.Seq)
			}
		}
		slices.Sort(history)
		slices.Reverse(history)
		history = slices.Compact(history)
	}
	gt.mu.Unlock()
	var werr error
	for _, seq := range history {
		if w.targetReached() && !req.GetFullWindow() {
			break
		}
		f, ok := gt.clone(seq)
		if !ok {
			continue // left the lookback meanwhile
		}
		if werr = offer(f); werr != nil {
			break
		}
	}
	// Then the frames that arrive, the newest each time the selector is
	// ready for one.
	seen := callSeq
	for werr == nil && (!w.targetReached() || req.GetFullWindow()) {
		gt.mu.Lock()
		latest, next, ended := gt.latest.Seq, gt.newFrame, gt.ended
		gt.mu.Unlock()
		if latest > seen {
			seen = latest
			if f, ok := gt.clone(latest); ok {
				werr = offer(f)
			}
			continue
		}
		if ended != "" {
			break
		}
		select {
		case <-next:
		case <-wctx.Done():
			werr = wctx.Err()
		}
	}
	if werr != nil && ctx.Err() != nil {
		gt.failed.Add(1)
		return nil, ctx.Err()
	}
	if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
		gt.failed.Add(1)
		return nil, status.Errorf(codes.Internal, "gate %s: assessing frames: %v", gt.cfg.ID, werr)
	}
	shot, ok, err := w.best()
	if err != nil {
		gt.failed.Add(1)
		return nil, status.Errorf(codes.Internal, "gate %s: %v", gt.cfg.ID, err)
	}
	resp := &pb.CaptureAndIdentifyResponse{Gate: gt.cfg.ID}
	frames := w.frames()
	if !ok {
		if frames == 0 {
			gt.failed.Add(1)
			if err := gt.captureErr(); err != nil {
				return nil, err
			}
			st := gt.status()
			return nil, status.Errorf(codes.Unavailable, "gate %s: source %s gave no frame in %v (%s%s)", gt.cfg.ID, gt.name,
				time.Since(start).Round(time.Millisecond), strings.TrimPrefix(st.State.String(), "SOURCE_STATE_"), prefixed(": ", st.LastError))
		}
		gt.noFace.Add(1)
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
		resp.Shot = &pb.Shot{FramesAssessed: int32(frames)}
		resp.Detail = noFaceDetail(frames, time.Since(start), lastReject)
	} else {
		res, detail, err := g.identifyShot(ctx, shot, q)
		if err != nil {
			gt.failed.Add(1)
			return nil, err
		}
		resp.Shot = shotProto(shot, req.GetReturnImage())
		resp.Shot.BeforeCall = shot.seq <= callSeq
		if res == nil {
			gt.noFace.Add(1)
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
			resp.Detail = detail
		} else {
			gt.identified.Add(1)
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED
			resp.Result = res
			resp.Detail = fmt.Sprintf("face of quality %.2f from frame %d, %d candidates", shot.quality.GetScore(), shot.seq, len(res.Candidates))
		}
	}
	resp.Elapsed = durationpb.New(time.Since(start))
	gt.log.Info().Str("outcome", resp.Outcome.String()).Int("frames", frames).
		Dur("elapsed", time.Since(start)).Str("detail", resp.Detail).Msg("gate capture")
	return resp, nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func noFaceDetail(frames int, d time.Duration, reject string) string {
	s := fmt.Sprintf("no usable face in %d frames (%v)", frames, d.Round(time.Millisecond))
	if reject != "" {
		s += "; last face seen: " + reject
	}
	return s
}

// identifyShot extracts the shot's face (unless the picker did) and
// identifies it. A nil response with a detail means the extractor found no
// face where the selector did.
func (g *Gates) identifyShot(ctx context.Context, shot pickedShot, q engine.Query) (*pb.IdentifyResponse, string, error) {
	sm := engine.Sample{Face: shot.face}
	if shot.face == nil {
		sm = engine.Sample{FaceImage: shot.jpeg}
	}
	res, err := g.svc.eng.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &sm, TakeLargestFace: true}, Query: q})
	if errors.Is(err, templates.ErrNoFace) {
		return nil, fmt.Sprintf("the best shot (frame %d) gave no face to the extractor: %v", shot.seq, err), nil
	}
	if err != nil {
		return nil, "", err
	}
	return identifyProto(res), "", nil
}

func shotProto(s pickedShot, image bool) *pb.Shot {
	p := &pb.Shot{
		FrameSeq:       s.seq,
		FrameTime:      timestamppb.New(s.time),
		Quality:        s.quality,
		FramesAssessed: int32(s.frames),
		FaceFrames:     int32(s.faceFrames),
	}
	if !s.firstFace.IsZero() {
		p.FirstFaceTime = timestamppb.New(s.firstFace)
	}
	if image {
		p.Image = s.jpeg
	}
	return p
}

// IdentifyFrames implements pb.GatesServer.
func (g *Gates) IdentifyFrames(stream pb.Gates_IdentifyFramesServer) error {
	ctx := stream.Context()
	start := time.Now()
	var (
		first    *pb.IdentifyFramesRequest
		q        engine.Query
		n        int
		lastRej  string
		eos      bool
		cut      string // the server's limit that ended the stream
		settings = func(req *pb.IdentifyFramesRequest) error {
			var err error
			q, err = queryOf(req.GetTopK(), req.Threshold, req.MaxFmr, req.GetWatchlists())
			return err
		}
	)
	w, err := g.picker.newWindow()
	if err != nil {
		return err
	}
	defer w.close()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			eos = true
			break
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		if first == nil {
			first = req
			if err := settings(req); err != nil {
				return err
			}
		}
		if len(req.GetFrame()) == 0 {
			continue
		}
		n++
		m, err := decodeFrame(req.GetFrame())
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "frame %d: %v", n, err)
		}
		at := time.Now()
		if t := req.GetFrameTime(); t != nil {
			at = t.AsTime()
		}
		face, reject, err := g.assess(ctx, w, capture.Frame{Mat: m, Seq: uint64(n), Time: at})
		m.Close()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return status.Errorf(codes.Internal, "frame %d: %v", n, err)
		}
		if !face && reject != "" {
			lastRej = reject
		}
		if w.targetReached() && !first.GetFullStream() {
			break
		}
		if n >= g.maxStreamFrames {
			cut = fmt.Sprintf("the server stopped reading at its limit of %d frames", g.maxStreamFrames)
			break
		}
		if d := time.Since(start); d >= g.maxStreamDuration {
			cut = fmt.Sprintf("the server stopped reading at its limit of %s", g.maxStreamDuration)
			break
		}
	}
	if n == 0 {
		return status.Error(codes.InvalidArgument, "no frames: send JPEG or PNG frames in IdentifyFramesRequest.frame")
	}
	resp := &pb.IdentifyFramesResponse{Gate: first.GetGate(), FramesReceived: int32(n)}
	shot, ok, err := w.best()
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if !ok {
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
		resp.Shot = &pb.Shot{FramesAssessed: int32(w.frames())}
		resp.Detail = noFaceDetail(n, time.Since(start), lastRej)
		if cut != "" {
			resp.Detail += "; " + cut
		}
	} else {
		res, detail, err := g.identifyShot(ctx, shot, q)
		if err != nil {
			return err
		}
		resp.Shot = shotProto(shot, first.GetReturnImage())
		if res == nil {
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
			resp.Detail = detail
		} else {
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED
			resp.Result = res
			when := "at the end of the stream"
			switch {
			case cut != "":
				when = "when " + cut
			case !eos:
				when = "before the end of the stream (target quality met)"
			}
			resp.Detail = fmt.Sprintf("face of quality %.2f from frame %d of %d, %s; %d candidates", shot.quality.GetScore(), shot.seq, n, when, len(res.Candidates))
		}
	}
	g.log.Info().Str("rpc", "/bordermatch.v1.Gates/IdentifyFrames").Str("gate", first.GetGate()).
		Str("outcome", resp.Outcome.String()).Int("frames", n).Dur("latency", time.Since(start)).Msg("rpc")
	return stream.SendAndClose(resp)
}

// decodeFrame decodes a pushed JPEG or PNG frame, refusing one over the
// pixel limit from its header.
func decodeFrame(b []byte) (gocv.Mat, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return gocv.Mat{}, fmt.Errorf("not a JPEG or PNG image: %v", err)
	}
	if format != "jpeg" && format != "png" {
		return gocv.Mat{}, fmt.Errorf("a %s image: send JPEG or PNG", format)
	}
	if cfg.Width*cfg.Height > face.DefaultMaxPixels {
		return gocv.Mat{}, fmt.Errorf("%dx%d pixels, more than %d", cfg.Width, cfg.Height, face.DefaultMaxPixels)
	}
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil || m.Empty() {
		if err == nil {
			m.Close()
		}
		return gocv.Mat{}, fmt.Errorf("the %s image does not decode", format)
	}
	return m, nil
}

// shotPicker rates the faces in frames and keeps the best of a series:
// what capture's best-shot selector does.
type shotPicker interface {
	newWindow() (shotWindow, error)
	close()
}

// shotWindow keeps the best face of the frames offered to it. It is used
// by one goroutine at a time.
type shotWindow interface {
	// offer assesses a frame, which stays the caller's. face reports a
	// usable face; reject says why a face seen was not usable.
	offer(f capture.Frame) (face bool, reject string, err error)
	targetReached() bool
	// frames counts the frames offered.
	frames() int
	best() (pickedShot, bool, error)
	close()
}

// pickedShot is the best face of a window.
type pickedShot struct {
	// jpeg is the image to extract the face from (and to show).
	jpeg []byte
	// face is the extracted face, when the picker extracted it already.
	face               *templates.Face
	quality            *pb.ShotQuality
	seq                uint64
	time               time.Time
	frames, faceFrames int
	firstFace          time.Time
}

// selectorPicker is capture's best-shot selector: dlib's HOG detector and
// landmarks per frame, quality from size, sharpness, pose and exposure.
// The landmark model is loaded on first use (IdentifyFrames may never be
// called on a server without gates). Its selectors, one per assessment
// slot, each serialise their detector.
type selectorPicker struct {
	cfg  capture.SelectorConfig
	n    int
	once sync.Once
	sels []*capture.Selector
	err  error
	next atomic.Uint64
}

func (p *selectorPicker) load() error {
	p.once.Do(func() {
		for range p.n {
			sel, err := capture.NewSelector(p.cfg)
			if err != nil {
				p.err = err
				return
			}
			p.sels = append(p.sels, sel)
		}
	})
	return p.err
}

func (p *selectorPicker) newWindow() (shotWindow, error) {
	if err := p.load(); err != nil {
		return nil, status.Errorf(codes.Internal, "best-shot selector: %v", err)
	}
	sel := p.sels[p.next.Add(1)%uint64(len(p.sels))]
	return &selectorWindow{w: sel.NewWindow()}, nil
}

func (p *selectorPicker) close() {
	// Waits for a load in progress; prevents one later.
	p.once.Do(func() { p.err = errors.New("closed") })
	for _, s := range p.sels {
		s.Close()
	}
}

type selectorWindow struct {
	w *capture.Window
	n int
}

func (w *selectorWindow) offer(f capture.Frame) (bool, string, error) {
	w.n++
	c, ok, _, err := w.w.Offer(f)
	if err != nil || !ok {
		return false, "", err
	}
	if c.Quality.Reject != "" {
		return false, c.Quality.Reject, nil
	}
	return true, "", nil
}

func (w *selectorWindow) targetReached() bool { return w.w.TargetReached() }
func (w *selectorWindow) frames() int         { return w.n }
func (w *selectorWindow) close()              { w.w.Close() }

func (w *selectorWindow) best() (pickedShot, bool, error) {
	s, ok, err := w.w.Best()
	if err != nil || !ok {
		return pickedShot{}, false, err
	}
	q := s.Quality
	return pickedShot{
		jpeg: s.JPEG, seq: s.Seq, time: s.Time,
		frames: s.Frames, faceFrames: s.FaceFrames, firstFace: s.FirstFace,
		quality: &pb.ShotQuality{
			Score: q.Score, MeetsTarget: q.MeetsTarget, InterEyePixels: q.InterEye,
			Sharpness: q.Sharpness, Yaw: q.Yaw, Roll: q.Roll, Brightness: q.Brightness,
		},
	}, true, nil
}
