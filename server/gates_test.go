package server

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gocv.io/x/gocv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bordermatch/bordermatch/capture"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/matcher"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

// The traveller the gate tests look for (the one of testdata/video/gate.mp4
// too), and people enrolled beside him.
const (
	gatePerson = "leonard"
	bbt        = faces + "/bbt"
	gateVideo  = "../testdata/video/gate.mp4"
)

var gateOthers = []string{"sheldon", "howard", "penny", "amy"}

type gateServer struct {
	matcher pb.MatcherClient
	gates   pb.GatesClient
	g       *Gates
}

// startGates serves a real Service and its Gates over loopback gRPC on a
// real Badger directory, with the traveller (his first photo) and four
// others enrolled. configure may adjust the gates before their sources open.
func startGates(t testing.TB, gates []GateConfig, configure func(*Gates)) *gateServer {
	t.Helper()
	return startGatesWith(t, gates, configure, nil)
}

// startGatesWith is startGates with more samples enrolled for some of the
// subjects (their fingers).
func startGatesWith(t testing.TB, gates []GateConfig, configure func(*Gates), more map[string][]*pb.Sample) *gateServer {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newService(engine.Config{Store: st, Faces: sharedExtractor(t), Threshold: matcher.DefaultFaceThreshold, Logger: zerolog.Nop()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	gs, _ := NewGRPCServer(svc, GRPCOptions{Logger: zerolog.Nop()})
	g, err := NewGates(svc.Engine(), GatesOptions{Gates: gates, ModelsDir: modelsDir(), Logger: testLogger(t)})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	pb.RegisterGatesServer(gs, g)
	if configure != nil {
		configure(g)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	g.Start()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.GracefulStop()
		g.Close()
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	s := &gateServer{matcher: pb.NewMatcherClient(conn), gates: pb.NewGatesClient(conn), g: g}
	for _, who := range append([]string{gatePerson}, gateOthers...) {
		_, err := s.matcher.Enroll(context.Background(), &pb.EnrollRequest{
			SubjectId: who, Name: who, Watchlists: []string{"test"},
			Samples: append([]*pb.Sample{photo(t, bbt+"/"+who+"/1.png")}, more[who]...),
		})
		if err != nil {
			t.Fatalf("enrolling %s: %v", who, err)
		}
	}
	return s
}

// gateFrame composes a 640x480 camera frame: a grey scene, with the photo
// (a 150x150 face chip of testdata) scaled up twice in the middle when
// photo is not empty.
func gateFrame(t testing.TB, photo string) gocv.Mat {
	t.Helper()
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 125, 130, 0), 480, 640, gocv.MatTypeCV8UC3)
	if photo == "" {
		return frame
	}
	chip := gocv.IMRead(photo, gocv.IMReadColor)
	defer chip.Close()
	if chip.Empty() {
		t.Fatalf("cannot read %s", photo)
	}
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(chip, &big, image.Pt(chip.Cols()*2, chip.Rows()*2), 0, 0, gocv.InterpolationCubic)
	x, y := (640-big.Cols())/2, (480-big.Rows())/2
	roi := frame.Region(image.Rect(x, y, x+big.Cols(), y+big.Rows()))
	big.CopyTo(&roi)
	roi.Close()
	return frame
}

// frameFolder writes frames to a new folder in name order: blanks frames
// without a face, then the photos (each once, in turn) until faces frames.
func frameFolder(t testing.TB, blanks, faces int, photos []string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < blanks+faces; i++ {
		p := ""
		if i >= blanks {
			p = photos[(i-blanks)%len(photos)]
		}
		m := gateFrame(t, p)
		ok := gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("%04d.png", i)), m)
		m.Close()
		if !ok {
			t.Fatal("writing frame")
		}
	}
	return dir
}

// traveller is what the gate camera shows: the traveller's photos that were
// not enrolled. The selector rates the first (frontal, sharp) as meeting
// every quality target, the second as turned too far to use, the others
// as usable.
func traveller() []string {
	return []string{bbt + "/leonard/2.png", bbt + "/leonard/3.png", bbt + "/leonard/4.png", bbt + "/leonard/5.png"}
}

