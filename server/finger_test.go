package server

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// The fingerprints the tests use: FVC2002 images committed by package
// finger (templates/finger/testdata/SOURCES.md) and SecuGen ISO records of
// FVC2002 DB3_B committed by package matcher (matcher/testdata/fingers).
const (
	fvcImages  = "../templates/finger/testdata"
	db1        = fvcImages + "/fvc2002_db1_b/"
	db2        = fvcImages + "/fvc2002_db2_b/" // 569 dpi
	db3Records = "../matcher/testdata/fingers/fvc2002_db3_b/"
	badRecord  = "../templates/minutiae/testdata/invalid/101_1_truncate_1_byte.iso"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fingerImage(t testing.TB, pos pb.FingerPosition, path string, dpi int32) *pb.FingerSample {
	return &pb.FingerSample{Position: pos, Kind: &pb.FingerSample_Image{Image: readFile(t, path)}, Dpi: dpi}
}

func fingerRecord(t testing.TB, pos pb.FingerPosition, path string) *pb.FingerSample {
	return &pb.FingerSample{Position: pos, Kind: &pb.FingerSample_Record{Record: readFile(t, path)}}
}

func fingers(fs ...*pb.FingerSample) []*pb.Sample {
	var out []*pb.Sample
	for _, f := range fs {
		out = append(out, &pb.Sample{Kind: &pb.Sample_Finger{Finger: f}})
	}
	return out
}

const (
	rIndex = pb.FingerPosition_RIGHT_INDEX
	lIndex = pb.FingerPosition_LEFT_INDEX
	rThumb = pb.FingerPosition_RIGHT_THUMB
)

// enrolFingerGallery enrols three subjects with fingers only:
//
//	f1: right index = DB1 101_1 (image), left index = DB1 102_1 (image)
//	f2: right index = DB2 101_1 (image, 569 dpi), right thumb = DB3 103_1 (record)
//	f3: right index = DB3 101_1 (record), left index = DB3 102_1 (record)
func enrolFingerGallery(t *testing.T, ts *testServer) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []*pb.EnrollRequest{
		{SubjectId: "f1", Name: "Finger One", Watchlists: []string{"alpha"},
			Samples: fingers(fingerImage(t, rIndex, db1+"101_1.tif", 0), fingerImage(t, lIndex, db1+"102_1.tif", 0))},
		{SubjectId: "f2", Name: "Finger Two", Watchlists: []string{"beta"},
			Samples: fingers(fingerImage(t, rIndex, db2+"101_1.tif", 569), fingerRecord(t, rThumb, db3Records+"103_1.iso"))},
		{SubjectId: "f3", Name: "Finger Three", Watchlists: []string{"beta"},
			Samples: fingers(fingerRecord(t, rIndex, db3Records+"101_1.iso"), fingerRecord(t, lIndex, db3Records+"102_1.iso"))},
	} {
		resp, err := ts.client.Enroll(ctx, r)
		if err != nil {
			t.Fatalf("enrol %s: %v", r.SubjectId, err)
		}
		if len(resp.GetFingerQuality()) != 2 || len(resp.GetSubject().GetTemplates()) != 2 {
			t.Fatalf("enrol %s: %v", r.SubjectId, resp)
		}
		for _, q := range resp.GetFingerQuality() {
			if q.GetMinutiae() < 10 || q.GetUsableMinutiae() < 2 || q.GetDpi() < 500 {
				t.Fatalf("enrol %s: finger quality %v", r.SubjectId, q)
			}
		}
		ti := resp.GetSubject().GetTemplates()[0]
		if ti.GetModality() != pb.Modality_MODALITY_FINGER || ti.GetFingerPosition() != r.Samples[0].GetFinger().GetPosition() ||
			ti.GetAlgorithm() != templates.FingerAlgorithm.ID || ti.GetMinutiae() == 0 {
			t.Fatalf("enrol %s: template info %v", r.SubjectId, ti)
		}
	}
}

