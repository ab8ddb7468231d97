package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogIsJSON: with --log-format json every line matchd writes to
// stderr is one JSON object, the lines OpenCV's FFmpeg backend writes to
// fd 2 (a gate on a file that is no video) included, which become records
// of their own; an RPC's latency names its unit.
func TestLogIsJSON(t *testing.T) {
	dir := t.TempDir()
	notVideo := filepath.Join(dir, "gate.mp4")
	if err := os.WriteFile(notVideo, []byte(strings.Repeat("not a video ", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMatchd(t, filepath.Join(dir, "data"), "--insecure", "--gate", "1="+notVideo)
	// The gate has tried its source once its status shows the error.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := cli(t, d.addr, "--insecure", "gate", "status")
		if strings.Contains(out, "cannot open") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate 1 never failed to open %s:\n%s", notVideo, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustCLI(t, d.addr, "--insecure", "lists")
	d.stop(t)

	native, rpc := 0, 0
	for i, line := range strings.Split(strings.TrimSuffix(d.log.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %d is not JSON: %q", i+1, line)
			continue
		}
		if rec["source"] == "native" {
			native++
		}
		if rec["rpc"] == "/bordermatch.v1.Matcher/ListWatchlists" {
			rpc++
			if _, ok := rec["latency_ms"].(float64); !ok {
				t.Errorf("rpc record without latency_ms: %q", line)
			}
		}
	}
	if native == 0 || rpc == 0 {
		t.Errorf("%d records of native lines, %d of the ListWatchlists call; want some of each:\n%s", native, rpc, d.log)
	}
}
