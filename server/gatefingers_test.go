package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/capture/fprint"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// The gate scanner tests drive libfprint's virtual_image device, as
// capture/fprint's tests do: with FP_VIRTUAL_IMAGE naming a Unix socket
// when libfprint first enumerates (the first scanner a test opens in this
// process), the device listens there once opened, and each connection
// feeds it one scan (two native-endian int32s, width and height, then the
// grey pixels).
var (
	virtualOnce   sync.Once
	virtualSocket string
)

func virtualScanner(t testing.TB) string {
	t.Helper()
	virtualOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bm-gate-fprint-")
		if err != nil {
			t.Fatal(err)
		}
		virtualSocket = filepath.Join(dir, "virtual-image.socket")
		os.Setenv("FP_VIRTUAL_IMAGE", virtualSocket)
		// Only the virtual device, even with a scanner plugged in.
		os.Setenv("FP_DRIVERS_WHITELIST", "virtual_image")
	})
	return virtualSocket
}

// putFinger puts a fingerprint image on the virtual scanner: it is read
// when a capture waits for a finger (now or later).
func putFinger(t testing.TB, path string) {
	t.Helper()
	g, _, err := fpimage.Decode(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	var pix bytes.Buffer
	for y := range g.Rect.Dy() {
		pix.Write(g.Pix[y*g.Stride : y*g.Stride+g.Rect.Dx()])
	}
	sendVirtual(t, [2]int32{int32(g.Rect.Dx()), int32(g.Rect.Dy())}, pix.Bytes())
}

// sendVirtual writes one message to the virtual scanner: an image, or a
// command (a negative width: -5 unplugs the device).
func sendVirtual(t testing.TB, header [2]int32, pix []byte) {
	t.Helper()
	c, err := net.Dial("unix", virtualScanner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, header)
	b.Write(pix)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func waitScanner(t *testing.T, c pb.GatesClient, gate string, ok func(*pb.GateState) bool) *pb.GateState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.GateStatus(context.Background(), &pb.GateStatusRequest{Gates: []string{gate}})
		if err != nil {
			t.Fatal(err)
		}
		st := r.Gates[0]
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate %s: scanner %v (%q, device %q)", gate, st.ScannerState, st.ScannerLastError, st.ScannerDevice)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGateFingers: a gate with a camera showing the traveller and a
// libfprint scanner (the virtual device, fed FVC2002 images) identifies
// him with his face and his finger fused, and by his finger alone; a
// scanner that is not there is reported by the gate's status and by the
// calls.
func TestGateFingers(t *testing.T) {
	virtualScanner(t)
	good := frameFolder(t, 0, 4, traveller())
	scans := t.TempDir() // a replay scanner: his other impression
	if err := os.WriteFile(filepath.Join(scans, "1.tif"), readFile(t, db1+"101_2.tif"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Then a blank scan, which the extractor refuses.
	blank := image.NewGray(image.Rect(0, 0, 300, 300))
	for i := range blank.Pix {
		blank.Pix[i] = 0xf0
	}
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, blank); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scans, "2.png"), pngBuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startGatesWith(t, []GateConfig{
		{ID: "f", Source: "folder:" + good, FPS: 10, Scanner: "libfprint:virtual_image", FingerTimeout: 15 * time.Second},
		{ID: "nos", Source: "folder:" + good, FPS: 10, Scanner: "libfprint:no-such-scanner"},
		{ID: "cam", Source: "folder:" + good, FPS: 10},
		{ID: "replay", Source: "folder:" + good, FPS: 10, Scanner: "folder:" + scans},
	}, nil, map[string][]*pb.Sample{
		gatePerson: fingers(fingerImage(t, rIndex, db1+"101_1.tif", 0)),
		"howard":   fingers(fingerImage(t, rIndex, db1+"102_1.tif", 0)),
		"sheldon":  fingers(fingerImage(t, rIndex, db2+"101_1.tif", 569)),
	})
	ctx := context.Background()
	waitState(t, srv.gates, "f", pb.SourceState_SOURCE_STATE_CONNECTED, true)
	st := waitScanner(t, srv.gates, "f", func(s *pb.GateState) bool {
		return s.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTED
	})
	if st.Scanner != "libfprint:virtual_image" || !strings.HasPrefix(st.ScannerDevice, "open, idle") || st.ScannerOpenAttempts != 1 || st.ScannerSince == nil {
		t.Fatalf("scanner status %v", st)
	}

	t.Run("face and finger fused", func(t *testing.T) {
		putFinger(t, db1+"101_2.tif") // his other impression
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
			Gate: "f", MaxWait: durationpb.New(5 * time.Second), TopK: 3, CaptureFingers: true, ReturnImage: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(resp.Fingers) != 1 {
			t.Fatalf("%v", resp)
		}
		f := resp.Fingers[0]
		if f.Position != rIndex || f.Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED || f.Quality.GetMinutiae() < 10 ||
			f.Quality.GetDpi() != 500 || f.Quality.GetFormat() != "png" || !strings.HasPrefix(f.Source, "virtual_image/") || f.Time == nil ||
			!bytes.HasPrefix(f.Image, []byte("\x89PNG")) {
			t.Fatalf("finger %v", f)
		}
		c := resp.Result.GetCandidates()
		if len(c) == 0 || c[0].SubjectId != gatePerson || c[0].FaceScore == nil || len(c[0].FingerScores) != 1 ||
			!c[0].FingerScores[0].Compared || c[0].FingerScores[0].Position != rIndex || !resp.Result.Fused {
			t.Fatalf("candidates %v (fused %v)", c, resp.Result.GetFused())
		}
		if resp.Result.ProbeQuality == nil || len(resp.Result.FingerQuality) != 1 || resp.Shot.GetFaceFrames() < 1 {
			t.Fatalf("probe %v, shot %v", resp.Result, resp.Shot)
		}
		t.Logf("%s: %s face %.3f, finger %.3f (FMR %.2g), fused %.2f; %s", resp.Detail, c[0].SubjectId, c[0].GetFaceScore(),
			c[0].FingerScores[0].Score, c[0].FingerScores[0].Fmr, c[0].FusedScore, f.Detail)
	})
	t.Run("finger only", func(t *testing.T) {
		type answer struct {
			resp *pb.CaptureAndIdentifyResponse
			err  error
		}
		ch := make(chan answer, 1)
		go func() {
			resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
				Gate: "f", SkipFace: true, FingerPositions: []pb.FingerPosition{rIndex},
			})
			ch <- answer{resp, err}
		}()
		// The status says what the device says: it waits for the finger.
		waitScanner(t, srv.gates, "f", func(s *pb.GateState) bool { return strings.HasPrefix(s.ScannerDevice, "open, waiting for a finger") })
		putFinger(t, db1+"101_3.tif")
		a := <-ch
		resp, err := a.resp, a.err
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Result.GetCandidates()
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(c) == 0 || c[0].SubjectId != gatePerson ||
			c[0].FaceScore != nil || len(c[0].FingerScores) != 1 || resp.Shot != nil || resp.Result.ProbeQuality != nil {
			t.Fatalf("%v", resp)
		}
		if len(resp.Fingers) != 1 || resp.Fingers[0].Image != nil {
			t.Fatalf("fingers %v", resp.Fingers)
		}
		t.Logf("%s: %s finger %.3f", resp.Detail, c[0].SubjectId, c[0].FingerScores[0].Score)
	})
	t.Run("bad scans", func(t *testing.T) {
		type answer struct {
			resp *pb.CaptureAndIdentifyResponse
			err  error
		}
		call := func(timeout time.Duration) chan answer {
			ch := make(chan answer, 1)
			go func() {
				resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
					Gate: "f", SkipFace: true, CaptureFingers: true, FingerTimeout: durationpb.New(timeout),
				})
				ch <- answer{resp, err}
			}()
			return ch
		}
		waiting := func(s *pb.GateState) bool { return strings.HasPrefix(s.ScannerDevice, "open, waiting for a finger") }
		// The scanner asks for the finger again (too short): taken again.
		ch := call(15 * time.Second)
		waitScanner(t, srv.gates, "f", waiting)
		sendVirtual(t, [2]int32{-1, 1}, nil) // FP_DEVICE_RETRY_TOO_SHORT
		time.Sleep(200 * time.Millisecond)
		waitScanner(t, srv.gates, "f", waiting)
		putFinger(t, db1+"101_3.tif")
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		if f := a.resp.GetFingers(); len(f) != 1 || f[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED || f[0].Retries != 1 ||
			a.resp.GetResult().GetCandidates()[0].GetSubjectId() != gatePerson {
			t.Fatalf("after a retry: %v", a.resp)
		}
		t.Log(a.resp.Fingers[0].Detail)
		// A blank scan: libfprint's own check asks for the finger again,
		// and nothing better comes before the timeout.
		ch = call(2 * time.Second)
		waitScanner(t, srv.gates, "f", waiting)
		blank := make([]byte, 300*300)
		for i := range blank {
			blank[i] = 0xf0
		}
		sendVirtual(t, [2]int32{300, 300}, blank)
		a = <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		if f := a.resp.GetFingers(); a.resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FINGER || len(f) != 1 ||
			f[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_BAD_SCAN {
			t.Fatalf("blank scan: %v", a.resp)
		}
		t.Log(a.resp.Fingers[0].Detail)
	})
	t.Run("e-gate transaction with fingers", func(t *testing.T) {
		putFinger(t, db1+"101_2.tif")
		resp, err := srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{
			Gate: "f", Reference: photo(t, bbt+"/"+gatePerson+"/1.png"), MaxWait: durationpb.New(5 * time.Second), CaptureFingers: true,
			PassiveAuth: pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED,
		})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.GetIdentification().GetCandidates()
		if !resp.GetVerification().GetMatch() || len(resp.Fingers) != 1 || resp.Fingers[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED ||
			len(c) == 0 || c[0].SubjectId != gatePerson || len(c[0].FingerScores) != 1 || c[0].FaceScore == nil || resp.Clear {
			t.Fatalf("%v", resp)
		}
		t.Log(resp.Detail)
		_, err = srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{
			Gate: "f", Reference: photo(t, bbt+"/"+gatePerson+"/1.png"), CaptureFingers: true, SkipWatchlists: true,
		})
		wantStatus(t, err, codes.InvalidArgument, "skip_watchlists")
	})
	t.Run("replay scanner", func(t *testing.T) {
		waitScanner(t, srv.gates, "replay", func(s *pb.GateState) bool { return s.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTED })
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "replay", SkipFace: true, CaptureFingers: true})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Result.GetCandidates()
		if len(c) == 0 || c[0].SubjectId != gatePerson || resp.Fingers[0].Source != filepath.Join(scans, "1.tif") {
			t.Fatalf("%v", resp)
		}
		resp, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "replay", SkipFace: true, CaptureFingers: true})
		if err != nil {
			t.Fatal(err)
		}
		if f := resp.GetFingers(); resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FINGER || len(f) != 1 ||
			f[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_BAD_SCAN || !strings.Contains(f[0].Detail, "not usable") {
			t.Fatalf("blank scan: %v", resp)
		}
		t.Log(resp.Fingers[0].Detail)
	})
	t.Run("no finger on the scanner", func(t *testing.T) {
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
			Gate: "f", SkipFace: true, CaptureFingers: true, FingerTimeout: durationpb.New(300 * time.Millisecond),
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FINGER || resp.Result != nil || len(resp.Fingers) != 1 ||
			resp.Fingers[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_TIMEOUT {
			t.Fatalf("%v", resp)
		}
		t.Log(resp.Detail)
		// The device is ready for the next traveller.
		waitScanner(t, srv.gates, "f", func(s *pb.GateState) bool { return strings.HasPrefix(s.ScannerDevice, "open, idle") })
	})
	t.Run("scanner not there", func(t *testing.T) {
		st := waitScanner(t, srv.gates, "nos", func(s *pb.GateState) bool {
			return s.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTING && s.ScannerOpenAttempts >= 1 && s.ScannerLastError != ""
		})
		if !strings.Contains(st.ScannerLastError, "no such fingerprint scanner") || st.ScannerDevice != "" {
			t.Fatalf("status %v", st)
		}
		// With a face: identified by the face, the finger says why not.
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
			Gate: "nos", MaxWait: durationpb.New(5 * time.Second), FingerPositions: []pb.FingerPosition{rIndex, lIndex},
		})
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Result.GetCandidates()
		if resp.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || len(c) == 0 || c[0].SubjectId != gatePerson || len(c[0].FingerScores) != 0 {
			t.Fatalf("%v", resp)
		}
		if len(resp.Fingers) != 2 || resp.Fingers[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_UNAVAILABLE ||
			!strings.Contains(resp.Fingers[0].Detail, "scanner libfprint:no-such-scanner is not ready (CONNECTING") ||
			resp.Fingers[1].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SKIPPED {
			t.Fatalf("fingers %v", resp.Fingers)
		}
		t.Logf("%s | %s", resp.Detail, resp.Fingers[0].Detail)
		// Fingers alone: nothing to identify with.
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "nos", SkipFace: true, CaptureFingers: true})
		wantStatus(t, err, codes.Unavailable, "gate nos", "scanner libfprint:no-such-scanner is not ready", "no such fingerprint scanner")
	})
	t.Run("bad requests", func(t *testing.T) {
		_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "cam", CaptureFingers: true})
		wantStatus(t, err, codes.FailedPrecondition, "gate cam has no fingerprint scanner")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "f", SkipFace: true})
		wantStatus(t, err, codes.InvalidArgument, "skip_face")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "f", FingerPositions: []pb.FingerPosition{rIndex, rIndex}})
		wantStatus(t, err, codes.InvalidArgument, "right-index given twice")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "f", FingerPositions: []pb.FingerPosition{0}})
		wantStatus(t, err, codes.InvalidArgument, "finger_positions")
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "f", CaptureFingers: true, FingerTimeout: durationpb.New(time.Hour)})
		wantStatus(t, err, codes.InvalidArgument, "finger_timeout")
		thr := float32(0.5)
		_, err = srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "f", CaptureFingers: true, Threshold: &thr})
		wantStatus(t, err, codes.InvalidArgument, "threshold", "max_fmr")
	})
	t.Run("status", func(t *testing.T) {
		r, err := srv.gates.GateStatus(ctx, &pb.GateStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range r.Gates {
			t.Logf("gate %s: scanner %q %v device %q, %d fingers captured, %d failed, error %q",
				g.Gate, g.Scanner, g.ScannerState, g.ScannerDevice, g.FingersCaptured, g.FingersFailed, g.ScannerLastError)
			switch g.Gate {
			case "f":
				if g.ScannerState != pb.SourceState_SOURCE_STATE_CONNECTED || g.FingersCaptured != 4 || g.FingersFailed != 2 {
					t.Errorf("gate f: %v", g)
				}
			case "nos":
				if g.ScannerState != pb.SourceState_SOURCE_STATE_CONNECTING || g.FingersFailed != 1 {
					t.Errorf("gate nos: %v", g)
				}
			case "cam":
				if g.Scanner != "" || g.ScannerState != pb.SourceState_SOURCE_STATE_UNSPECIFIED {
					t.Errorf("gate cam: %v", g)
				}
			}
		}
	})
}

