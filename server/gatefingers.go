package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// fingerSettings are a capture call's fingers: which, and the wait for
// each. No positions: the call asks for none.
type fingerSettings struct {
	positions []minutiae.Position
	timeout   time.Duration
	skipFace  bool
}

// fingersOf checks a capture request's finger settings against the gate.
// A threshold (a face cosine) does not go with fingers: the engine decides
// a probe with fingers on max_fmr, and refusing it now spares the
// traveller a capture whose search would be refused.
func fingersOf(gt *gate, capture bool, positions []pb.FingerPosition, timeout *durationpb.Duration, skipFace bool, threshold *float32) (fingerSettings, error) {
	fs := fingerSettings{skipFace: skipFace}
	if !capture && len(positions) == 0 {
		if skipFace {
			return fs, status.Error(codes.InvalidArgument, "skip_face: a finger-only call needs capture_fingers or finger_positions")
		}
		if timeout != nil {
			return fs, status.Error(codes.InvalidArgument, "finger_timeout: set without capture_fingers or finger_positions")
		}
		return fs, nil
	}
	for _, p := range positions {
		mp := minutiae.Position(p)
		if p <= pb.FingerPosition_FINGER_POSITION_UNKNOWN || p > pb.FingerPosition_LEFT_LITTLE {
			return fs, status.Errorf(codes.InvalidArgument, "finger_positions: %v is not a finger to ask for", p)
		}
		if slices.Contains(fs.positions, mp) {
			return fs, status.Errorf(codes.InvalidArgument, "finger_positions: %s given twice", mp)
		}
		fs.positions = append(fs.positions, mp)
	}
	if threshold != nil {
		return fs, status.Error(codes.InvalidArgument, "threshold is a face cosine; a capture with fingers is decided on max_fmr")
	}
	if gt.scanner == nil {
		return fs, status.Errorf(codes.FailedPrecondition, "gate %s has no fingerprint scanner (configure its scanner:)", gt.cfg.ID)
	}
	if len(fs.positions) == 0 {
		fs.positions = gt.fingers
	}
	fs.timeout = gt.cfg.FingerTimeout
	if d := timeout; d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > MaxFingerTimeout {
			return fs, status.Errorf(codes.InvalidArgument, "finger_timeout %v outside 0..%v", d.AsDuration(), MaxFingerTimeout)
		}
		if d.AsDuration() > 0 {
			fs.timeout = d.AsDuration()
		}
	}
	return fs, nil
}

// startFingers captures fs's fingers in the background (none: nothing).
// done waits for them; stop cancels them and waits (it may be called more
// than once, and after done).
func (g *Gates) startFingers(ctx context.Context, gt *gate, fs fingerSettings, image bool) (done func() ([]capturedFinger, error), stop func()) {
	if len(fs.positions) == 0 {
		return func() ([]capturedFinger, error) { return nil, nil }, func() {}
	}
	fctx, cancel := context.WithCancel(ctx)
	// Leave part of the caller's deadline to the search.
	if dl, ok := ctx.Deadline(); ok {
		var c context.CancelFunc
		fctx, c = context.WithDeadline(fctx, dl.Add(-time.Until(dl)/5))
		prev := cancel
		cancel = func() { c(); prev() }
	}
	var (
		fingers []capturedFinger
		err     error
		ch      = make(chan struct{})
	)
	go func() {
		defer close(ch)
		fingers, err = g.captureFingers(fctx, gt, fs, image)
	}()
	done = func() ([]capturedFinger, error) {
		<-ch
		return fingers, err
	}
	stop = func() {
		cancel()
		<-ch
	}
	return done, stop
}

// capturedFinger is one finger asked of the scanner: its report and, when
// captured, its template for the search.
type capturedFinger struct {
	report   *pb.FingerCapture
	template []byte
}

