package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/capture"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
)

// CaptureAndIdentify's wait for a face.
const (
	DefaultMaxWait = 3 * time.Second
	MaxMaxWait     = 30 * time.Second
)

// CaptureAndIdentify implements pb.GatesServer. With fingers asked for,
// the gate's scanner is read while the camera is watched, and the face
// and the fingers captured are identified together.
func (g *Gates) CaptureAndIdentify(ctx context.Context, req *pb.CaptureAndIdentifyRequest) (*pb.CaptureAndIdentifyResponse, error) {
	start := time.Now()
	gt, err := g.gate(req.GetGate())
	if err != nil {
		return nil, err
	}
	q, err := g.query(req.GetTopK(), req.Threshold, req.MaxFmr, req.GetWatchlists(), true)
	if err != nil {
		return nil, err
	}
	ws, err := watchOf(gt, req.GetMaxWait(), req.GetLookback(), req.GetFreshFramesOnly(), req.GetFullWindow())
	if err != nil {
		return nil, err
	}
	fs, err := fingersOf(gt, req.GetCaptureFingers(), req.GetFingerPositions(), req.GetFingerTimeout(), req.GetSkipFace(), req.Threshold)
	if err != nil {
		return nil, err
	}
	if fs.skipFace {
		// Nothing to identify without the scanner: say so now.
		if sc, _, why := gt.scanner.current(); sc == nil {
			gt.failed.Add(1)
			return nil, status.Errorf(codes.Unavailable, "gate %s: %s", gt.cfg.ID, why)
		}
	}
	release, err := gt.acquire()
	if err != nil {
		return nil, err
	}
	defer release()

	// The fingers, from the scanner, while the camera is watched.
	fingersDone, stopFingers := g.startFingers(ctx, gt, fs, req.GetReturnImage())
	defer stopFingers()
	var c watched
	if !fs.skipFace {
		if c, err = g.watch(ctx, gt, start, ws); err != nil {
			stopFingers()
			return nil, err
		}
	}
	fingers, err := fingersDone()
	if err != nil {
		gt.failed.Add(1)
		return nil, err
	}
	resp := &pb.CaptureAndIdentifyResponse{Gate: gt.cfg.ID, Fingers: fingerReports(fingers)}
	probeFingers := fingerProbe(fingers)
	var details []string
	var res *pb.IdentifyResponse
	switch {
	case fs.skipFace:
	case !c.ok:
		resp.Shot = &pb.Shot{FramesAssessed: int32(c.frames)}
		details = append(details, noFaceDetail(c.frames, time.Since(start), c.lastReject))
	default:
		resp.Shot = c.shotProto(req.GetReturnImage())
		var detail string
		res, detail, err = g.identifyShot(ctx, c.shot, probeFingers, q)
		if err != nil {
			gt.failed.Add(1)
			return nil, err
		}
		if res == nil {
			details = append(details, detail)
		} else {
			details = append(details, fmt.Sprintf("face of quality %.2f from frame %d", c.shot.quality.GetScore(), c.shot.seq))
		}
	}
	if res == nil && len(probeFingers) > 0 {
		// No face (not asked for, or none usable): the fingers alone.
		r, err := g.eng.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Fingers: probeFingers}, Query: q})
		if err != nil {
			gt.failed.Add(1)
			return nil, fmt.Errorf("fingers: %w", err)
		}
		res = identifyProto(r)
		details = append(details, fmt.Sprintf("identified by %s alone", plural(len(probeFingers), "finger")))
	}
	switch {
	case res != nil:
		gt.identified.Add(1)
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED
		resp.Result = res
		details[len(details)-1] += fmt.Sprintf(", %d candidates", len(res.Candidates))
	case fs.skipFace:
		gt.noFace.Add(1)
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FINGER
	default:
		gt.noFace.Add(1)
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
	}
	if len(fingers) > 0 {
		details = append(details, fingersDetail(fingers))
	}
	resp.Detail = strings.Join(details, "; ")
	resp.Elapsed = durationpb.New(time.Since(start))
	gt.log.Info().Str("outcome", resp.Outcome.String()).Int("frames", c.frames).
		Dur("elapsed_ms", time.Since(start)).Str("detail", resp.Detail).Msg("gate capture")
	return resp, nil
}

// query checks a gate call's search options (queryOf) and, when it
// searches, that its watchlists exist: a typo must not cost the traveller
// seconds in front of the camera and then answer "no hit".
func (g *Gates) query(topK int32, threshold *float32, maxFMR *float64, watchlists []string, search bool) (engine.Query, error) {
	q, err := queryOf(topK, threshold, maxFMR, watchlists)
	if err != nil || !search {
		return q, err
	}
	return q, g.eng.CheckWatchlists(q.Watchlists)
}

// watchSettings are a capture call's: how long to watch, how far back the
// frames read before the call count, and whether to stop at a face that
// meets every quality target.
type watchSettings struct {
	wait, lookback time.Duration
	fullWindow     bool
}

// watchOf checks a capture request's watch settings against the gate's.
func watchOf(gt *gate, maxWait, lookbackReq *durationpb.Duration, freshOnly, fullWindow bool) (watchSettings, error) {
	ws := watchSettings{wait: DefaultMaxWait, lookback: gt.cfg.Lookback, fullWindow: fullWindow}
	if d := maxWait; d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > MaxMaxWait {
			return ws, status.Errorf(codes.InvalidArgument, "max_wait %v outside 0..%v", d.AsDuration(), MaxMaxWait)
		}
		if d.AsDuration() > 0 {
			ws.wait = d.AsDuration()
		}
	}
	if d := lookbackReq; d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > ws.lookback {
			return ws, status.Errorf(codes.InvalidArgument, "lookback %v outside 0..%v (gate %s keeps %v)", d.AsDuration(), ws.lookback, gt.cfg.ID, ws.lookback)
		}
		if d.AsDuration() > 0 {
			ws.lookback = d.AsDuration()
		}
	}
	if freshOnly {
		ws.lookback = 0
	}
	return ws, nil
}

