package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
)

// CaptureAndVerify implements pb.GatesServer: the e-gate's transaction.
func (g *Gates) CaptureAndVerify(ctx context.Context, req *pb.CaptureAndVerifyRequest) (*pb.CaptureAndVerifyResponse, error) {
	start := time.Now()
	gt, err := g.gate(req.GetGate())
	if err != nil {
		return nil, err
	}
	q, err := g.query(req.GetTopK(), req.Threshold, req.MaxFmr, req.GetWatchlists(), !req.GetSkipWatchlists())
	if err != nil {
		return nil, err
	}
	if req.GetReference().GetKind() == nil {
		return nil, status.Error(codes.InvalidArgument, "reference: give the chip's DG2 (Sample.face_record) or a photo")
	}
	ws, err := watchOf(gt, req.GetMaxWait(), req.GetLookback(), req.GetFreshFramesOnly(), req.GetFullWindow())
	if err != nil {
		return nil, err
	}
	sm, err := sampleOf(req.GetReference())
	if err != nil {
		return nil, err
	}
	fs, err := fingersOf(gt, req.GetCaptureFingers(), req.GetFingerPositions(), req.GetFingerTimeout(), false, req.Threshold)
	if err != nil {
		return nil, err
	}
	if len(fs.positions) > 0 && req.GetSkipWatchlists() {
		return nil, status.Error(codes.InvalidArgument, "capture_fingers: fingers are searched on the watchlists, which skip_watchlists skips")
	}
	release, err := gt.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	// The reference first: a bad DG2, or a chip photo without a usable
	// face, is the caller's error and needs no camera.
	ref, err := g.eng.PrepareReference(ctx, sm)
	if err != nil {
		return nil, err
	}
	// The fingers, for the watchlist search, while the camera is watched.
	fingersDone, stopFingers := g.startFingers(ctx, gt, fs, req.GetReturnImage())
	defer stopFingers()
	c, err := g.watch(ctx, gt, start, ws)
	if err != nil {
		return nil, err
	}
	fingers, err := fingersDone()
	if err != nil {
		gt.failed.Add(1)
		return nil, err
	}
	resp := &pb.CaptureAndVerifyResponse{Gate: gt.cfg.ID, PassiveAuth: req.GetPassiveAuth(), Fingers: fingerReports(fingers)}
	if !c.ok {
		gt.noFace.Add(1)
		resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
		resp.Shot = &pb.Shot{FramesAssessed: int32(c.frames)}
		resp.Detail = noFaceDetail(c.frames, time.Since(start), c.lastReject)
	} else {
		resp.Shot = c.shotProto(req.GetReturnImage())
		ver, id, detail, err := g.verifyShot(ctx, c.shot, fingerProbe(fingers), ref, q, req)
		if err != nil {
			gt.failed.Add(1)
			return nil, err
		}
		if ver == nil {
			gt.noFace.Add(1)
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE
			resp.Detail = detail
		} else {
			gt.identified.Add(1)
			resp.Outcome = pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED
			resp.Verification, resp.Identification = ver, id
			resp.Clear = ver.GetMatch() && req.GetPassiveAuth() == pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED &&
				len(id.GetCandidates()) == 0
			resp.Detail = gateDetail(resp, req.GetSkipWatchlists())
		}
	}
	if len(fingers) > 0 {
		resp.Detail += "; " + fingersDetail(fingers)
	}
	resp.Elapsed = durationpb.New(time.Since(start))
	gt.log.Info().Str("outcome", resp.Outcome.String()).Bool("clear", resp.Clear).Int("frames", c.frames).
		Dur("elapsed_ms", time.Since(start)).Str("detail", resp.Detail).Msg("gate verification")
	return resp, nil
}

// verifyShot compares the shot with the reference and, unless skipped,
// searches the watchlists with it, both at once. A nil verification with
// a detail means the extractor found no face where the selector did.
//
// The fingers captured, if any, join the watchlist search only: the 1:1
// comparison is with the chip's photo.
func (g *Gates) verifyShot(ctx context.Context, shot pickedShot, fingers []engine.FingerSample, ref *engine.PreparedReference, q engine.Query,
	req *pb.CaptureAndVerifyRequest) (*pb.VerifyResponse, *pb.IdentifyResponse, string, error) {
	probe := engine.Probe{Sample: &engine.Sample{FaceImage: shot.jpeg}, TakeLargestFace: true}
	search := probe
	search.Fingers = fingers
	var (
		vr         engine.VerifyResult
		id         *pb.IdentifyResponse
		verr, ierr error
		wg         sync.WaitGroup
	)
	if !req.GetSkipWatchlists() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res engine.IdentifyResult
			if res, ierr = g.eng.Identify(ctx, engine.IdentifyRequest{Probe: search, Query: q}); ierr == nil {
				id = identifyProto(res)
			}
		}()
	}
	vr, verr = g.eng.Verify(ctx, engine.VerifyRequest{Probe: probe, Prepared: ref, Threshold: q.Threshold, MaxFMR: q.MaxFMR})
	wg.Wait()
	err := errors.Join(verr, ierr)
	if verr != nil && ierr != nil && errors.Is(verr, templates.ErrNoFace) {
		err = verr // both extracted the same shot
	}
	if errors.Is(err, templates.ErrNoFace) {
		return nil, nil, fmt.Sprintf("the best shot (frame %d) gave no face to the extractor: %v", shot.seq, err), nil
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("best shot: %w", err)
	}
	v := verifyProto(vr)
	v.PassiveAuth = req.GetPassiveAuth()
	v.ReferenceQuality, v.ReferenceRecord = faceQualityProto(ref.Quality()), faceRecordProto(ref.Record())
	return v, id, "", nil
}

// gateDetail says what the three checks found, for officers and logs.
func gateDetail(r *pb.CaptureAndVerifyResponse, skipped bool) string {
	var parts []string
	v := r.GetVerification()
	rate := ""
	if v.FaceFmr != nil {
		rate = fmt.Sprintf(", FMR %.2g", v.GetFaceFmr())
	}
	if r := v.GetRule(); r != "" {
		// The rule with the FMR it decided at: a face FMR of 0.5 beside
		// "verified" reads as a contradiction without it (issue 18).
		rate += fmt.Sprintf("; %s", r)
	}
	if v.GetMatch() {
		parts = append(parts, fmt.Sprintf("holder verified (score %.3f%s)", v.GetScore(), rate))
	} else {
		parts = append(parts, fmt.Sprintf("holder NOT verified (score %.3f%s)", v.GetScore(), rate))
	}
	switch r.GetPassiveAuth() {
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED:
		parts = append(parts, "passive authentication passed")
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_FAILED:
		parts = append(parts, "passive authentication FAILED")
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_NOT_PERFORMED:
		parts = append(parts, "passive authentication not performed")
	default:
		parts = append(parts, "passive authentication not stated")
	}
	switch c := r.GetIdentification().GetCandidates(); {
	case skipped:
		parts = append(parts, "watchlists not searched")
	case len(c) == 0:
		parts = append(parts, "no watchlist hit")
	default:
		parts = append(parts, fmt.Sprintf("WATCHLIST HIT: %d candidates, first %s", len(c), c[0].GetSubjectId()))
	}
	return strings.Join(parts, ", ")
}