func waitState(t *testing.T, c pb.GatesClient, gate string, want pb.SourceState, frames bool) *pb.GateState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.GateStatus(context.Background(), &pb.GateStatusRequest{Gates: []string{gate}})
		if err != nil {
			t.Fatal(err)
		}
		st := r.Gates[0]
		if st.State == want && (!frames || st.FramesRead > 0) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate %s: state %v (%d frames, error %q), want %v", gate, st.State, st.FramesRead, st.LastError, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantStatus(t *testing.T, err error, code codes.Code, parts ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(status.Convert(err).Message(), p) {
			t.Errorf("message %q does not name %q", status.Convert(err).Message(), p)
		}
	}
}

func TestGates(t *testing.T) {
	good := frameFolder(t, 0, 4, traveller())
	empty := frameFolder(t, 3, 0, nil)
	srv := startGates(t, []GateConfig{
		{ID: "1", Source: "folder:" + good, FPS: 10},
		{ID: "2", Source: empty, FPS: 10},
		// Nothing listens on port 1: the stream is retried, Unavailable.
		{ID: "3", Source: "rtsp://user:secret@127.0.0.1:1/stream"},
		// A scheme capture does not read: FailedPrecondition, not retried.
		{ID: "4", Source: "ftp://cam4/stream"},
		// The traveller walking up to the gate, in a video file.
		{ID: "5", Source: gateVideo},
	}, nil)
	ctx := context.Background()
	waitState(t, srv.gates, "1", pb.SourceState_SOURCE_STATE_CONNECTED, true)
	waitState(t, srv.gates, "2", pb.SourceState_SOURCE_STATE_CONNECTED, true)

	t.Run("identifies the traveller", func(t *testing.T) {
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
			Gate: "1", MaxWait: durationpb.New(5 * time.Second), TopK: 3, ReturnImage: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED {
			t.Fatalf("outcome %v: %s", resp.Outcome, resp.Detail)
		}
		c := resp.Result.GetCandidates()
		if len(c) == 0 || c[0].SubjectId != gatePerson {
			t.Fatalf("candidates %v, want %s first", c, gatePerson)
		}
		sh := resp.Shot
		if sh.Quality.GetScore() <= 0 || sh.Quality.GetInterEyePixels() < capture.DefaultQuality.MinInterEye || sh.FrameSeq == 0 ||
			sh.FrameTime == nil || sh.FramesAssessed < 1 || sh.FaceFrames < 1 || len(sh.Image) == 0 {
			t.Errorf("shot %+v", sh)
		}
		if resp.Result.ProbeQuality == nil || resp.Elapsed.AsDuration() <= 0 {
			t.Errorf("probe quality %v, elapsed %v", resp.Result.ProbeQuality, resp.Elapsed)
		}
		t.Logf("rank 1 %s at %.3f; shot quality %.2f (eyes %.0f px, sharpness %.0f), frame %d, %d frames assessed, %v",
			c[0].SubjectId, c[0].Score, sh.Quality.Score, sh.Quality.InterEyePixels, sh.Quality.Sharpness, sh.FrameSeq, sh.FramesAssessed, resp.Elapsed.AsDuration())
	})
	t.Run("video of the traveller walking up", func(t *testing.T) {
		waitState(t, srv.gates, "5", pb.SourceState_SOURCE_STATE_CONNECTED, true)
		// The clip lasts 6 s; a capture from its start sees the face come
		// close, blur, tilt and finally face the camera.
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
			Gate: "5", MaxWait: durationpb.New(8 * time.Second), FreshFramesOnly: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Result.GetCandidates()
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(c) == 0 || c[0].SubjectId != gatePerson {
			t.Fatalf("%v", resp)
		}
		t.Logf("%s: %s at %.3f after %v (shot: eyes %.0f px, sharpness %.0f, yaw %.0f°, %d of %d frames with a usable face)",
			resp.Detail, c[0].SubjectId, c[0].Score, resp.Elapsed.AsDuration(), resp.Shot.Quality.InterEyePixels,
			resp.Shot.Quality.Sharpness, resp.Shot.Quality.Yaw, resp.Shot.FaceFrames, resp.Shot.FramesAssessed)
	})
	t.Run("watchlist without the traveller", func(t *testing.T) {
		if _, err := srv.matcher.Enroll(ctx, &pb.EnrollRequest{SubjectId: "amy-2", Watchlists: []string{"elsewhere"},
			Samples: []*pb.Sample{photo(t, bbt+"/amy/2.png")}}); err != nil {
			t.Fatal(err)
		}
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", Watchlists: []string{"elsewhere"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(resp.Result.Candidates) != 0 || resp.Result.Searched != 1 {
			t.Fatalf("outcome %v, candidates %v, %d searched", resp.Outcome, resp.Result.GetCandidates(), resp.Result.GetSearched())
		}
	})
	t.Run("unknown watchlist", func(t *testing.T) {
		// Refused before the camera is watched: no frame, no wait.
		start := time.Now()
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", Watchlists: []string{"test", "tset"},
			MaxWait: durationpb.New(5 * time.Second)})
		wantStatus(t, err, codes.NotFound, `"tset"`, `"test"`)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refused after %v", d)
		}
		_, err = srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{Gate: "1", Watchlists: []string{"tset"},
			Reference: photo(t, bbt+"/"+gatePerson+"/1.png")})
		wantStatus(t, err, codes.NotFound, `"tset"`)
		frames := encodeFrames(t, traveller()[:1], gocv.JPEGFileExt)
		_, _, err = sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{Watchlists: []string{"tset"}}, frames)
		wantStatus(t, err, codes.NotFound, `"tset"`)
	})
	t.Run("no face", func(t *testing.T) {
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "2", MaxWait: durationpb.New(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE || resp.Result != nil || resp.Shot.FramesAssessed < 2 ||
			!strings.Contains(resp.Detail, "no usable face") {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("unreachable stream", func(t *testing.T) {
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "3"})
		wantStatus(t, err, codes.Unavailable, "gate 3", "rtsp://user:xxxxx@127.0.0.1:1/stream")
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the password shows: %v", err)
		}
	})
	t.Run("unsupported source", func(t *testing.T) {
		waitState(t, srv.gates, "4", pb.SourceState_SOURCE_STATE_FAILED, false)
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "4"})
		wantStatus(t, err, codes.FailedPrecondition, "gate 4", "ftp://cam4/stream", "unsupported scheme")
	})
	t.Run("unknown gate", func(t *testing.T) {
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "9"})
		wantStatus(t, err, codes.NotFound, `gate "9"`, "1, 2, 3, 4, 5")
		_, err = srv.gates.GateStatus(ctx, &pb.GateStatusRequest{Gates: []string{"9"}})
		wantStatus(t, err, codes.NotFound, `gate "9"`)
	})
	t.Run("bad requests", func(t *testing.T) {
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", MaxWait: durationpb.New(time.Hour)})
		wantStatus(t, err, codes.InvalidArgument, "max_wait")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", TopK: 1000})
		wantStatus(t, err, codes.InvalidArgument, "top_k")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{})
		wantStatus(t, err, codes.InvalidArgument, "gate")
		thr, fmr := float32(0.5), 1e-4
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", Threshold: &thr, MaxFmr: &fmr})
		wantStatus(t, err, codes.InvalidArgument, "threshold", "max_fmr", "not both")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "1", Watchlists: []string{"ok", "no good"}})
		wantStatus(t, err, codes.InvalidArgument, "watchlists", `"no good"`)
	})
	t.Run("status", func(t *testing.T) {
		r, err := srv.gates.GateStatus(ctx, &pb.GateStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Gates) != 5 {
			t.Fatalf("%d gates", len(r.Gates))
		}
		g1, g2, g3, g4 := r.Gates[0], r.Gates[1], r.Gates[2], r.Gates[3]
		if g1.State != pb.SourceState_SOURCE_STATE_CONNECTED || g1.FramesRead == 0 || g1.FramesHeld == 0 || g1.LastFrameTime == nil ||
			g1.CapturesIdentified != 2 || g1.MaxCaptures != DefaultGateCaptures || g1.Source != "folder:"+good {
			t.Errorf("gate 1: %v", g1)
		}
		if g2.CapturesNoFace != 1 || g2.FramesRead == 0 {
			t.Errorf("gate 2: %v", g2)
		}
		if g3.State != pb.SourceState_SOURCE_STATE_CONNECTING || g3.OpenAttempts < 1 || g3.LastError == "" ||
			g3.CapturesFailed != 1 || strings.Contains(g3.Source, "secret") {
			t.Errorf("gate 3: %v", g3)
		}
		if g4.State != pb.SourceState_SOURCE_STATE_FAILED || !strings.Contains(g4.LastError, "unsupported scheme") ||
			g4.Scanner != "" || g4.ScannerState != pb.SourceState_SOURCE_STATE_UNSPECIFIED {
			t.Errorf("gate 4: %v", g4)
		}
		for _, g := range r.Gates {
			t.Logf("gate %s %s: %v, %d frames read, %d dropped, %d held, captures %d/%d/%d, error %q",
				g.Gate, g.Source, g.State, g.FramesRead, g.FramesDropped, g.FramesHeld, g.CapturesIdentified, g.CapturesNoFace, g.CapturesFailed, g.LastError)
		}
	})
}

