package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunDemoRefusesTakenPort: `make run` with another server on its port
// stops before starting its own matchd, saying so, instead of showing the
// other server's answers as its own.
func TestRunDemoRefusesTakenPort(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := t.TempDir()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "run-demo.sh"))
	cmd.Env = append(os.Environ(), "BORDERMATCH_LISTEN="+other.Addr().String(), "BORDERMATCH_DATA="+data)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run-demo.sh with %s taken: %v, want exit 1\n%s", other.Addr(), err, out)
	}
	for _, want := range []string{other.Addr().String() + " is taken", "BORDERMATCH_LISTEN="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "matchd is serving") || strings.Contains(string(out), "==") {
		t.Errorf("the demo went on:\n%s", out)
	}
	// Its own matchd never started: nothing was written to the data directory.
	if ents, _ := os.ReadDir(data); len(ents) > 0 {
		t.Errorf("data directory written: %v", ents)
	}
}
