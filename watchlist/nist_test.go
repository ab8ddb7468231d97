package watchlist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/an2k"
)

const an2kTestdata = "../templates/an2k/testdata"

// ebtsPerson is what an EBTS Type-2 must hold.
func ebtsPerson(extra map[string]string) map[string]string {
	m := map[string]string{"name": "ROE,JANE", "place_of_birth": "FR", "date_of_birth": "19800102", "sex": "F"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// testJPEG is a small grey JPEG for a Type-10 record.
func testJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// buildNIST writes a transaction of the profile with a Type-2 of attrs
// (none when nil) and one face, and returns its bytes.
func buildNIST(t *testing.T, profile, tot, tcn string, attrs map[string]string) []byte {
	t.Helper()
	p, err := an2k.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := an2k.NewTransaction(p, tot, an2k.Header{Originator: "BM0000001", Destination: "IP0000000", TCN: tcn})
	if err != nil {
		t.Fatal(err)
	}
	if attrs != nil {
		t2, err := p.Type2(attrs)
		if err != nil {
			t.Fatal(err)
		}
		tx.Add(t2)
	}
	if _, err := tx.AddFace(testJPEG(t), 1); err != nil {
		t.Fatal(err)
	}
	b, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// malformed is valid1.8.an2 (three Type-14) cut short inside its last
// record.
func malformed(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(an2kTestdata, "valid1.8.an2"))
	if err != nil {
		t.Fatal(err)
	}
	return b[:len(b)-500]
}

func TestNISTDefaultID(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		file string
		want string
	}{
		// No domain (1.013) in NBIS's files: the TCN.
		{"valid1.14 (T2, T4, T9)", nil, filepath.Join(an2kTestdata, "valid1.14.an2"), "1234567890"},
		{"valid1.8 (3× T14)", nil, filepath.Join(an2kTestdata, "valid1.8.an2"), "1234567890"},
		// EBTS (NORAM) without a Type-2: the TCN.
		{"face, no Type-2", nil, filepath.Join(an2kTestdata, "face_jpb_DOM_GMT_DCS.an2"), "face1"},
		{"INT-I SCN", buildNIST(t, "int-i", "CPS", "TCN-1", map[string]string{"reference": "P1", "name": "ROE, JANE"}), "", "P1"},
		{"INT-I without SCN", buildNIST(t, "int-i", "CPS", "TCN-2", map[string]string{"name": "ROE, JANE"}), "", "TCN-2"},
		{"EBTS OCA", buildNIST(t, "ebts", "CAR", "TCN-3", ebtsPerson(map[string]string{"reference": "OCA-77"})), "", "OCA-77"},
		{"nothing", buildNIST(t, "int-i", "CPS", "", map[string]string{}), "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.file
			if c.data != nil {
				path = writeFile(t, filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".an2"), c.data)
			}
			nf, err := readNIST(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := nf.defaultID(); got != c.want {
				t.Errorf("defaultID = %q, want %q", got, c.want)
			}
		})
	}
	nf, err := readNIST(writeFile(t, filepath.Join(dir, "named.an2"), buildNIST(t, "int-i", "CPS", "T", map[string]string{"name": "ROE, JANE"})))
	if err != nil || !nf.hasName() {
		t.Errorf("hasName of an INT-I Type-2 with NAM: %v", err)
	}
}

