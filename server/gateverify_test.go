package server

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// The test passports' files (templates/facerecord/testdata, SOURCES.md
// there): the BSI 2008 test passport's DG2 holds a JPEG 2000 photo of its
// specimen holder; the ICAO 39794-5 sample face is another photo of the
// same woman, taken years later.
const (
	recordData = "../templates/facerecord/testdata"
	chipDG2    = recordData + "/bsi2008/Datagroup2.bin"
	holderFace = recordData + "/ICAO_39794_5_AP_Face.jpg"
)

// holderFrames writes gate frames (640×480, a grey scene) showing the
// photo scaled to 420 px high, as a camera at the gate would see the
// traveller.
func holderFrames(t testing.TB, photo string, n int) string {
	t.Helper()
	img := gocv.IMRead(photo, gocv.IMReadColor)
	defer img.Close()
	if img.Empty() {
		t.Fatalf("cannot read %s", photo)
	}
	h := 420
	w := img.Cols() * h / img.Rows()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 125, 130, 0), 480, 640, gocv.MatTypeCV8UC3)
		x, y := (640-w)/2, (480-h)/2
		roi := frame.Region(image.Rect(x, y, x+w, y+h))
		small.CopyTo(&roi)
		roi.Close()
		ok := gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("%04d.png", i)), frame)
		frame.Close()
		if !ok {
			t.Fatal("writing frame")
		}
	}
	return dir
}

func dg2Sample(b []byte) *pb.Sample { return &pb.Sample{Kind: &pb.Sample_FaceRecord{FaceRecord: b}} }

// TestVerifyChipPhoto: Verify takes the chip's DG2 (or a bare face record)
// as the reference, says which record it read, echoes the gate
// controller's passive authentication, and refuses damaged DG2 bytes
// naming the tag.
func TestVerifyChipPhoto(t *testing.T) {
	srv := startGates(t, nil, nil)
	ctx := context.Background()
	dg2 := readFile(t, chipDG2)
	passed := pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED

	t.Run("another photo of the holder", func(t *testing.T) {
		r, err := srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(dg2)}, PassiveAuth: passed,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := r.GetReferenceRecord()
		if !r.Match || r.PassiveAuth != passed || rec.GetContainer() != "DG2" || rec.GetFormat() != "ISO/IEC 19794-5:2005" ||
			rec.GetImageType() != "JPEG 2000" || rec.GetWidth() != 413 || rec.GetHeight() != 531 || rec.GetFaces() != 1 ||
			r.ReferenceQuality.GetInterEyePixels() < 60 {
			t.Fatalf("%v", r)
		}
		t.Logf("chip photo (DG2, %s %d×%d) vs another photo of the holder: score %.3f, threshold %.3f, match %v",
			rec.ImageType, rec.Width, rec.Height, r.Score, r.Threshold, r.Match)
	})
	t.Run("someone else", func(t *testing.T) {
		r, err := srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, bbt+"/penny/2.png"),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(dg2)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Match || r.PassiveAuth != pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_UNSPECIFIED {
			t.Fatalf("%v", r)
		}
	})
	t.Run("bare records", func(t *testing.T) {
		// The 39794-5 sample record holds the holder's later photo itself.
		r, err := srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(readFile(t, recordData+"/ICAO_39794_5_AP_MandFields.dat"))},
		})
		if err != nil {
			t.Fatal(err)
		}
		if rec := r.GetReferenceRecord(); !r.Match || rec.GetContainer() != "record" || rec.GetFormat() != "ISO/IEC 39794-5" {
			t.Fatalf("%v", r)
		}
		// The 19794-5 sample's 148×70 JPEG is too small to hold a face
		// the detector finds: the record is read, the photo refused.
		_, err = srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(readFile(t, recordData+"/ISO19794_Test1_Data.bin"))},
		})
		wantStatus(t, err, codes.InvalidArgument, "reference", "no face")
	})
	t.Run("enrolled from the chip", func(t *testing.T) {
		_, err := srv.matcher.Enroll(ctx, &pb.EnrollRequest{SubjectId: "holder", Watchlists: []string{"chips"}, Samples: []*pb.Sample{dg2Sample(dg2)}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := srv.matcher.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, holderFace), Watchlists: []string{"chips"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Candidates) != 1 || r.Candidates[0].SubjectId != "holder" {
			t.Fatalf("%v", r)
		}
		_, err = srv.matcher.Enroll(ctx, &pb.EnrollRequest{SubjectId: "broken", Samples: []*pb.Sample{dg2Sample(dg2[:100])}})
		wantStatus(t, err, codes.InvalidArgument, "sample 1", "DG2")
	})
	t.Run("damaged DG2", func(t *testing.T) {
		_, err := srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(dg2[:len(dg2)/2])},
		})
		wantStatus(t, err, codes.InvalidArgument, "reference", "DG2", "tag 75", "byte 0")
		_, err = srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample(readFile(t, recordData+"/ICAO_39794_5_AP_MandFields_InvalidImage.dat"))},
		})
		wantStatus(t, err, codes.InvalidArgument, "reference", "image")
		_, err = srv.matcher.Verify(ctx, &pb.VerifyRequest{
			Probe:     photo(t, holderFace),
			Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: dg2Sample([]byte("GIF89a"))},
		})
		wantStatus(t, err, codes.InvalidArgument, "reference", "neither a 19794-5 record")
	})
}