// TestGateScannerUnplugged: a scanner unplugged during a capture (the
// virtual device's -5 command, as a USB unplug) fails that finger with
// SCANNER_ERROR; the gate then finds the device gone when it reopens it
// and says so. In a child process, since the virtual device is gone for
// the rest of the process.
func TestGateScannerUnplugged(t *testing.T) {
	if os.Getenv("BM_GATE_UNPLUG") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestGateScannerUnplugged$", "-test.v")
		cmd.Env = append(os.Environ(), "BM_GATE_UNPLUG=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestGateScannerUnplugged") {
			t.Fatalf("child process: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "gatefingers_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return
	}
	virtualScanner(t)
	srv := startGates(t, []GateConfig{
		{ID: "u", Source: "folder:" + frameFolder(t, 2, 0, nil), FPS: 10, Scanner: "libfprint:virtual_image"},
	}, nil)
	ctx := context.Background()
	waitScanner(t, srv.gates, "u", func(s *pb.GateState) bool { return s.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTED })
	ch := make(chan *pb.CaptureAndIdentifyResponse, 1)
	go func() {
		resp, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "u", SkipFace: true, CaptureFingers: true})
		if err != nil {
			t.Error(err)
		}
		ch <- resp
	}()
	waitScanner(t, srv.gates, "u", func(s *pb.GateState) bool { return strings.HasPrefix(s.ScannerDevice, "open, waiting for a finger") })
	sendVirtual(t, [2]int32{-5, 0}, nil)
	resp := <-ch
	if resp.GetOutcome() != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FINGER || len(resp.GetFingers()) != 1 ||
		resp.Fingers[0].Outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_ERROR || !strings.Contains(resp.Fingers[0].Detail, "removed") {
		t.Fatalf("%v", resp)
	}
	t.Logf("unplugged during the capture: %s", resp.Fingers[0].Detail)
	st := waitScanner(t, srv.gates, "u", func(s *pb.GateState) bool {
		return s.ScannerState == pb.SourceState_SOURCE_STATE_RECONNECTING && strings.Contains(s.ScannerLastError, "no such fingerprint scanner")
	})
	t.Logf("status: %v, %q, %d attempts", st.ScannerState, st.ScannerLastError, st.ScannerOpenAttempts)
	_, err := srv.gates.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{Gate: "u", SkipFace: true, CaptureFingers: true})
	wantStatus(t, err, codes.Unavailable, "scanner libfprint:virtual_image is not ready (RECONNECTING")
}