func TestFingerIdentify(t *testing.T) {
	ts := startServer(t, t.TempDir())
	enrolFingerGallery(t, ts)
	ctx := context.Background()
	if n := ts.svc.eng.IndexSize(); n != 6 {
		t.Fatalf("index holds %d templates, want 6", n)
	}
	one := func(t *testing.T, req *pb.IdentifyRequest, want string) *pb.Candidate {
		t.Helper()
		resp, err := ts.client.Identify(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.GetFused() || resp.GetMaxFmr() != engine.DefaultMaxFMR || math.Abs(resp.GetFusedThreshold()-3) > 1e-9 {
			t.Fatalf("decision: %v", resp)
		}
		if len(resp.GetCandidates()) == 0 || resp.GetCandidates()[0].GetSubjectId() != want {
			t.Fatalf("candidates %v, want %s first", resp.GetCandidates(), want)
		}
		for _, c := range resp.GetCandidates() {
			if c.GetFusedFmr() > engine.DefaultMaxFMR || float64(c.GetScore()) < 3-1e-6 || c.FaceScore != nil {
				t.Fatalf("candidate %v does not pass the fused decision", c)
			}
		}
		if len(resp.GetCandidates()) != 1 {
			t.Errorf("impostors passed: %v", resp.GetCandidates())
		}
		return resp.GetCandidates()[0]
	}
	var single, double float64
	t.Run("another impression, one finger", func(t *testing.T) {
		c := one(t, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0)}}, "f1")
		fs := c.GetFingerScores()
		if len(fs) != 1 || !fs[0].GetCompared() || fs[0].GetPosition() != rIndex || fs[0].GetScore() <= 0 || c.GetFingerScore() != fs[0].GetScore() {
			t.Fatalf("finger scores %v", c)
		}
		if math.Abs(c.GetFusedFmr()-fs[0].GetFmr()) > 1e-12 {
			t.Fatalf("one finger: fused FMR %v, finger FMR %v", c.GetFusedFmr(), fs[0].GetFmr())
		}
		single = c.GetFusedScore()
		t.Logf("one finger: score %.3f, FMR %.2g, fused score %.2f", fs[0].GetScore(), fs[0].GetFmr(), single)
	})
	t.Run("two fingers fuse", func(t *testing.T) {
		c := one(t, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{
			fingerImage(t, rIndex, db1+"101_2.tif", 0), fingerImage(t, lIndex, db1+"102_2.tif", 0)}}, "f1")
		if len(c.GetFingerScores()) != 2 || !c.GetFingerScores()[1].GetCompared() {
			t.Fatalf("finger scores %v", c.GetFingerScores())
		}
		double = c.GetFusedScore()
		t.Logf("two fingers: scores %.3f %.3f, fused score %.2f", c.GetFingerScores()[0].GetScore(), c.GetFingerScores()[1].GetScore(), double)
		if double <= single {
			t.Fatalf("two fingers fused to %v, one finger alone %v", double, single)
		}
	})
	t.Run("the probe as Sample.finger", func(t *testing.T) {
		one(t, &pb.IdentifyRequest{Probe: fingers(fingerImage(t, lIndex, db1+"102_3.tif", 0))[0]}, "f1")
	})
	t.Run("unknown position is compared with every finger", func(t *testing.T) {
		one(t, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, 0, db1+"101_3.tif", 0)}}, "f1")
	})
	t.Run("569 dpi", func(t *testing.T) {
		one(t, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, rIndex, db2+"101_2.tif", 569)}}, "f2")
	})
	t.Run("ISO record probe", func(t *testing.T) {
		one(t, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerRecord(t, lIndex, db3Records+"102_4.iso")}}, "f3")
	})
	t.Run("wrong position is not compared", func(t *testing.T) {
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, pb.FingerPosition_LEFT_LITTLE, db1+"101_2.tif", 0)}})
		if err != nil || len(resp.GetCandidates()) != 0 {
			t.Fatalf("%v %v", resp, err)
		}
	})
	t.Run("watchlists", func(t *testing.T) {
		probe := []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0)}
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: probe, Watchlists: []string{"beta"}})
		if err != nil || len(resp.GetCandidates()) != 0 {
			t.Fatalf("f1 is not on beta: %v %v", resp, err)
		}
		one(t, &pb.IdentifyRequest{Fingers: probe, Watchlists: []string{"beta", "alpha"}}, "f1")
	})
	t.Run("a looser max_fmr lets impostors in, ranked below", func(t *testing.T) {
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{
			Fingers: []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0)}, MaxFmr: ptr(0.9999)})
		if err != nil || len(resp.GetCandidates()) < 2 || resp.GetCandidates()[0].GetSubjectId() != "f1" {
			t.Fatalf("%v %v", resp, err)
		}
		if resp.GetCandidates()[1].GetFusedScore() >= resp.GetCandidates()[0].GetFusedScore() {
			t.Fatalf("not ranked by fused score: %v", resp.GetCandidates())
		}
	})
	t.Run("verify", func(t *testing.T) {
		probe := []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0), fingerImage(t, lIndex, db1+"102_2.tif", 0)}
		v, err := ts.client.Verify(ctx, &pb.VerifyRequest{Fingers: probe, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "f1"}})
		if err != nil || !v.GetMatch() || !v.GetFused() || math.Abs(v.GetFusedScore()-double) > 1e-6 || len(v.GetFingerScores()) != 2 {
			t.Fatalf("verify f1: %v %v (identify fused %v)", v, err, double)
		}
		v, err = ts.client.Verify(ctx, &pb.VerifyRequest{Fingers: probe, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "f3"}})
		if err != nil || v.GetMatch() {
			t.Fatalf("verify f3: %v %v", v, err)
		}
		// 1:1 against reference fingers, as read from a document.
		v, err = ts.client.Verify(ctx, &pb.VerifyRequest{Fingers: probe[:1],
			ReferenceFingers: []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_3.tif", 0), fingerImage(t, lIndex, db1+"102_3.tif", 0)}})
		if err != nil || !v.GetMatch() || len(v.GetReferenceFingerQuality()) != 2 || len(v.GetProbeFingerQuality()) != 1 {
			t.Fatalf("verify against reference fingers: %v %v", v, err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if _, err := ts.client.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: "f1"}); err != nil {
			t.Fatal(err)
		}
		resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0)}, MaxFmr: ptr(0.9999)})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.GetCandidates() {
			if c.GetSubjectId() == "f1" {
				t.Fatalf("deleted subject found: %v", c)
			}
		}
		if n := ts.svc.eng.IndexSize(); n != 4 {
			t.Fatalf("index holds %d templates after delete, want 4", n)
		}
	})
}

