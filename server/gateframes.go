package server

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // frame headers pushed to IdentifyFrames
	_ "image/png"
	"io"
	"time"

	"gocv.io/x/gocv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/capture"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/face"
)

// The limits of an IdentifyFrames stream: a minute of a 15 fps camera. A
// gate that has not seen a usable face by then will not see one in this
// passage.
const (
	DefaultMaxStreamFrames   = 900
	DefaultMaxStreamDuration = time.Minute
)

// IdentifyFrames implements pb.GatesServer.
func (g *Gates) IdentifyFrames(stream pb.Gates_IdentifyFramesServer) error {
	ctx := stream.Context()
	start := time.Now()
	var (
		first   *pb.IdentifyFramesRequest
		q       engine.Query
		n       int
		lastRej string
		eos     bool
		cut     string // the server's limit that ended the stream
	)
	w, err := g.selector.newWindow()
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
			if q, err = g.query(req.GetTopK(), req.Threshold, req.MaxFmr, req.GetWatchlists(), true); err != nil {
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
		res, detail, err := g.identifyShot(ctx, shot, nil, q)
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
		Str("outcome", resp.Outcome.String()).Int("frames", n).Dur("latency_ms", time.Since(start)).Msg("rpc")
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