// TestGateCaptureSlots: captures over a gate's max_captures are refused
// while the others run, and each running one answers.
func TestGateCaptureSlots(t *testing.T) {
	srv := startGates(t, []GateConfig{{ID: "1", Source: frameFolder(t, 3, 0, nil), FPS: 10, MaxCaptures: 1}}, nil)
	waitState(t, srv.gates, "1", pb.SourceState_SOURCE_STATE_CONNECTED, true)
	errs := make(chan error, 1)
	go func() {
		_, err := srv.gates.CaptureAndIdentify(context.Background(), &pb.CaptureAndIdentifyRequest{Gate: "1", MaxWait: durationpb.New(3 * time.Second)})
		errs <- err
	}()
	// Wait for the first capture to hold the slot.
	for srv.g.gates["1"].status().CapturesRunning == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	_, err := srv.gates.CaptureAndIdentify(context.Background(), &pb.CaptureAndIdentifyRequest{Gate: "1"})
	wantStatus(t, err, codes.ResourceExhausted, "gate 1", "1 captures")
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestGateSourceAppears: a camera that is not there when matchd starts is
// retried, reported Unavailable meanwhile, and used once it appears.
func TestGateSourceAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "camera")
	srv := startGates(t, []GateConfig{{ID: "1", Source: "folder:" + dir, FPS: 10}}, nil)
	_, err := srv.gates.CaptureAndIdentify(context.Background(), &pb.CaptureAndIdentifyRequest{Gate: "1"})
	wantStatus(t, err, codes.Unavailable, "gate 1", dir)
	if err := os.Rename(frameFolder(t, 0, 1, traveller()), dir); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, srv.gates, "1", pb.SourceState_SOURCE_STATE_CONNECTED, true)
	if st.OpenAttempts < 2 {
		t.Errorf("opened after %d attempts", st.OpenAttempts)
	}
	resp, err := srv.gates.CaptureAndIdentify(context.Background(), &pb.CaptureAndIdentifyRequest{Gate: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Result.GetCandidates(); len(c) == 0 || c[0].SubjectId != gatePerson {
		t.Fatalf("%v", resp)
	}
}

// sendFrames pushes frames to IdentifyFrames and returns its answer.
func sendFrames(t *testing.T, c pb.GatesClient, first *pb.IdentifyFramesRequest, frames [][]byte) (*pb.IdentifyFramesResponse, int, error) {
	t.Helper()
	stream, err := c.IdentifyFrames(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for i, f := range frames {
		req := &pb.IdentifyFramesRequest{Frame: f}
		if i == 0 && first != nil {
			first.Frame = f
			req = first
		}
		if err := stream.Send(req); errors.Is(err, io.EOF) {
			break // the server answered early
		} else if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	resp, err := stream.CloseAndRecv()
	return resp, sent, err
}

func encodeFrames(t testing.TB, photos []string, ext gocv.FileExt) [][]byte {
	var out [][]byte
	for _, p := range photos {
		m := gateFrame(t, p)
		buf, err := gocv.IMEncode(ext, m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(buf.GetBytes()))
		buf.Close()
	}
	return out
}

func TestIdentifyFrames(t *testing.T) {
	srv := startGates(t, nil, nil)
	blank := encodeFrames(t, []string{"", "", ""}, gocv.PNGFileExt)
	faces := encodeFrames(t, traveller(), gocv.JPEGFileExt)

	t.Run("traveller", func(t *testing.T) {
		resp, sent, err := sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{Gate: "7", TopK: 2},
			append(slices.Clone(blank), faces...))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(resp.Result.GetCandidates()) == 0 ||
			resp.Result.Candidates[0].SubjectId != gatePerson {
			t.Fatalf("%v", resp)
		}
		if resp.Gate != "7" || resp.Shot.FrameSeq <= uint64(len(blank)) || resp.FramesReceived < int32(len(blank)+1) {
			t.Errorf("gate %q, shot from frame %d, %d frames received", resp.Gate, resp.Shot.FrameSeq, resp.FramesReceived)
		}
		t.Logf("%s; %d frames sent", resp.Detail, sent)
	})
	t.Run("best of the whole stream", func(t *testing.T) {
		resp, _, err := sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{FullStream: true}, append(slices.Clone(faces), blank...))
		if err != nil {
			t.Fatal(err)
		}
		if resp.FramesReceived != int32(len(faces)+len(blank)) || resp.Shot.FramesAssessed != resp.FramesReceived ||
			resp.Result.GetCandidates()[0].SubjectId != gatePerson {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("no face", func(t *testing.T) {
		resp, _, err := sendFrames(t, srv.gates, nil, blank)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE || resp.Result != nil ||
			!strings.Contains(resp.Detail, "no usable face in 3 frames") {
			t.Fatalf("%v", resp)
		}
	})
	t.Run("no frames", func(t *testing.T) {
		_, _, err := sendFrames(t, srv.gates, nil, nil)
		wantStatus(t, err, codes.InvalidArgument, "no frames")
	})
	t.Run("not an image", func(t *testing.T) {
		_, _, err := sendFrames(t, srv.gates, nil, [][]byte{blank[0], []byte("GIF89a not a frame")})
		wantStatus(t, err, codes.InvalidArgument, "frame 2", "not a JPEG or PNG")
	})
	t.Run("bad settings", func(t *testing.T) {
		_, _, err := sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{TopK: -1}, blank)
		wantStatus(t, err, codes.InvalidArgument, "top_k")
		fmr := 2.0
		_, _, err = sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{MaxFmr: &fmr}, blank)
		wantStatus(t, err, codes.InvalidArgument, "max_fmr")
		_, _, err = sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{Watchlists: []string{""}}, blank)
		wantStatus(t, err, codes.InvalidArgument, "watchlists")
	})
}

// TestIdentifyFramesLimit: a stream longer than the server's frame limit
// is answered at the limit, with the best face so far, and says so.
func TestIdentifyFramesLimit(t *testing.T) {
	srv := startGates(t, nil, func(g *Gates) { g.maxStreamFrames = 4 })
	blank := encodeFrames(t, []string{"", "", ""}, gocv.PNGFileExt)
	faces := encodeFrames(t, traveller(), gocv.JPEGFileExt)

	resp, sent, err := sendFrames(t, srv.gates, &pb.IdentifyFramesRequest{FullStream: true},
		append(append(slices.Clone(blank), faces...), blank...))
	if err != nil {
		t.Fatal(err)
	}
	if resp.FramesReceived != 4 || resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED ||
		resp.Shot.FrameSeq != 4 || !strings.Contains(resp.Detail, "limit of 4 frames") {
		t.Fatalf("%d sent: %v", sent, resp)
	}
	resp, _, err = sendFrames(t, srv.gates, nil, append(slices.Clone(blank), blank...))
	if err != nil {
		t.Fatal(err)
	}
	if resp.FramesReceived != 4 || resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE || !strings.Contains(resp.Detail, "limit of 4 frames") {
		t.Fatalf("%v", resp)
	}
}

func TestGatesConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gs, err := ReadGatesFile(write("ok.yaml", `
gates:
  - id: 3
    source: rtsp://cam3/stream
    lookback: 1500ms
    max_captures: 4
  - id: desk-a
    source: /dev/video0
    loop: false
  - id: 5
    source: v4l2:0
    scanner: "libfprint:0"
    fingers: [right-index, LEFT-INDEX]
    finger_timeout: 5s
    scanner_dpi: 569
`))
	if err != nil {
		t.Fatal(err)
	}
	if g5 := gs[len(gs)-1]; len(gs) != 3 || g5.Scanner != "libfprint:0" || len(g5.Fingers) != 2 || g5.FingerTimeout != 5*time.Second || g5.ScannerDPI != 569 {
		t.Fatalf("%+v", gs)
	}
	if d := (GateConfig{ID: "6", Source: "a", Scanner: "folder:x"}).withDefaults(); d.FingerTimeout != DefaultFingerTimeout || !slices.Equal(d.Fingers, DefaultGateFingers) {
		t.Fatalf("defaults %+v", d)
	}
	if len(gs) != 3 || gs[0].ID != "3" || gs[0].Lookback != 1500*time.Millisecond || gs[0].MaxCaptures != 4 ||
		gs[1].Loop == nil || *gs[1].Loop {
		t.Fatalf("%+v", gs)
	}
	if _, err := ReadGatesFile(write("json.json", `{"gates":[{"id":"1","source":"v4l2:0"}]}`)); err != nil {
		t.Errorf("JSON: %v", err)
	}
	// Each error names the gate and the bad field.
	for name, c := range map[string]struct{ text, want string }{
		"typo.yaml":     {"gates:\n  - id: 1\n    sorce: rtsp://x\n", "field sorce not found"},
		"twice.yaml":    {"gates:\n  - {id: 1, source: a}\n  - {id: 1, source: b}\n", "gate 1 is configured twice"},
		"nosrc.yaml":    {"gates:\n  - {id: 1}\n", "gate 1: source"},
		"badid.yaml":    {"gates:\n  - {id: 'gate 1', source: a}\n", `gate id "gate 1"`},
		"range.yaml":    {"gates:\n  - {id: 1, source: a, lookback: 1h}\n", "gate 1: lookback 1h0m0s outside"},
		"neglook.yaml":  {"gates:\n  - {id: 1, source: a, lookback: -1s}\n", "gate 1: lookback -1s outside"},
		"negfps.yaml":   {"gates:\n  - {id: 1, source: a, fps: -1}\n", "gate 1: fps -1 outside"},
		"captures.yaml": {"gates:\n  - {id: 1, source: a, max_captures: -1}\n", "gate 1: max_captures -1 outside"},
		"scanner.yaml":  {"gates:\n  - {id: 3, source: a, scanner: 'fprint:0'}\n", `gate 3: scanner "fprint:0": want libfprint:NAME`},
		"nodir.yaml":    {"gates:\n  - {id: 3, source: a, scanner: 'folder:'}\n", `gate 3: scanner "folder:"`},
		"finger.yaml":   {"gates:\n  - {id: 3, source: a, scanner: 'libfprint:0', fingers: [right-index, left-toe]}\n", `gate 3: fingers: "left-toe" is not a finger`},
		"twofing.yaml":  {"gates:\n  - {id: 3, source: a, scanner: 'libfprint:0', fingers: [right-index, 2]}\n", "gate 3: fingers: right-index given twice"},
		"unknown.yaml":  {"gates:\n  - {id: 3, source: a, scanner: 'libfprint:0', fingers: [unknown]}\n", `gate 3: fingers: "unknown" is not a finger`},
		"ftime.yaml":    {"gates:\n  - {id: 3, source: a, scanner: 'libfprint:0', finger_timeout: 2m}\n", "gate 3: finger_timeout 2m0s outside"},
		"dpi.yaml":      {"gates:\n  - {id: 3, source: a, scanner: 'libfprint:0', scanner_dpi: 100}\n", "gate 3: scanner_dpi 100 outside"},
		"noscan.yaml":   {"gates:\n  - {id: 3, source: a, fingers: [right-index]}\n", "gate 3: fingers: set without a scanner"},
		"broken.yaml":   {"gates: [", "gates file"},
	} {
		_, err := ReadGatesFile(write(name, c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := ReadGatesFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
	g, err := ParseGateFlag("3=rtsp://cam3/stream?x=1")
	if err != nil || g.ID != "3" || g.Source != "rtsp://cam3/stream?x=1" {
		t.Errorf("%+v %v", g, err)
	}
	for _, bad := range []string{"3", "=x", "3=", "a b=x"} {
		if _, err := ParseGateFlag(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	merged := MergeGates(gs, []GateConfig{{ID: "3", Source: "v4l2:1"}, {ID: "9", Source: "v4l2:2"}})
	if len(merged) != 4 || merged[0].Source != "v4l2:1" || merged[3].ID != "9" || gs[0].Source != "rtsp://cam3/stream" {
		t.Errorf("%+v", merged)
	}
}

// BenchmarkGateFaceToAnswer measures, on a gate replaying 10 frames
// without a face then 10 with the traveller at 10 fps (in a loop), the
// time from the first face frame being read to CaptureAndIdentify's
// answer, for a capture started on the faceless frames. It reports the
// median and the slowest of b.N runs (run with -benchtime 20x).
func BenchmarkGateFaceToAnswer(b *testing.B) {
	const blanks, withFace = 10, 10
	dir := frameFolder(b, blanks, withFace, traveller())
	var mu sync.Mutex
	read := map[uint64]time.Time{}
	srv := startGates(b, []GateConfig{{ID: "1", Source: dir, FPS: 10}}, func(g *Gates) {
		g.gates["1"].observe = func(seq uint64, at time.Time) {
			mu.Lock()
			read[seq] = at
			mu.Unlock()
		}
	})
	gt := srv.g.gates["1"]
	cycle := uint64(blanks + withFace)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Start on the first faceless frames of a cycle.
		var seq uint64
		for {
			seq = gt.feed.Status().Latest
			if seq > 0 && (seq-1)%cycle < 2 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		faceSeq := seq - (seq-1)%cycle + blanks
		resp, err := srv.gates.CaptureAndIdentify(context.Background(), &pb.CaptureAndIdentifyRequest{
			Gate: "1", FreshFramesOnly: true, MaxWait: durationpb.New(10 * time.Second),
		})
		done := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || resp.Result.Candidates[0].SubjectId != gatePerson {
			b.Fatalf("run %d: %v", i, resp)
		}
		mu.Lock()
		at, ok := read[faceSeq]
		mu.Unlock()
		if !ok {
			b.Fatalf("frame %d was not read", faceSeq)
		}
		lat = append(lat, done.Sub(at))
		b.Logf("run %d: face in frame %d at %s, answer from frame %d (quality %.2f, %d frames assessed) after %v",
			i, faceSeq, at.Format("15:04:05.000"), resp.Shot.FrameSeq, resp.Shot.Quality.Score, resp.Shot.FramesAssessed, done.Sub(at).Round(time.Millisecond))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-median")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
}

// testLogger writes the gates' log to the test's log with -v.
func testLogger(t testing.TB) zerolog.Logger {
	if !testing.Verbose() {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}, NoColor: true, TimeFormat: "15:04:05.000"}).With().Timestamp().Logger()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