// acquire takes one of the gate's capture slots; release gives it back.
func (gt *gate) acquire() (release func(), err error) {
	select {
	case gt.slots <- struct{}{}:
		return func() { <-gt.slots }, nil
	default:
		gt.refused.Add(1)
		return nil, status.Errorf(codes.ResourceExhausted, "gate %s: %d captures are already running (max_captures)", gt.cfg.ID, cap(gt.slots))
	}
}

// watched is what a watch of a gate saw: the best shot when ok, and how
// many frames were assessed.
type watched struct {
	shot       pickedShot
	ok         bool
	frames     int
	lastReject string
	// callSeq is the last frame read before the call.
	callSeq uint64
}

func (c watched) shotProto(image bool) *pb.Shot {
	p := shotProto(c.shot, image)
	p.BeforeCall = c.shot.seq <= c.callSeq
	return p
}

// watch picks the best face the gate's camera shows from the lookback
// before start until the wait ends (or a face meets every quality target).
// A source that gave no frame at all is Unavailable.
func (g *Gates) watch(ctx context.Context, gt *gate, start time.Time, ws watchSettings) (watched, error) {
	var c watched
	if err := gt.captureErr(); err != nil {
		gt.failed.Add(1)
		return c, err
	}
	// Leave part of the caller's deadline to the extraction and search.
	end := start.Add(ws.wait)
	if dl, ok := ctx.Deadline(); ok {
		if e := dl.Add(-time.Until(dl) / 5); e.Before(end) {
			end = e
		}
	}
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	w, err := g.selector.newWindow()
	if err != nil {
		return c, err
	}
	defer w.close()
	offer := func(f capture.Frame) error {
		t0 := time.Now()
		face, reject, err := g.assess(wctx, w, f)
		gt.log.Debug().Uint64("seq", f.Seq).Bool("face", face).Str("reject", reject).Dur("took_ms", time.Since(t0)).Msg("frame assessed")
		f.Close()
		if err != nil {
			return err
		}
		if !face && reject != "" {
			c.lastReject = reject
		}
		return nil
	}

	// The frames read before the call, newest first: the traveller is most
	// likely still in front of the camera.
	history, callSeq := gt.feed.Lookback(start.Add(-ws.lookback))
	c.callSeq = callSeq
	if ws.lookback == 0 {
		history = nil
	}
	var werr error
	for _, seq := range history {
		if w.targetReached() && !ws.fullWindow {
			break
		}
		f, ok := gt.feed.Clone(seq)
		if !ok {
			continue // left the lookback meanwhile
		}
		if werr = offer(f); werr != nil {
			break
		}
	}
	// Then the frames that arrive, the newest each time the selector is
	// ready for one, until the source stops.
	seen := callSeq
	for werr == nil && (!w.targetReached() || ws.fullWindow) {
		f, err := gt.feed.Newer(wctx, seen)
		if errors.Is(err, capture.ErrStopped) || errors.Is(err, capture.ErrClosed) {
			break
		}
		if err != nil {
			werr = err
			break
		}
		seen = f.Seq
		werr = offer(f)
	}
	if werr != nil && ctx.Err() != nil {
		gt.failed.Add(1)
		return c, ctx.Err()
	}
	if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
		gt.failed.Add(1)
		return c, status.Errorf(codes.Internal, "gate %s: assessing frames: %v", gt.cfg.ID, werr)
	}
	c.shot, c.ok, err = w.best()
	if err != nil {
		gt.failed.Add(1)
		return c, status.Errorf(codes.Internal, "gate %s: %v", gt.cfg.ID, err)
	}
	c.frames = w.frames()
	if !c.ok && c.frames == 0 {
		gt.failed.Add(1)
		if err := gt.captureErr(); err != nil {
			return c, err
		}
		st := gt.status()
		return c, status.Errorf(codes.Unavailable, "gate %s: source %s gave no frame in %v (%s%s)", gt.cfg.ID, gt.feed.Name(),
			time.Since(start).Round(time.Millisecond), strings.TrimPrefix(st.State.String(), "SOURCE_STATE_"), prefixed(": ", st.LastError))
	}
	return c, nil
}

// assess offers a frame to a window, holding one of the assessment slots.
func (g *Gates) assess(ctx context.Context, w *shotWindow, f capture.Frame) (bool, string, error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return false, "", ctx.Err()
	}
	defer func() { <-g.slots }()
	return w.offer(f)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
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

// identifyShot extracts the shot's face and identifies it, with the
// fingers captured if any. A nil response with a detail means the
// extractor found no face where the selector did.
func (g *Gates) identifyShot(ctx context.Context, shot pickedShot, fingers []engine.FingerSample, q engine.Query) (*pb.IdentifyResponse, string, error) {
	res, err := g.eng.Identify(ctx, engine.IdentifyRequest{
		Probe: engine.Probe{Sample: &engine.Sample{FaceImage: shot.jpeg}, Fingers: fingers, TakeLargestFace: true},
		Query: q,
	})
	if errors.Is(err, templates.ErrNoFace) {
		return nil, fmt.Sprintf("the best shot (frame %d) gave no face to the extractor: %v", shot.seq, err), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("best shot: %w", err)
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
