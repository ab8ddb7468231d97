package main

// End-to-end tests of the real binaries: matchd serving a real Badger
// directory on a loopback port, driven by the real watchlist CLI.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/matcher"
)

const root = "../.."

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bordermatch-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/matchd", "./cmd/watchlist")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func modelsDir(t *testing.T) string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	d, err := filepath.Abs(filepath.Join(root, "models"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// dataDirs maps a running matchd's address to its data directory, whose
// tls/ holds the local CA and admin certificate the CLI uses by default.
var dataDirs sync.Map

type daemon struct {
	cmd  *exec.Cmd
	addr string
	log  *bytes.Buffer
	done chan error
}

func startMatchd(t *testing.T, data string, extra ...string) *daemon {
	t.Helper()
	return startMatchdAt(t, freeAddr(t), data, extra...)
}

// startMatchdAt starts matchd listening on addr (one its peers know
// beforehand).
func startMatchdAt(t *testing.T, addr, data string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{addr: addr, log: new(bytes.Buffer), done: make(chan error, 1)}
	args := append([]string{"--listen", d.addr, "--data", data, "--models", modelsDir(t), "--log-format", "json"}, extra...)
	d.cmd = exec.Command(filepath.Join(binDir, "matchd"), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	dataDirs.Store(d.addr, data)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			t.Fatalf("matchd exited during start: %v\n%s", err, d.log)
		default:
		}
		if c, err := net.DialTimeout("tcp", d.addr, 100*time.Millisecond); err == nil {
			c.Close()
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("matchd did not listen on %s\n%s", d.addr, d.log)
	return nil
}

// stop sends SIGINT and expects a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("matchd exited with %v after SIGINT\n%s", err, d.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("matchd did not stop after SIGINT\n%s", d.log)
	}
}