func TestIsNISTFile(t *testing.T) {
	for name, want := range map[string]bool{
		"tenprint.an2": true, "P1.AN2K": true, "fbi.eft": true, "x.nist": true, "x.NIST": true,
		"face.jpg": false, "right-index.wsq": false, "subject.json": false, "an2": false, "x.an2.bak": false,
	} {
		if got := isNISTFile(name); got != want {
			t.Errorf("isNISTFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestNISTMalformedRefused: a malformed file is refused before any call
// (the server here is unreachable, which would be exit 5), with exit 4 and
// a message naming the file, the record and the byte.
func TestNISTMalformedRefused(t *testing.T) {
	bad := writeFile(t, filepath.Join(t.TempDir(), "broken.an2"), malformed(t))
	conn := []string{"--insecure", "--server", "127.0.0.1:1", "--timeout", "2s"}
	for _, args := range [][]string{
		{"add", "--nist", bad, "--list", "x"},
		{"add", "--id", "P1", "--nist", bad},
		{"search", "--nist", bad},
	} {
		_, errs, code := runCLI(t, append(conn, args...)...)
		if code != ExitBadInput || !strings.Contains(errs, "broken.an2") || !strings.Contains(errs, "record ") || !strings.Contains(errs, "at byte") {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
	_, errs, code := runCLI(t, append(conn, "add", "--nist", filepath.Join(t.TempDir(), "missing.an2"))...)
	if code != ExitBadInput || !strings.Contains(errs, "missing.an2") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
	// Neither a reference nor a TCN: --id is needed.
	none := writeFile(t, filepath.Join(t.TempDir(), "anon.an2"), buildNIST(t, "int-i", "CPS", "", map[string]string{}))
	_, errs, code = runCLI(t, append(conn, "add", "--nist", none)...)
	if code != ExitUsage || !strings.Contains(errs, "--id") || !strings.Contains(errs, "anon.an2") {
		t.Errorf("no id: exit %d %q", code, errs)
	}
}

func TestScanImportNIST(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.an2"), buildNIST(t, "int-i", "CPS", "TCN-A", map[string]string{"reference": "P-A", "name": "ROE, JANE"}))
	writeFile(t, filepath.Join(dir, "b.eft"), buildNIST(t, "ebts", "CAR", "TCN-B", ebtsPerson(nil)))
	writeFile(t, filepath.Join(dir, "c.nist"), buildNIST(t, "int-i", "CPS", "", map[string]string{}))
	writeFile(t, filepath.Join(dir, "bad.an2k"), malformed(t))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a subject"))
	// A folder with a photo and a transaction whose Type-2 has a name.
	writeFile(t, filepath.Join(dir, "folder1", "1.jpg"), testJPEG(t))
	writeFile(t, filepath.Join(dir, "folder1", "tenprint.an2"), buildNIST(t, "int-i", "CPS", "T", map[string]string{"name": "ROE, JOHN"}))
	// A folder with only a transaction, and a subject.json naming it.
	writeFile(t, filepath.Join(dir, "folder2", "x.an2"), buildNIST(t, "int-i", "CPS", "T", map[string]string{"name": "ROE, JOHN"}))
	writeFile(t, filepath.Join(dir, "folder2", "subject.json"), []byte(`{"name": "John Roe"}`))
	// Two transactions in one folder: a failure.
	writeFile(t, filepath.Join(dir, "folder3", "x.an2"), buildNIST(t, "int-i", "CPS", "T", nil))
	writeFile(t, filepath.Join(dir, "folder3", "y.eft"), buildNIST(t, "int-i", "CPS", "T", nil))
	// A plain folder, as before.
	writeFile(t, filepath.Join(dir, "folder4", "1.png"), []byte("png"))

	items, err := scanImport(dir, []string{"interpol"})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		id, name, nist string
		file, failed   bool
		photos         int
	}
	wants := []want{
		{"P-A", "", "a.an2", true, false, 0},
		{"TCN-B", "", "b.eft", true, false, 0}, // EBTS: no OCA, the TCN
		{"bad", "", "bad.an2k", true, true, 0},
		{"c", "", "c.nist", true, false, 0},
		{"folder1", "", "tenprint.an2", false, false, 1},
		{"folder2", "John Roe", "x.an2", false, false, 0},
		{"folder3", "folder3", "", false, true, 0},
		{"folder4", "folder4", "", false, false, 1},
	}
	if len(items) != len(wants) {
		t.Fatalf("%d items, want %d: %+v", len(items), len(wants), items)
	}
	for i, w := range wants {
		it := items[i]
		if it.sub.ID != w.id || it.sub.Name != w.name || filepath.Base(it.nist) != w.nist && !(w.nist == "" && it.nist == "") ||
			it.file != w.file || (it.failed != nil) != w.failed || len(it.photos) != w.photos {
			t.Errorf("item %d: %+v, want %+v", i, it, w)
		}
		if it.file && !w.failed && strings.Join(it.sub.Watchlists, ",") != "interpol" {
			t.Errorf("item %d: watchlists %v", i, it.sub.Watchlists)
		}
	}
	if e := items[2].failed; e == nil || !strings.Contains(e.Error(), "bad.an2k") || !strings.Contains(e.Error(), "at byte") {
		t.Errorf("malformed file's failure: %v", e)
	}
	if e := items[6].failed; e == nil || !strings.Contains(e.Error(), "x.an2, y.eft") {
		t.Errorf("two transactions in a folder: %v", e)
	}
	if got := itemsText(items); got != "4 folders and 4 ANSI/NIST files" {
		t.Errorf("itemsText = %q", got)
	}
}

func TestRecordsText(t *testing.T) {
	if got := recordsText(map[int32]int32{14: 2, 1: 1, 10: 1, 2: 1}); got != "Type-1, Type-2, 1× Type-10, 2× Type-14" {
		t.Errorf("recordsText = %q", got)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 123456: "123,456", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q", n, got)
		}
	}
}

// fakeMatcher answers Enroll, Identify and ExportSubject as the server
// does for a transaction, and keeps the requests.
type fakeMatcher struct {
	pb.UnimplementedMatcherServer
	enrolls    []*pb.EnrollRequest
	identifies []*pb.IdentifyRequest
	exports    []*pb.ExportSubjectRequest
}

var fakeUse = &pb.NISTUse{Domain: "INT-I 4.22", Tot: "CPS", Faces: 1, Fingers: 10,
	Skipped:    []string{"record 3 (Type-13): latent images are not searched", "record 4 (Type-15): palms are not used"},
	Attributes: map[string]string{"name": "ROE, JANE", "reference": "P1"}}

func (f *fakeMatcher) Enroll(_ context.Context, r *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	f.enrolls = append(f.enrolls, r)
	name := r.GetName()
	if name == "" {
		name = "ROE, JANE"
	}
	return &pb.EnrollResponse{Subject: &pb.Subject{Id: r.GetSubjectId(), Name: name, Watchlists: r.GetWatchlists()}, Nist: fakeUse}, nil
}

func (f *fakeMatcher) Identify(_ context.Context, r *pb.IdentifyRequest) (*pb.IdentifyResponse, error) {
	f.identifies = append(f.identifies, r)
	return &pb.IdentifyResponse{Threshold: 0.5, Searched: 3, Nist: fakeUse,
		Candidates: []*pb.Candidate{{Rank: 1, SubjectId: "P1", Name: "ROE, JANE", Score: 0.9, Watchlists: []string{"interpol"}}}}, nil
}

func (f *fakeMatcher) ExportSubject(_ context.Context, r *pb.ExportSubjectRequest) (*pb.ExportSubjectResponse, error) {
	f.exports = append(f.exports, r)
	return &pb.ExportSubjectResponse{Data: []byte("1.001:…the transaction…"), Format: "an2k",
		Records: map[int32]int32{1: 1, 2: 1, 10: 1, 14: 2}, LeftOut: []string{"case_officer"}}, nil
}

func fakeServer(t *testing.T) (*fakeMatcher, []string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMatcher{}
	s := grpc.NewServer()
	pb.RegisterMatcherServer(s, f)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return f, []string{"--insecure", "--server", lis.Addr().String(), "--timeout", "10s"}
}

// TestNISTCommands: what add, search and export send and print, against a
// fake server.
func TestNISTCommands(t *testing.T) {
	f, conn := fakeServer(t)
	dir := t.TempDir()
	tx := buildNIST(t, "int-i", "CPS", "TCN-1", map[string]string{"reference": "P1", "name": "ROE, JANE"})
	file := writeFile(t, filepath.Join(dir, "tenprint.an2"), tx)

	out, errs, code := runCLI(t, append(conn, "add", "--nist", file, "--list", "interpol")...)
	if code != 0 {
		t.Fatalf("add --nist: exit %d %q", code, errs)
	}
	want := "Added P1 (ROE, JANE) to interpol with 1 photo(s) and 10 finger(s) from tenprint.an2 (INT-I 4.22 CPS); 2 records not used: record 3 (Type-13): latent images are not searched; record 4 (Type-15): palms are not used.\n"
	if out != want {
		t.Errorf("add --nist printed\n%q, want\n%q", out, want)
	}
	r := f.enrolls[0]
	if r.GetSubjectId() != "P1" || r.GetName() != "" || !bytes.Equal(r.GetNistTransaction(), tx) || len(r.GetSamples()) != 0 {
		t.Errorf("Enroll request: id %q name %q %d bytes %d samples", r.GetSubjectId(), r.GetName(), len(r.GetNistTransaction()), len(r.GetSamples()))
	}
	// --id, --name and a photo besides.
	photo := writeFile(t, filepath.Join(dir, "extra.jpg"), testJPEG(t))
	out, errs, code = runCLI(t, append(conn, "add", "--nist", file, "--id", "X9", "--name", "Jane", "--photo", photo, "--list", "interpol", "--json")...)
	var aj struct {
		ID   string
		Name string
		NIST struct {
			File    string
			Domain  string
			Fingers int
			Skipped []string
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &aj) != nil || aj.ID != "X9" || aj.Name != "Jane" || aj.NIST.File != file || aj.NIST.Domain != "INT-I 4.22" || aj.NIST.Fingers != 10 || len(aj.NIST.Skipped) != 2 {
		t.Errorf("add --nist --json: exit %d %q %q", code, out, errs)
	}
	if r := f.enrolls[1]; r.GetSubjectId() != "X9" || r.GetName() != "Jane" || len(r.GetSamples()) != 1 || len(r.GetNistTransaction()) == 0 {
		t.Errorf("Enroll with --id, --name, --photo: %v", r)
	}

	out, errs, code = runCLI(t, append(conn, "search", "--nist", file, "--list", "interpol", "--top", "3")...)
	if code != 0 || !strings.Contains(out, "RANK") || !strings.Contains(out, "P1") ||
		!strings.Contains(out, "From tenprint.an2 (INT-I 4.22 CPS): searched with 1 face and 10 fingers; 2 records not used") {
		t.Errorf("search --nist: exit %d %q %q", code, out, errs)
	}
	if r := f.identifies[0]; !bytes.Equal(r.GetNistTransaction(), tx) || r.GetProbe() != nil || r.GetTopK() != 3 || strings.Join(r.GetWatchlists(), ",") != "interpol" {
		t.Errorf("Identify request: %v", r)
	}
	out, _, code = runCLI(t, append(conn, "search", "--nist", file, "--json")...)
	var sj searchJSON
	if code != 0 || json.Unmarshal([]byte(out), &sj) != nil || sj.NIST == nil || sj.NIST.Faces != 1 || len(sj.Candidates) != 1 {
		t.Errorf("search --nist --json: exit %d %q", code, out)
	}

	dest := filepath.Join(dir, "p1.an2")
	out, errs, code = runCLI(t, append(conn, "export", "P1", "--ori", "BM0000001", "--dai", "IP0000000", "-o", dest)...)
	want = "Wrote P1 as an ANSI/NIST-ITL transaction (INT-I): Type-1, Type-2, 1× Type-10, 2× Type-14 to " + dest + " (27 bytes); not written (no INT-I field): case_officer.\n"
	if code != 0 || out != want {
		t.Errorf("export: exit %d\n%q, want\n%q (%q)", code, out, want, errs)
	}
	if b, _ := os.ReadFile(dest); string(b) != "1.001:…the transaction…" {
		t.Errorf("export wrote %q", b)
	}
	if r := f.exports[0]; r.GetSubjectId() != "P1" || r.GetFormat() != "an2k" || r.GetProfile() != "int-i" || r.GetOriginator() != "BM0000001" || r.GetDestination() != "IP0000000" {
		t.Errorf("ExportSubject request: %v", r)
	}
	// An existing file is kept, before any call.
	_, errs, code = runCLI(t, append(conn, "export", "P1", "-o", dest)...)
	if code != ExitBadInput || !strings.Contains(errs, "--force") || len(f.exports) != 1 {
		t.Errorf("export over a file: exit %d %q", code, errs)
	}
	out, errs, code = runCLI(t, append(conn, "export", "P1", "--profile", "EBTS", "--tot", "car", "-o", dest, "--force", "--json")...)
	var ej struct {
		File    string
		Bytes   int
		Records map[string]int
		LeftOut []string `json:"left_out"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &ej) != nil || ej.File != dest || ej.Bytes != 27 || ej.Records["14"] != 2 || len(ej.LeftOut) != 1 {
		t.Errorf("export --force --json: exit %d %q %q", code, out, errs)
	}
	if r := f.exports[1]; r.GetProfile() != "ebts" || r.GetTot() != "CAR" {
		t.Errorf("ExportSubject request: %v", r)
	}
	// To standard output: the data there, the summary on stderr.
	out, errs, code = runCLI(t, append(conn, "export", "P1", "-o", "-")...)
	if code != 0 || out != "1.001:…the transaction…" || !strings.Contains(errs, "to standard output") {
		t.Errorf("export -o -: exit %d %q %q", code, out, errs)
	}
	for _, args := range [][]string{
		{"export", "P1"},
		{"export", "P1", "-o", dest, "--format", "xml"},
		{"export", "P1", "-o", dest, "--profile", "prum"},
		{"export", "P1", "-o", dest, "--profile", "int-i", "--tot", "TPIS"},
	} {
		if _, errs, code := runCLI(t, append(conn, args...)...); code != ExitUsage {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}

// TestImportNISTFiles: import sends each file's transaction under its id,
// and reports a malformed file as a named failure while importing the rest.
func TestImportNISTFiles(t *testing.T) {
	f, conn := fakeServer(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.an2"), buildNIST(t, "int-i", "CPS", "TCN-A", map[string]string{"reference": "P-A"}))
	writeFile(t, filepath.Join(dir, "b.an2"), buildNIST(t, "int-i", "CPS", "TCN-B", nil))
	writeFile(t, filepath.Join(dir, "bad.an2"), malformed(t))
	out, errs, code := runCLI(t, append(conn, "import", dir, "--list", "interpol", "--workers", "1")...)
	if code != ExitFailure || !strings.Contains(out, "FAILED bad: ") || !strings.Contains(out, "bad.an2") ||
		!strings.Contains(out, "Imported 2, already enrolled 0, failed 1 (of 3 ANSI/NIST files).") {
		t.Errorf("import: exit %d %q %q", code, out, errs)
	}
	var ids []string
	for _, r := range f.enrolls {
		ids = append(ids, r.GetSubjectId())
		if len(r.GetNistTransaction()) == 0 || r.GetName() != "" {
			t.Errorf("Enroll %s: %d bytes, name %q", r.GetSubjectId(), len(r.GetNistTransaction()), r.GetName())
		}
	}
	if strings.Join(ids, ",") != "P-A,TCN-B" {
		t.Errorf("enrolled %v", ids)
	}
	var ee *exitError
	if _, err := scanImport(t.TempDir(), nil); !errors.As(err, &ee) || ee.code != ExitBadInput || !strings.Contains(err.Error(), "ANSI/NIST") {
		t.Errorf("empty dir: %v", err)
	}
}
