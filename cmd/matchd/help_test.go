package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMatchdHelp: the built matchd's help, however asked for, exits 0 on
// stdout and names its subcommands.
func TestMatchdHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		cmd := exec.Command(filepath.Join(binDir, "matchd"), args...)
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		if err := cmd.Run(); err != nil {
			t.Fatalf("matchd %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errs.String())
		}
		for _, want := range []string{"certs ", "rotate-key ", "--listen", "Usage:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("matchd %s: stdout lacks %q:\n%s", strings.Join(args, " "), want, out.String())
			}
		}
		if errs.Len() > 0 {
			t.Errorf("matchd %s: stderr %q", strings.Join(args, " "), errs.String())
		}
	}
}
