package server

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/an2k"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// nistTransaction builds an INT-I transaction as a partner would send
// one: Type-2 with the subject's data, a Type-10 face (the photo as a
// JPEG) and Type-14 fingerprints (FVC2002 DB1 images at 500 ppi).
func nistTransaction(t testing.TB, attrs map[string]string, photoPath string, fingers map[int]string) []byte {
	t.Helper()
	pr, err := an2k.LoadProfile("int-i")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := an2k.NewTransaction(pr, "CPS", an2k.Header{Originator: "XXINTERPOL", Destination: "YYBORDER", TCN: "TCN-1"})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := pr.Type2(attrs)
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(t2)
	if photoPath != "" {
		img := decodeFile(t, photoPath)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.AddFace(buf.Bytes(), 1); err != nil {
			t.Fatal(err)
		}
	}
	positions := make([]int, 0, len(fingers))
	for p := range fingers {
		positions = append(positions, p)
	}
	slices.Sort(positions)
	for _, p := range positions {
		g, _, err := fpimage.Decode(readFile(t, fingers[p]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.AddFingerprint(an2k.Fingerprint{Gray: g, PPI: 500, Position: p}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFile(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// TestNISTTransactions: a partner's ANSI/NIST-ITL transaction enrols a
// subject (face, fingers, Type-2 data), searches with its face and
// fingers, and an enrolled subject exports as one that enrols again
// elsewhere; malformed transactions are refused naming record and byte,
// and nothing is stored.
func TestNISTTransactions(t *testing.T) {
	srv := startServer(t, t.TempDir())
	ctx := context.Background()
	db1 := fvcImages + "/fvc2002_db1_b/"
	tenprint := nistTransaction(t, map[string]string{"name": "Leonard Hofstadter", "reference": "IP-2024-17",
		"date_of_birth": "19800517", "nationality": "US"}, bbt+"/leonard/1.png", map[int]string{2: db1 + "101_1.tif", 7: db1 + "102_1.tif"})

	t.Run("enrol", func(t *testing.T) {
		r, err := srv.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "IP-2024-17", Watchlists: []string{"interpol"}, NistTransaction: tenprint})
		if err != nil {
			t.Fatal(err)
		}
		sub, use := r.Subject, r.Nist
		if sub.Name != "Leonard Hofstadter" || sub.Metadata["date_of_birth"] != "19800517" || sub.Metadata["nationality"] != "US" ||
			len(sub.Templates) != 3 || sub.SampleCount != 3 {
			t.Fatalf("subject %v", sub)
		}
		if use.GetDomain() != "INT-I 4.22" || use.GetTot() != "CPS" || use.GetFaces() != 1 || use.GetFingers() != 2 || len(use.GetSkipped()) != 0 {
			t.Fatalf("nist %v", use)
		}
		// Another enrolment, of someone else's photo, for the search to
		// rank below.
		if _, err := srv.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "howard", Watchlists: []string{"interpol"},
			Samples: []*pb.Sample{photo(t, bbt+"/howard/1.png")}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("search", func(t *testing.T) {
		probe := nistTransaction(t, map[string]string{}, bbt+"/leonard/2.png", map[int]string{2: db1 + "101_2.tif", 7: db1 + "102_2.tif"})
		r, err := srv.client.Identify(ctx, &pb.IdentifyRequest{NistTransaction: probe})
		if err != nil {
			t.Fatal(err)
		}
		c := r.GetCandidates()
		if len(c) == 0 || c[0].SubjectId != "IP-2024-17" || len(c[0].FingerScores) != 2 || c[0].FaceScore == nil || !r.Fused {
			t.Fatalf("%v", r)
		}
		if r.Nist.GetFaces() != 1 || r.Nist.GetFingers() != 2 {
			t.Fatalf("nist %v", r.Nist)
		}
		// Fingers alone (no Type-10).
		probe = nistTransaction(t, map[string]string{}, "", map[int]string{2: db1 + "101_3.tif"})
		r, err = srv.client.Identify(ctx, &pb.IdentifyRequest{NistTransaction: probe})
		if err != nil {
			t.Fatal(err)
		}
		if c := r.GetCandidates(); len(c) == 0 || c[0].SubjectId != "IP-2024-17" || r.ProbeQuality != nil {
			t.Fatalf("fingers alone: %v", r)
		}
	})
	t.Run("export and enrol elsewhere", func(t *testing.T) {
		r, err := srv.client.ExportSubject(ctx, &pb.ExportSubjectRequest{SubjectId: "IP-2024-17", Originator: "YYBORDER"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Format != "an2k" || r.Records[1] != 1 || r.Records[2] != 1 || r.Records[10] != 1 || r.Records[14] != 2 {
			t.Fatalf("records %v", r.Records)
		}
		tx, err := an2k.Parse(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		pr, _ := an2k.LoadProfile("int-i")
		attrs := pr.Subject(&tx.Records[1])
		if attrs["name"] != "Leonard Hofstadter" || attrs["reference"] != "IP-2024-17" || attrs["date_of_birth"] != "19800517" ||
			tx.Originator() != "YYBORDER" {
			t.Fatalf("Type-2 %v, ORI %q", attrs, tx.Originator())
		}
		other := startServer(t, t.TempDir())
		e, err := other.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "copy", NistTransaction: r.Data})
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject.Name != "Leonard Hofstadter" || len(e.Subject.Templates) != 3 {
			t.Fatalf("re-enrolled %v", e.Subject)
		}
		id, err := other.client.Identify(ctx, &pb.IdentifyRequest{Probe: photo(t, bbt+"/leonard/3.png")})
		if err != nil || len(id.Candidates) == 0 || id.Candidates[0].SubjectId != "copy" {
			t.Fatalf("%v %v", id, err)
		}
		_, err = srv.client.ExportSubject(ctx, &pb.ExportSubjectRequest{SubjectId: "IP-2024-17", Profile: "fbi"})
		wantStatus(t, err, codes.InvalidArgument, "unknown profile", "ebts", "int-i")
		_, err = srv.client.ExportSubject(ctx, &pb.ExportSubjectRequest{SubjectId: "nobody"})
		wantStatus(t, err, codes.NotFound, "nobody")
		_, err = srv.client.ExportSubject(ctx, &pb.ExportSubjectRequest{SubjectId: "howard", Format: "xml"})
		wantStatus(t, err, codes.InvalidArgument, "an2k")
	})
	t.Run("test files", func(t *testing.T) {
		// NIST's test transactions: what each gives, and what it does not.
		for _, tc := range []struct {
			file           string
			faces, fingers int32
			skipped        string
			code           codes.Code
			message        string
		}{
			{file: "valid1.14.an2", fingers: 1, skipped: "no INCITS 378 block"},
			{file: "type9.an2k", code: codes.InvalidArgument, message: "no INCITS 378 block"},
			{file: "face_jpb_DOM_GMT_DCS.an2", faces: 1},
			{file: "valid1.8.an2", code: codes.InvalidArgument, message: "finger position 13 is a slap"},
			{file: "type9-13.an2k", code: codes.InvalidArgument, message: "latent images are not searched"},
			{file: "valid1.10.an2", code: codes.InvalidArgument, message: "iris images are not searched"},
		} {
			b := readFile(t, filepath.Join("..", "templates", "an2k", "testdata", tc.file))
			r, err := srv.client.Identify(ctx, &pb.IdentifyRequest{NistTransaction: b})
			if tc.code != codes.OK {
				wantStatus(t, err, tc.code, tc.message)
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", tc.file, err)
				continue
			}
			if r.Nist.GetFaces() != tc.faces || r.Nist.GetFingers() != tc.fingers ||
				(tc.skipped != "" && !strings.Contains(strings.Join(r.Nist.GetSkipped(), "\n"), tc.skipped)) {
				t.Errorf("%s: %v", tc.file, r.Nist)
			}
			t.Logf("%s: %d faces, %d fingers; skipped %q", tc.file, r.Nist.GetFaces(), r.Nist.GetFingers(), r.Nist.GetSkipped())
		}
	})
	t.Run("minutiae", func(t *testing.T) {
		// A search by minutiae (Type-9 with the INCITS 378 block) instead
		// of images, as Prüm and INT-I allow: the subject enrolled from a
		// SecuGen ISO record is found by another impression's record.
		if _, err := srv.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "m1", Samples: fingers(fingerRecord(t, rThumb, db3Records+"103_1.iso"))}); err != nil {
			t.Fatal(err)
		}
		probe, err := minutiae.Parse(readFile(t, db3Records+"103_2.iso"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range probe.Views {
			probe.Views[i].Position = minutiae.RightThumb
		}
		pr, _ := an2k.LoadProfile("int-i")
		tx, err := an2k.NewTransaction(pr, "CPS", an2k.Header{Originator: "XX"})
		if err != nil {
			t.Fatal(err)
		}
		t2, _ := pr.Type2(nil)
		tx.Add(t2)
		if _, err := tx.AddMinutiae(probe); err != nil {
			t.Fatal(err)
		}
		b, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r, err := srv.client.Identify(ctx, &pb.IdentifyRequest{NistTransaction: b})
		if err != nil {
			t.Fatal(err)
		}
		if r.Nist.GetFingers() != 1 || len(r.Candidates) == 0 || r.Candidates[0].SubjectId != "m1" {
			t.Fatalf("%v", r)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		n := count(t, srv.store)
		_, err := srv.client.Enroll(ctx, &pb.EnrollRequest{SubjectId: "bad", NistTransaction: tenprint[:len(tenprint)/2]})
		wantStatus(t, err, codes.InvalidArgument, "nist_transaction", "record", "byte")
		bad := bytes.Replace(bytes.Clone(tenprint), []byte("1.003:"), []byte("1.0x3:"), 1)
		_, err = srv.client.Identify(ctx, &pb.IdentifyRequest{NistTransaction: bad})
		wantStatus(t, err, codes.InvalidArgument, "nist_transaction")
		if got := count(t, srv.store); got != n {
			t.Errorf("%d subjects stored, want %d", got, n)
		}
	})
}