// TestGateScannerAppears: a replay folder that is not there yet is
// retried (CONNECTING, the error kept) until it appears; a match-on-chip
// sensor is FAILED and not retried.
func TestGateScannerAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "scans")
	s := newGateScanner("folder:"+dir, 0, testLogger(t))
	var states []string
	var mu sync.Mutex
	s.onState = func(st string) { mu.Lock(); states = append(states, st); mu.Unlock() }
	s.Start()
	defer s.Close()
	wait := func(ok func(*pb.GateState) bool) *pb.GateState {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := s.status()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("scanner %v (%q, %d attempts)", st.ScannerState, st.ScannerLastError, st.ScannerOpenAttempts)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st := wait(func(st *pb.GateState) bool { return st.ScannerLastError != "" })
	if st.ScannerState != pb.SourceState_SOURCE_STATE_CONNECTING || !strings.Contains(st.ScannerLastError, "no such file") {
		t.Fatalf("missing folder: %v", st)
	}
	if o := s.capture(context.Background(), time.Second); o.outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_SCANNER_UNAVAILABLE ||
		!strings.Contains(o.detail, "is not ready (CONNECTING") {
		t.Fatalf("capture while connecting: %+v", o)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "1.tif"), readFile(t, db1+"101_2.tif"), 0o644); err != nil {
		t.Fatal(err)
	}
	st = wait(func(st *pb.GateState) bool { return st.ScannerState == pb.SourceState_SOURCE_STATE_CONNECTED })
	if st.ScannerOpenAttempts < 2 || !strings.HasPrefix(st.ScannerDevice, "open, idle") {
		t.Fatalf("appeared: %v", st)
	}
	if o := s.capture(context.Background(), time.Second); o.outcome != pb.FingerCaptureOutcome_FINGER_CAPTURE_OUTCOME_CAPTURED || o.scan.Image == nil {
		t.Fatalf("capture: %+v", o)
	}
	t.Logf("opened after %d attempts", st.ScannerOpenAttempts)

	moc := newGateScanner("libfprint:goodixmoc", 0, testLogger(t))
	moc.open = func(string, int) (fprint.Scanner, error) {
		return nil, fmt.Errorf("%w: goodixmoc matches fingerprints on the chip", fprint.ErrNoImages)
	}
	moc.Start()
	defer moc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for moc.status().ScannerState != pb.SourceState_SOURCE_STATE_FAILED {
		if time.Now().After(deadline) {
			t.Fatalf("match-on-chip: %v", moc.status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // past the first retry's time
	if st := moc.status(); st.ScannerOpenAttempts != 1 || !strings.Contains(st.ScannerLastError, "gives no images") {
		t.Fatalf("match-on-chip: %v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || states[0] != "connecting" || states[len(states)-1] != "connected" {
		t.Fatalf("states told: %v", states)
	}
}