// TestFingerFaceFusion: a subject with a face and a finger is found by
// either, and by both with more evidence than either alone.
func TestFingerFaceFusion(t *testing.T) {
	ts := startServer(t, t.TempDir())
	enrolFingerGallery(t, ts)
	ctx := context.Background()
	samples := append([]*pb.Sample{photo(t, enrolA)}, fingers(fingerRecord(t, rThumb, db3Records+"104_1.iso"))...)
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "both", Samples: samples}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "sheldon", Samples: []*pb.Sample{photo(t, enrolB)}}); err != nil {
		t.Fatal(err)
	}
	finger := []*pb.FingerSample{fingerRecord(t, rThumb, db3Records+"104_2.iso")}

	// Face only, no max_fmr: decided on the cosine as before fingers.
	face, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA)})
	if err != nil || face.GetFused() || len(face.GetCandidates()) == 0 {
		t.Fatalf("face: %v %v", face, err)
	}
	fc := face.GetCandidates()[0]
	if fc.GetSubjectId() != "both" || fc.GetScore() != fc.GetFaceScore() || fc.GetScore() < matcher0930 || fc.FaceFmr == nil {
		t.Fatalf("face candidate %v", fc)
	}
	// The answer states its rule, and the face FMR is within the FMR of
	// the threshold it passed (issue 18).
	if !strings.HasPrefix(face.GetRule(), "face cosine >= threshold") || fc.GetDecisionFmr() <= 0 || fc.GetFaceFmr() > fc.GetDecisionFmr() || fc.FaceLr == nil {
		t.Fatalf("face rule %q, candidate %v", face.GetRule(), fc)
	}
	fing, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: finger})
	if err != nil || len(fing.GetCandidates()) != 1 || fing.GetCandidates()[0].GetSubjectId() != "both" {
		t.Fatalf("finger: %v %v", fing, err)
	}
	both, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, probeA), Fingers: finger})
	if err != nil || len(both.GetCandidates()) == 0 {
		t.Fatalf("face and finger: %v %v", both, err)
	}
	c := both.GetCandidates()[0]
	if c.GetSubjectId() != "both" || c.FaceScore == nil || c.GetFaceScore() != fc.GetFaceScore() || len(c.GetFingerScores()) != 1 {
		t.Fatalf("fused candidate %v", c)
	}
	if both.GetRule() != "fused FMR <= max_fmr 0.001" || c.GetDecisionFmr() != 0.001 || c.GetFusedFmr() > c.GetDecisionFmr() {
		t.Fatalf("fused rule %q, candidate %v", both.GetRule(), c)
	}
	if c.GetFusedScore() <= fing.GetCandidates()[0].GetFusedScore() || c.GetFusedScore() <= -math.Log10(fc.GetFaceFmr()) {
		t.Fatalf("fused %v not above finger %v and face %v", c.GetFusedScore(), fing.GetCandidates()[0].GetFusedScore(), -math.Log10(fc.GetFaceFmr()))
	}
	t.Logf("face %.4f (FMR %.2g), finger %.3f (FMR %.2g), fused score %.2f",
		c.GetFaceScore(), c.GetFaceFmr(), c.GetFingerScores()[0].GetScore(), c.GetFingerScores()[0].GetFmr(), c.GetFusedScore())
	fs := c.GetFingerScores()[0]
	want := engine.Fuse([]engine.Evidence{{FMR: c.GetFaceFmr(), LR: c.GetFaceLr()}, {FMR: fs.GetFmr(), LR: fs.GetLr()}})
	if math.Abs(c.GetFusedFmr()-want)/want > 1e-9 {
		t.Fatalf("fused FMR %v, want %v", c.GetFusedFmr(), want)
	}
	// Verify of the same, against the subject.
	v, err := ts.client.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Fingers: finger, Reference: &pb.VerifyRequest_SubjectId{SubjectId: "both"}})
	if err != nil || !v.GetMatch() || math.Abs(v.GetFusedScore()-c.GetFusedScore()) > 1e-6 || v.GetRule() != both.GetRule() || v.GetDecisionFmr() != 0.001 {
		t.Fatalf("verify: %v %v", v, err)
	}
	// A face probe against a subject with fingers only has nothing to compare.
	_, err = ts.client.Verify(ctx, &pb.VerifyRequest{Probe: photo(t, probeA), Reference: &pb.VerifyRequest_SubjectId{SubjectId: "f1"}})
	wantCode(t, err, codes.FailedPrecondition)
}