// cli runs the watchlist binary and returns stdout, stderr and the exit code.
func cli(t *testing.T, server string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pre := []string{"--server", server}
	if data, ok := dataDirs.Load(server); ok {
		pre = append(pre, "--data", data.(string))
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "watchlist"), append(pre, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func mustCLI(t *testing.T, server string, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, server, args...)
	if code != 0 {
		t.Fatalf("watchlist %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func photo(p string) string { return filepath.Join(root, "testdata", "faces", p) }

func TestEndToEnd(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data)

	// The sample watchlist, with a progress bar on stderr.
	out := mustCLI(t, d.addr, "import", filepath.Join(root, "testdata", "watchlist"), "--list", "sample")
	if !strings.Contains(out, "failed 0") {
		t.Errorf("import printed %q", out)
	}
	// Rerunning an import skips who is enrolled already.
	out = mustCLI(t, d.addr, "import", filepath.Join(root, "testdata", "watchlist"), "--list", "sample")
	if !strings.Contains(out, "Imported 0") {
		t.Errorf("second import printed %q", out)
	}
	out = mustCLI(t, d.addr, "add", "--id", "jimin", "--name", "Park Jimin", "--photo", photo("idols/jimin/4.jpg"), "--list", "wanted", "--meta", "case=42")
	if !strings.Contains(out, "Added jimin") {
		t.Errorf("add printed %q", out)
	}

	out = mustCLI(t, d.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"), "--top", "3", "--json")
	var res struct {
		Candidates []struct {
			Rank       int      `json:"rank"`
			SubjectID  string   `json:"subject_id"`
			Name       string   `json:"name"`
			Score      float64  `json:"score"`
			Watchlists []string `json:"watchlists"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("search --json: %v\n%s", err, out)
	}
	if len(res.Candidates) == 0 || res.Candidates[0].Rank != 1 || res.Candidates[0].SubjectID != "tzuyu" ||
		res.Candidates[0].Name != "Tzuyu (Twice)" || res.Candidates[0].Score <= 0 || res.Candidates[0].Watchlists[0] != "sample" {
		t.Fatalf("search: %s", out)
	}
	out = mustCLI(t, d.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"))
	if !strings.Contains(out, "RANK") || !strings.Contains(out, "Tzuyu (Twice)") {
		t.Errorf("search table: %s", out)
	}
	// Nothing above the threshold is an empty list, and still exit 0; the
	// templates searched are the list's.
	out = mustCLI(t, d.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"), "--list", "wanted", "--json")
	if !strings.Contains(out, `"candidates": []`) || !strings.Contains(out, `"searched": 1`) {
		t.Errorf("empty search: %s", out)
	}
	out = mustCLI(t, d.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"), "--list", "wanted")
	if !strings.Contains(out, "No candidate") || !strings.Contains(out, "(1 templates searched)") {
		t.Errorf("empty search table: %s", out)
	}
	// A list nobody is on (a typo) is no silent "no hit": exit 3, naming
	// it and the lists there are, not the photo.
	for _, args := range [][]string{
		{"search", "--photo", photo("idols/tzuyu/2.jpg"), "--list", "wantd"},
		{"list", "--list", "wantd"},
	} {
		out, errs, code := cli(t, d.addr, args...)
		if code != 3 || !strings.Contains(errs, `"wantd"`) || !strings.Contains(errs, `"wanted"`) || !strings.Contains(errs, `"sample"`) ||
			strings.Contains(errs, "2.jpg") || strings.Contains(out, "No ") {
			t.Errorf("watchlist %s: exit %d, stdout %q, stderr %q; want exit 3 naming wantd, wanted and sample", strings.Join(args, " "), code, out, errs)
		}
	}

	out = mustCLI(t, d.addr, "show", "jimin")
	for _, w := range []string{"Park Jimin", "wanted", "case", "42", "mobilefacenet-192"} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	out = mustCLI(t, d.addr, "lists", "--json")
	if !strings.Contains(out, `"wanted"`) || !strings.Contains(out, `"sample"`) {
		t.Errorf("lists: %s", out)
	}
	out = mustCLI(t, d.addr, "list", "--list", "wanted")
	if !strings.Contains(out, "jimin") || !strings.Contains(out, "1 subject(s)") {
		t.Errorf("list --list wanted: %s", out)
	}

	// Errors in plain words, with exit codes scripts rely on.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"show", "nobody"}, 3, "nobody"},
		{[]string{"remove", "nobody"}, 3, "nobody"},
		{[]string{"search", "--photo", photo("reference/white.png")}, 4, "white.png"},
		{[]string{"search", "--photo", "/no/such/file.jpg"}, 4, "file.jpg"},
		{[]string{"add", "--id", "jimin", "--photo", photo("idols/jimin/5.jpg")}, 4, "exists"},
		{[]string{"add", "--id", "group", "--photo", photo("reference/faces.jpg")}, 4, "several faces"},
		{[]string{"search"}, 2, "--photo"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		_, errs, code := cli(t, d.addr, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("watchlist %s: exit %d stderr %q, want exit %d mentioning %q", strings.Join(tc.args, " "), code, errs, tc.code, tc.msg)
		}
	}
	_, errs, code := cli(t, d.addr, "search", "--photo", photo("reference/white.png"))
	if !strings.Contains(errs, "no face") {
		t.Errorf("no-face message %q does not say so", errs)
	}

	// Restart: the gallery is intact.
	d.stop(t)
	if !strings.Contains(d.log.String(), `"rpc":"/bordermatch.v1.Matcher/Identify"`) {
		t.Errorf("log lacks per-RPC lines:\n%s", d.log)
	}
	d = startMatchd(t, data)
	out = mustCLI(t, d.addr, "search", "--photo", photo("idols/tzuyu/2.jpg"), "--json")
	if !strings.Contains(out, `"subject_id": "tzuyu"`) {
		t.Fatalf("search after restart: %s", out)
	}
	mustCLI(t, d.addr, "remove", "jimin")
	_, _, code = cli(t, d.addr, "show", "jimin")
	if code != 3 {
		t.Fatalf("show after remove: exit %d, want 3", code)
	}
	d.stop(t)

	// The server is gone: exit 5 with a message that says so.
	_, errs, code = cli(t, d.addr, "lists", "--timeout", "2s")
	if code != 5 || !strings.Contains(errs, "matchd") {
		t.Fatalf("server down: exit %d %q, want 5", code, errs)
	}
}

func TestBadFlags(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "matchd"), "--detector", "magic")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--detector") {
		t.Fatalf("bad --detector: %v %s", err, out)
	}
	cmd = exec.Command(filepath.Join(binDir, "matchd"), "--models", t.TempDir(), "--data", t.TempDir(), "--listen", freeAddr(t))
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "make models") {
		t.Fatalf("missing models: %v %s", err, out)
	}
	// An unknown model: the error lists the models there are.
	out, err = exec.Command(filepath.Join(binDir, "matchd"), "--models", modelsDir(t), "--data", t.TempDir(), "--listen", freeAddr(t),
		"--face-model", "nosuch-net").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `--face-model "nosuch-net": no such face model`) || !strings.Contains(string(out), "mobilefacenet-192") ||
		!strings.Contains(string(out), "dlib") {
		t.Errorf("unknown --face-model: %v %s", err, out)
	}
	// A bad value from the environment names the variable; the command
	// line wins over it. Both are usage errors (exit 2).
	cmd = exec.Command(filepath.Join(binDir, "matchd"))
	cmd.Env = append(os.Environ(), "BORDERMATCH_FINGER_DPI=20")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `BORDERMATCH_FINGER_DPI="20"`) {
		t.Errorf("BORDERMATCH_FINGER_DPI=20: %v %s", err, out)
	}
	cmd = exec.Command(filepath.Join(binDir, "matchd"), "--finger-dpi", "30")
	cmd.Env = append(os.Environ(), "BORDERMATCH_FINGER_DPI=20")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), `--finger-dpi "30"`) {
		t.Errorf("--finger-dpi 30 over BORDERMATCH_FINGER_DPI=20: %v %s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "matchd"), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[$BORDERMATCH_FINGER_DPI] (default 500)") {
		t.Errorf("matchd --help: %v %s", err, out)
	}
}

// TestTargetFMR starts matchd with a calibration table and a target FMR and
// checks that searches use the threshold the table gives for it, and that
// impossible settings are refused before the server starts.
func TestTargetFMR(t *testing.T) {
	// 100,000 impostor scores spread evenly over [0.5, 1): FMR 0.001 is
	// reached at the 100 highest, from 0.9995 up.
	impostor := make([]float64, 100_000)
	for i := range impostor {
		impostor[i] = 0.5 + 0.5*float64(i)/float64(len(impostor))
	}
	cal := matcher.NewCalibration(impostor)
	cal.Modality, cal.Algorithm, cal.DataSet = "face", "mobilefacenet-192/v1", "synthetic" // the default model's
	path := filepath.Join(t.TempDir(), "calibration.json")
	if err := cal.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	want, err := cal.ThresholdForFMR(0.001)
	if err != nil {
		t.Fatal(err)
	}

	d := startMatchd(t, t.TempDir(), "--face-calibration", path, "--target-fmr", "0.001")
	out := mustCLI(t, d.addr, "search", "--photo", photo("bbt/sheldon/1.png"), "--json")
	var res struct {
		Threshold float32 `json:"threshold"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("search --json: %v\n%s", err, out)
	}
	if res.Threshold != want || want < 0.999 {
		t.Errorf("threshold %v, want %v from the table", res.Threshold, want)
	}
	d.stop(t)
	if !strings.Contains(d.log.String(), `"target_fmr":0.001`) {
		t.Errorf("the log does not say where the threshold came from:\n%s", d.log)
	}

	other := cal
	other.Algorithm = "dlib-resnet29/v2"
	otherPath := filepath.Join(t.TempDir(), "other.json")
	if err := other.WriteFile(otherPath); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--face-calibration", path, "--target-fmr", "2"}, "between 0 and 1"},
		{[]string{"--face-calibration", path, "--target-fmr", "0.001", "--threshold", "0.9"}, "not both"},
		// 100,000 impostor comparisons measure FMR down to 3e-5.
		{[]string{"--face-calibration", path, "--target-fmr", "0.00001"}, "100000"},
		{[]string{"--face-calibration", otherPath, "--target-fmr", "0.001"}, "dlib-resnet29/v2"},
		{[]string{"--face-calibration", "/no/such/table.json", "--target-fmr", "0.001"}, "table.json"},
	} {
		args := append([]string{"--models", modelsDir(t), "--data", t.TempDir(), "--listen", freeAddr(t)}, tc.args...)
		out, err := exec.Command(filepath.Join(binDir, "matchd"), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.msg) {
			t.Errorf("matchd %s: %v, output %q does not mention %q", strings.Join(tc.args, " "), err, out, tc.msg)
		}
	}
}

func fingerprint(p string) string { return filepath.Join(root, "templates", "finger", "testdata", p) }
func isoRecord(p string) string   { return filepath.Join(root, "matcher", "testdata", "fingers", p) }

// TestFingersEndToEnd: fingerprints through the CLI: add with images and an
// ISO record, a folder import with finger files, search by fingers and by
// face and finger, per-modality scores in the table and the JSON, errors
// naming the file, and fingers back after a restart.
func TestFingersEndToEnd(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data)

	out := mustCLI(t, d.addr, "add", "--id", "fp1", "--name", "Finger Person",
		"--finger", "right-index="+fingerprint("fvc2002_db1_b/101_1.tif"),
		"--finger", "left-index="+fingerprint("fvc2002_db1_b/102_1.tif"), "--list", "wanted")
	if !strings.Contains(out, "Added fp1") || !strings.Contains(out, "2 finger(s)") {
		t.Errorf("add printed %q", out)
	}
	mustCLI(t, d.addr, "add", "--id", "both", "--name", "Face And Finger", "--photo", photo("idols/tzuyu/1.jpg"),
		"--finger", "right-thumb="+isoRecord("fvc2002_db3_b/101_1.iso"), "--list", "wanted")
	// A folder import: one subject with a photo and a fingerprint named by
	// its position.
	imp := t.TempDir()
	sub := filepath.Join(imp, "imported")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		fingerprint("fvc2002_db2_b/101_1.tif"): "left-thumb.tif",
		photo("bbt/sheldon/1.png"):             "photo.png",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out = mustCLI(t, d.addr, "import", imp, "--list", "wanted", "--dpi", "569")
	if !strings.Contains(out, "Imported 1") {
		t.Errorf("import printed %q", out)
	}
	out = mustCLI(t, d.addr, "show", "imported")
	if !strings.Contains(out, "finger left-thumb") || !strings.Contains(out, "face mobilefacenet-192") {
		t.Errorf("show imported:\n%s", out)
	}

	type searchOut struct {
		Candidates []struct {
			SubjectID string   `json:"subject_id"`
			Score     float64  `json:"score"`
			FaceScore *float64 `json:"face_score"`
			Fingers   []struct {
				Position string  `json:"position"`
				Score    float64 `json:"score"`
				Compared bool    `json:"compared"`
			} `json:"fingers"`
			FusedScore float64 `json:"fused_score"`
		} `json:"candidates"`
		Fused  bool    `json:"fused"`
		MaxFMR float64 `json:"max_fmr"`
		Rule   string  `json:"rule"`
	}
	search := func(args ...string) searchOut {
		t.Helper()
		out := mustCLI(t, d.addr, append([]string{"search", "--json"}, args...)...)
		var res searchOut
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("search --json: %v\n%s", err, out)
		}
		return res
	}
	res := search("--finger", "right-index="+fingerprint("fvc2002_db1_b/101_2.tif"), "--finger", "left-index="+fingerprint("fvc2002_db1_b/102_2.tif"))
	if !res.Fused || res.MaxFMR <= 0 || len(res.Candidates) != 1 || res.Candidates[0].SubjectID != "fp1" ||
		len(res.Candidates[0].Fingers) != 2 || !res.Candidates[0].Fingers[1].Compared || res.Candidates[0].Fingers[0].Position != "right-index" ||
		res.Candidates[0].FaceScore != nil || res.Candidates[0].Score < 3 || res.Rule != "fused FMR <= max_fmr 0.001" {
		t.Fatalf("search by two fingers: %+v", res)
	}
	res = search("--photo", photo("idols/tzuyu/2.jpg"), "--finger", "right-thumb="+isoRecord("fvc2002_db3_b/101_2.iso"))
	if len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "both" || res.Candidates[0].FaceScore == nil || len(res.Candidates[0].Fingers) != 1 {
		t.Fatalf("search by face and finger: %+v", res)
	}
	res = search("--finger", "left-thumb="+fingerprint("fvc2002_db2_b/101_2.tif"), "--dpi", "569")
	if len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "imported" {
		t.Fatalf("search of the imported finger: %+v", res)
	}
	out = mustCLI(t, d.addr, "search", "--finger", "right-index="+fingerprint("fvc2002_db1_b/101_3.tif"))
	for _, w := range []string{"FUSED", "FINGERS", "fp1", "right-index 0.", "passing fused FMR <= max_fmr"} {
		if !strings.Contains(out, w) {
			t.Errorf("search table lacks %q:\n%s", w, out)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"search", "--finger", "right-index=" + filepath.Join(root, "templates", "minutiae", "testdata", "invalid", "101_1_truncate_1_byte.iso")}, 4, "101_1_truncate_1_byte.iso"},
		{[]string{"search", "--finger", "right-pinky=x.png"}, 2, "not a finger position"},
		{[]string{"search", "--finger", "left-index=" + photo("reference/white.png")}, 4, "white.png"},
		{[]string{"add", "--id", "blank", "--finger", "right-index=" + photo("reference/white.png")}, 4, "no fingerprint"},
		{[]string{"add", "--id", "nothing"}, 2, "--finger"},
	} {
		out, errs, code := cli(t, d.addr, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("watchlist %s: exit %d, stderr %q; want exit %d naming %q (stdout %q)", strings.Join(tc.args, " "), code, errs, tc.code, tc.msg, out)
		}
	}
	if _, _, code := cli(t, d.addr, "show", "blank"); code != 3 {
		t.Errorf("a refused enrolment was stored (show exit %d)", code)
	}

	d.stop(t)
	d = startMatchd(t, data)
	res = search("--finger", "right-index="+fingerprint("fvc2002_db1_b/101_2.tif"))
	if len(res.Candidates) != 1 || res.Candidates[0].SubjectID != "fp1" {
		t.Fatalf("search after restart: %+v", res)
	}
	d.stop(t)
}
