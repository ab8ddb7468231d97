package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatesEndToEnd starts matchd with a gates file (a gate replaying the
// traveller's video in a loop) and a --gate whose stream is unreachable,
// and drives them with `watchlist gate`.
func TestGatesEndToEnd(t *testing.T) {
	video, err := filepath.Abs(filepath.Join(root, "testdata", "video", "gate.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gates.yaml")
	if err := os.WriteFile(cfg, []byte("gates:\n  - id: lane1\n    source: "+video+"\n    max_captures: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMatchd(t, t.TempDir(), "--gates", cfg, "--gate", "lane2=rtsp://127.0.0.1:1/stream", "--log-level", "debug")
	mustCLI(t, d.addr, "add", "--id", "leonard", "--name", "Leonard", "--photo", photo("bbt/leonard/1.png"), "--list", "test")
	mustCLI(t, d.addr, "add", "--id", "sheldon", "--name", "Sheldon", "--photo", photo("bbt/sheldon/1.png"), "--list", "test")

	out := mustCLI(t, d.addr, "gate", "status", "--json")
	var st struct {
		Gates []struct {
			Gate, Source, State string
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Gates) != 2 || st.Gates[0].Gate != "lane1" || st.Gates[1].Gate != "lane2" {
		t.Fatalf("gate status --json: %v\n%s", err, out)
	}
	if st.Gates[1].State != "SOURCE_STATE_CONNECTING" {
		t.Errorf("lane2: %+v", st.Gates[1])
	}

	// The clip lasts 6 s: watching 14 s from now sees the traveller face
	// the camera twice whatever the replay's position (on a loaded machine
	// the selector may assess only a few frames a second).
	out = mustCLI(t, d.addr, "gate", "identify", "lane1", "--wait", "14s", "--fresh", "--save-shot", filepath.Join(t.TempDir(), "shot.jpg"))
	if !strings.Contains(out, "RANK") || !strings.Contains(out, "leonard") || !strings.Contains(out, "quality") {
		t.Fatalf("gate identify: %s\n%s", out, d.log)
	}
	t.Logf("watchlist gate identify lane1:\n%s", out)

	out, errs, code := cli(t, d.addr, "gate", "identify", "lane2")
	if code != 5 || !strings.Contains(errs, "gate lane2") || !strings.Contains(errs, "rtsp://127.0.0.1:1/stream") {
		t.Errorf("unreachable gate: exit %d %q %q", code, out, errs)
	}
	_, errs, code = cli(t, d.addr, "gate", "identify", "lane9")
	if code != 3 || !strings.Contains(errs, `gate "lane9" is not configured (gates: lane1, lane2)`) {
		t.Errorf("unknown gate: exit %d %q", code, errs)
	}
	out = mustCLI(t, d.addr, "gate", "status")
	if !strings.Contains(out, "lane1") || !strings.Contains(out, "connected") || !strings.Contains(out, "connecting") {
		t.Errorf("gate status: %s", out)
	}
	t.Logf("watchlist gate status:\n%s", out)
	d.stop(t)
}

// TestGateVerifyEndToEnd: `watchlist gate verify` with the BSI test
// passport's DG2 at a gate whose camera shows a later photo of its holder
// (the ICAO 39794-5 sample face), and with a damaged DG2.
func TestGateVerifyEndToEnd(t *testing.T) {
	records := filepath.Join(root, "templates", "facerecord", "testdata")
	frames := t.TempDir()
	face, err := os.ReadFile(filepath.Join(records, "ICAO_39794_5_AP_Face.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1.jpg", "2.jpg", "3.jpg"} {
		if err := os.WriteFile(filepath.Join(frames, n), face, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startMatchd(t, t.TempDir(), "--gate", "lane1=folder:"+frames)
	mustCLI(t, d.addr, "add", "--id", "leonard", "--name", "Leonard", "--photo", photo("bbt/leonard/1.png"), "--list", "test")
	dg2 := filepath.Join(records, "bsi2008", "Datagroup2.bin")

	out := mustCLI(t, d.addr, "gate", "verify", "lane1", "--dg2", dg2, "--passive-auth", "passed", "--wait", "10s")
	for _, want := range []string{"DG2 (ISO/IEC 19794-5:2005), JPEG 2000 413×531", "1:1: the holder", "face cosine >= threshold 0.4642 (mobilefacenet-192/v1, FMR 0.001 on its calibration): face FMR",
		"Passive authentication: passed", "Watchlists: no hit", "CLEAR"} {
		if !strings.Contains(out, want) {
			t.Errorf("gate verify: no %q in\n%s", want, out)
		}
	}
	t.Logf("watchlist gate verify lane1 --dg2 Datagroup2.bin --passive-auth passed:\n%s", out)

	out = mustCLI(t, d.addr, "gate", "verify", "lane1", "--dg2", dg2, "--json", "--wait", "10s")
	var r struct {
		Clear        bool
		Verification struct {
			Match           bool
			ReferenceRecord struct{ Container string } `json:"reference_record"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Clear || !r.Verification.Match || r.Verification.ReferenceRecord.Container != "DG2" {
		t.Errorf("gate verify --json without passive authentication: %v %+v\n%s", err, r, out)
	}

	bad, err := os.ReadFile(dg2)
	if err != nil {
		t.Fatal(err)
	}
	badPath := filepath.Join(t.TempDir(), "dg2.bin")
	if err := os.WriteFile(badPath, bad[:len(bad)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code := cli(t, d.addr, "gate", "verify", "lane1", "--dg2", badPath)
	if code != 4 || !strings.Contains(errs, "DG2") || !strings.Contains(errs, "tag 75") {
		t.Errorf("damaged DG2: exit %d %q", code, errs)
	}
	_, errs, code = cli(t, d.addr, "gate", "verify", "lane1", "--dg2", dg2, "--passive-auth", "ok")
	if code != 2 || !strings.Contains(errs, "--passive-auth") {
		t.Errorf("bad --passive-auth: exit %d %q", code, errs)
	}
	d.stop(t)
}

func TestBadGates(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "gates.yaml")
	if err := os.WriteFile(bad, []byte("gates:\n  - id: 1\n    url: rtsp://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--gates", bad}, "field url not found"},
		{[]string{"--gates", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{[]string{"--gate", "3"}, "want ID=SOURCE"},
		{[]string{"--gate", "3=a", "--gate", "3=b"}, "gate 3 given twice"},
	} {
		args := append([]string{"--models", modelsDir(t), "--data", t.TempDir(), "--listen", freeAddr(t)}, tc.args...)
		out, err := exec.Command(filepath.Join(binDir, "matchd"), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.msg) {
			t.Errorf("matchd %s: %v, output %q does not mention %q", strings.Join(tc.args, " "), err, out, tc.msg)
		}
	}
}

// TestGateFingersEndToEnd: a gate with a camera folder showing the
// traveller and a replay scanner holding his other fingerprint impression,
// driven with `watchlist gate identify --fingers` and `--no-face`.
func TestGateFingersEndToEnd(t *testing.T) {
	fvc := filepath.Join(root, "templates", "finger", "testdata", "fvc2002_db1_b")
	frames, scans := t.TempDir(), t.TempDir()
	for i, p := range []string{"2.png", "3.png"} {
		b, err := os.ReadFile(photo("bbt/leonard/" + p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(frames, fmt.Sprintf("%d.png", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(fvc, "101_2.tif"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scans, "1.tif"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gates.yaml")
	if err := os.WriteFile(cfg, []byte("gates:\n  - id: lane1\n    source: folder:"+frames+"\n    scanner: folder:"+scans+
		"\n    fingers: [right-index]\n  - id: lane2\n    source: folder:"+frames+"\n    scanner: libfprint:no-such-scanner\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMatchd(t, t.TempDir(), "--gates", cfg)
	mustCLI(t, d.addr, "add", "--id", "leonard", "--name", "Leonard", "--photo", photo("bbt/leonard/1.png"),
		"--finger", "right-index="+filepath.Join(fvc, "101_1.tif"), "--list", "test")
	mustCLI(t, d.addr, "add", "--id", "sheldon", "--name", "Sheldon", "--photo", photo("bbt/sheldon/1.png"),
		"--finger", "right-index="+filepath.Join(fvc, "102_1.tif"), "--list", "test")

	out := mustCLI(t, d.addr, "gate", "identify", "lane1", "--fingers", "--wait", "4s")
	for _, want := range []string{"Finger right-index: captured", "FUSED FMR", "leonard", "right-index 0."} {
		if !strings.Contains(out, want) {
			t.Errorf("gate identify --fingers: no %q in\n%s", want, out)
		}
	}
	t.Logf("watchlist gate identify lane1 --fingers:\n%s", out)
	out = mustCLI(t, d.addr, "gate", "identify", "lane1", "--no-face", "--finger", "right-index")
	if !strings.Contains(out, "identified by 1 finger alone") || !strings.Contains(out, "leonard") {
		t.Errorf("gate identify --no-face: %s", out)
	}
	t.Logf("watchlist gate identify lane1 --no-face --finger right-index:\n%s", out)
	out = mustCLI(t, d.addr, "gate", "verify", "lane1", "--photo", photo("bbt/leonard/1.png"), "--passive-auth", "passed", "--fingers", "--wait", "4s")
	for _, want := range []string{"Finger right-index: captured", "1:1: the holder", "Watchlists: 1 candidates", "leonard", "REFER TO AN OFFICER"} {
		if !strings.Contains(out, want) {
			t.Errorf("gate verify --fingers: no %q in\n%s", want, out)
		}
	}
	t.Logf("watchlist gate verify lane1 --photo … --fingers:\n%s", out)
	_, errs, code := cli(t, d.addr, "gate", "identify", "lane2", "--no-face", "--fingers")
	if code != 5 || !strings.Contains(errs, "scanner libfprint:no-such-scanner is not ready") {
		t.Errorf("missing scanner: exit %d %q", code, errs)
	}
	out = mustCLI(t, d.addr, "gate", "status")
	if !strings.Contains(out, "SCANNER") || !strings.Contains(out, "folder:"+scans) || !strings.Contains(out, "connected (open, idle)") ||
		!strings.Contains(out, "connecting") || !strings.Contains(out, "no such fingerprint scanner") {
		t.Errorf("gate status: %s", out)
	}
	t.Logf("watchlist gate status:\n%s", out)
	d.stop(t)
}