const matcher0930 = 0.93

// TestFingerRestart: the fingers come back after a restart, with the same
// scores.
func TestFingerRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	enrolFingerGallery(t, ts)
	ctx := context.Background()
	req := &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerImage(t, rIndex, db1+"101_2.tif", 0), fingerImage(t, lIndex, db1+"102_2.tif", 0)}}
	before, err := ts.client.Identify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()
	ts = startServer(t, dir)
	if n := ts.svc.eng.IndexSize(); n != 6 {
		t.Fatalf("index after restart holds %d templates, want 6", n)
	}
	after, err := ts.client.Identify(ctx, req)
	if err != nil || len(after.GetCandidates()) == 0 || after.GetCandidates()[0].GetSubjectId() != "f1" {
		t.Fatalf("after restart: %v %v", after, err)
	}
	if b, a := before.GetCandidates()[0], after.GetCandidates()[0]; b.GetFusedScore() != a.GetFusedScore() {
		t.Fatalf("fused score %v before restart, %v after", b.GetFusedScore(), a.GetFusedScore())
	}
}

func TestFingerBadInputStoresNothing(t *testing.T) {
	ts := startServerWith(t, t.TempDir(), func(c *engine.Config) { c.Finger.QualityFloor = 100 })
	ctx := context.Background()
	good := func() *pb.FingerSample { return fingerRecord(t, rIndex, db3Records+"101_1.iso") }
	img := func(pos pb.FingerPosition, b []byte) *pb.FingerSample {
		return &pb.FingerSample{Position: pos, Kind: &pb.FingerSample_Image{Image: b}}
	}
	tif := readFile(t, db1+"101_1.tif")
	white := readFile(t, noFace)
	tooMany := make([]*pb.FingerSample, 11)
	for i := range tooMany {
		tooMany[i] = good()
	}
	goodTpl, err := templates.NewFingerTemplate(minutiaeView(t, db3Records+"101_1.iso")).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), goodTpl...)
	corrupt[len(corrupt)/2] ^= 1
	for _, tc := range []struct {
		name    string
		samples []*pb.FingerSample
		code    codes.Code
		want    string // the message must name it
	}{
		{"below the quality floor", []*pb.FingerSample{img(rIndex, tif)}, codes.InvalidArgument, "floor 100"},
		{"blank image", []*pb.FingerSample{good(), img(lIndex, white)}, codes.InvalidArgument, "no fingerprint"},
		{"not an image", []*pb.FingerSample{img(lIndex, []byte("not an image at all"))}, codes.InvalidArgument, "unsupported"},
		{"format hint", []*pb.FingerSample{{Position: rIndex, Kind: &pb.FingerSample_Image{Image: tif}, Format: "wsq"}}, codes.InvalidArgument, "format"},
		{"unknown format hint", []*pb.FingerSample{{Position: rIndex, Kind: &pb.FingerSample_Image{Image: tif}, Format: "gif"}}, codes.InvalidArgument, "format"},
		{"dpi", []*pb.FingerSample{{Position: rIndex, Kind: &pb.FingerSample_Image{Image: tif}, Dpi: 100}}, codes.InvalidArgument, "dpi"},
		{"truncated record", []*pb.FingerSample{good(), fingerRecord(t, lIndex, badRecord)}, codes.InvalidArgument, "record"},
		{"position", []*pb.FingerSample{{Position: 11, Kind: &pb.FingerSample_Record{Record: readFile(t, db3Records+"101_1.iso")}}}, codes.InvalidArgument, "position"},
		{"corrupt template", []*pb.FingerSample{{Kind: &pb.FingerSample_Template{Template: corrupt}}}, codes.InvalidArgument, "checksum"},
		{"eleven fingers", tooMany, codes.InvalidArgument, "and 10 fingers"},
		{"empty finger", []*pb.FingerSample{good(), {Position: rIndex}}, codes.InvalidArgument, "no image, record or template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "bad", Samples: fingers(tc.samples...)})
			wantCode(t, err, tc.code)
			if !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("%q does not name %q", status.Convert(err).Message(), tc.want)
			}
			if n := count(t, ts.store); n != 0 {
				t.Fatalf("%d subjects stored", n)
			}
			if n := ts.svc.eng.IndexSize(); n != 0 {
				t.Fatalf("%d templates indexed", n)
			}
		})
	}
	// Probes: no quality floor, but the same checks otherwise.
	if _, err := ts.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "ok", Samples: fingers(good())}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *pb.IdentifyRequest
		want string
	}{
		{"nothing", &pb.IdentifyRequest{}, "face or at least one finger"},
		{"two of one position", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{good(), good()}}, "two fingers of position right-index"},
		{"threshold with fingers", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{good()}, Threshold: ptr(float32(0.5))}, "max_fmr"},
		{"max_fmr 0", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{good()}, MaxFmr: ptr(0.0)}, "max_fmr"},
		{"max_fmr 1", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{good()}, MaxFmr: ptr(1.0)}, "max_fmr"},
		{"bad record", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{fingerRecord(t, 0, badRecord)}}, "record"},
		{"blank image", &pb.IdentifyRequest{Fingers: []*pb.FingerSample{img(0, white)}}, "no fingerprint"},
	} {
		t.Run("identify "+tc.name, func(t *testing.T) {
			_, err := ts.client.Identify(ctx, tc.req)
			wantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Errorf("%q does not name %q", status.Convert(err).Message(), tc.want)
			}
		})
	}
	// A low-quality probe is still searched, and its quality reported.
	resp, err := ts.client.Identify(ctx, &pb.IdentifyRequest{Fingers: []*pb.FingerSample{img(rIndex, tif)}})
	if err != nil || len(resp.GetFingerQuality()) != 1 || resp.GetFingerQuality()[0].GetQuality() <= 0 || resp.GetFingerQuality()[0].GetFormat() != "tiff" {
		t.Fatalf("probe under the enrolment floor: %v %v", resp, err)
	}
	// A face probe against a finger reference has no modality in common.
	_, err = ts.client.Verify(ctx, &pb.VerifyRequest{Fingers: []*pb.FingerSample{good()},
		Reference: &pb.VerifyRequest_ReferenceSample{ReferenceSample: photo(t, enrolA)}})
	wantCode(t, err, codes.InvalidArgument)
}

func minutiaeView(t testing.TB, path string) minutiae.View {
	t.Helper()
	rec, err := minutiae.Parse(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Views[0]
}