// captureFingers asks the gate's scanner for each finger in turn and
// extracts each as it arrives. A scanner that is not ready or fails ends
// the series: the fingers not asked for are SKIPPED (the first says why).
// An error is the engine's, not the scanner's.
func (g *Gates) captureFingers(ctx context.Context, gt *gate, fs fingerSettings, image bool) ([]capturedFinger, error) {
	out := make([]capturedFinger, len(fs.positions))
	for i, pos := range fs.positions {
		out[i].report = &pb.FingerCapture{Position: pb.FingerPosition(pos), Outcome: pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SKIPPED}
	}
	for i, pos := range fs.positions {
		r := out[i].report
		t0 := time.Now()
		o := gt.scanner.capture(ctx, fs.timeout)
		r.Outcome, r.Detail, r.Retries = o.outcome, o.detail, int32(o.retries)
		if o.outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED {
			gt.scanner.failed.Add(1)
			gt.log.Info().Str("finger", pos.String()).Str("outcome", o.outcome.String()).Str("detail", o.detail).Msg("gate finger")
			if o.outcome == pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_UNAVAILABLE ||
				o.outcome == pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_ERROR ||
				o.outcome == pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SKIPPED {
				for _, rest := range out[i+1:] {
					rest.report.Detail = "not asked for: " + strings.ToLower(strings.TrimPrefix(o.outcome.String(), "FINGER_CAPTURE_OUTCOME_")) + " on " + pos.String()
				}
				break
			}
			continue
		}
		r.Time, r.Source = timestamppb.New(o.scan.Time), o.scan.Source
		var buf bytes.Buffer
		if err := png.Encode(&buf, o.scan.Image); err != nil {
			return nil, status.Errorf(codes.Internal, "gate %s: encoding the %s scan: %v", gt.cfg.ID, pos, err)
		}
		if image {
			r.Image = buf.Bytes()
		}
		tmpl, q, err := g.eng.ProbeFinger(ctx, engine.FingerSample{Position: pos, Image: buf.Bytes(), Format: "png", DPI: o.scan.DPI})
		if q.Format != "" {
			r.Quality = fingerQualityProto([]engine.FingerQuality{q})[0]
		}
		switch {
		case errors.Is(err, engine.ErrInvalid):
			// The extractor's refusal of this scan (no fingerprint, too
			// low a quality): this finger's outcome, not the call's.
			gt.scanner.failed.Add(1)
			r.Outcome = pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_BAD_SCAN
			r.Detail = fmt.Sprintf("scanned after %v, not usable: %v", time.Since(t0).Round(time.Millisecond), err)
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, status.Errorf(codes.Internal, "gate %s: extracting the %s scan: %v", gt.cfg.ID, pos, err)
		default:
			gt.scanner.captured.Add(1)
			out[i].template = tmpl
			r.Detail = fmt.Sprintf("scanned in %v, %d dpi, quality %d, %d minutiae (%d usable)",
				time.Since(t0).Round(time.Millisecond), o.scan.DPI, q.Quality, q.Minutiae, q.UsableMinutiae)
			if o.retries > 0 {
				r.Detail += ", after " + plural(o.retries, "bad scan")
			}
		}
		gt.log.Info().Str("finger", pos.String()).Str("outcome", r.Outcome.String()).Str("detail", r.Detail).Msg("gate finger")
	}
	return out, nil
}

// fingerProbe is the captured fingers as probe fingers (templates).
func fingerProbe(fs []capturedFinger) []engine.FingerSample {
	var out []engine.FingerSample
	for _, f := range fs {
		if f.template != nil {
			out = append(out, engine.FingerSample{Position: minutiae.Position(f.report.GetPosition()), Template: f.template})
		}
	}
	return out
}

func fingerReports(fs []capturedFinger) []*pb.FingerCapture {
	var out []*pb.FingerCapture
	for _, f := range fs {
		out = append(out, f.report)
	}
	return out
}

// fingersDetail sums the fingers up for officers and logs, e.g.
// "fingers: right-index captured (quality 71), left-index timeout".
func fingersDetail(fs []capturedFinger) string {
	var parts []string
	for _, f := range fs {
		r := f.report
		p := minutiae.Position(r.GetPosition()).String() + " " +
			strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "FINGER_CAPTURE_OUTCOME_")), "_", " ")
		if r.GetOutcome() == pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED {
			p += fmt.Sprintf(" (quality %d)", r.GetQuality().GetQuality())
		}
		parts = append(parts, p)
	}
	return "fingers: " + strings.Join(parts, ", ")
}