// TestCaptureAndVerify: the e-gate's transaction. The chip's photo is
// compared with the best shot of the traveller at the gate, and the shot
// searched on the watchlists, in one call.
func TestCaptureAndVerify(t *testing.T) {
	srv := startGates(t, []GateConfig{
		{ID: "holder", Source: "folder:" + holderFrames(t, holderFace, 4), FPS: 10},
		{ID: "impostor", Source: "folder:" + frameFolder(t, 0, 4, traveller()), FPS: 10},
		{ID: "empty", Source: "folder:" + frameFolder(t, 3, 0, nil), FPS: 10},
	}, nil)
	ctx := context.Background()
	for _, g := range []string{"holder", "impostor", "empty"} {
		waitState(t, srv.gates, g, pb.SourceState_SOURCE_STATE_CONNECTED, true)
	}
	dg2 := readFile(t, chipDG2)
	passed := pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED
	call := func(gate string, pa pb.PassiveAuthentication, ref []byte) (*pb.CaptureAndVerifyResponse, error) {
		return srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{
			Gate: gate, Reference: dg2Sample(ref), PassiveAuth: pa, MaxWait: durationpb.New(5 * time.Second), TopK: 3,
		})
	}

	t.Run("the holder", func(t *testing.T) {
		r, err := call("holder", passed, dg2)
		if err != nil {
			t.Fatal(err)
		}
		v := r.GetVerification()
		if r.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED || !v.GetMatch() || !r.Clear ||
			r.Identification == nil || len(r.Identification.Candidates) != 0 || r.Shot.GetQuality().GetScore() <= 0 ||
			v.GetReferenceRecord().GetContainer() != "DG2" || v.GetPassiveAuth() != passed || v.GetProbeQuality() == nil {
			t.Fatalf("%v", r)
		}
		if !strings.Contains(r.Detail, "holder verified") || !strings.Contains(r.Detail, "no watchlist hit") ||
			!strings.Contains(r.Detail, "; "+v.GetRule()+")") || v.GetRule() == "" || v.GetFaceFmr() > v.GetDecisionFmr() {
			t.Errorf("detail %q", r.Detail)
		}
		t.Logf("%s; shot quality %.2f (eyes %.0f px), %v", r.Detail, r.Shot.Quality.Score, r.Shot.Quality.InterEyePixels, r.Elapsed.AsDuration())
	})
	t.Run("the holder, passive authentication failed", func(t *testing.T) {
		r, err := call("holder", pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_FAILED, dg2)
		if err != nil {
			t.Fatal(err)
		}
		if !r.GetVerification().GetMatch() || r.Clear || !strings.Contains(r.Detail, "passive authentication FAILED") {
			t.Fatalf("%v", r)
		}
	})
	t.Run("someone on a watchlist with her passport", func(t *testing.T) {
		r, err := call("impostor", passed, dg2)
		if err != nil {
			t.Fatal(err)
		}
		c := r.GetIdentification().GetCandidates()
		if r.GetVerification().GetMatch() || r.Clear || len(c) == 0 || c[0].SubjectId != gatePerson ||
			!strings.Contains(r.Detail, "NOT verified") || !strings.Contains(r.Detail, "WATCHLIST HIT") {
			t.Fatalf("%v", r)
		}
		t.Log(r.Detail)
	})
	t.Run("1:1 only", func(t *testing.T) {
		r, err := srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{Gate: "impostor", Reference: dg2Sample(dg2), SkipWatchlists: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Identification != nil || r.Clear || !strings.Contains(r.Detail, "watchlists not searched") {
			t.Fatalf("%v", r)
		}
	})
	t.Run("nobody at the gate", func(t *testing.T) {
		r, err := srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{Gate: "empty", Reference: dg2Sample(dg2), MaxWait: durationpb.New(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome != pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE || r.Verification != nil || r.Clear {
			t.Fatalf("%v", r)
		}
	})
	t.Run("bad reference fails before the camera", func(t *testing.T) {
		bad := bytes.Clone(dg2)
		bad[5] = 0x99 // the group template's tag
		start := time.Now()
		_, err := call("holder", passed, bad)
		wantStatus(t, err, codes.InvalidArgument, "reference", "DG2", "tag")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("refused after %v: the camera was watched first", d)
		}
		_, err = srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{Gate: "holder"})
		wantStatus(t, err, codes.InvalidArgument, "reference")
		_, err = srv.gates.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{Gate: "nosuch", Reference: dg2Sample(dg2)})
		wantStatus(t, err, codes.NotFound, "nosuch")
	})
}
