package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering holds the import facts ARCHITECTURE.md states: the engine
// and everything under it link neither dlib (go-face) nor OpenCV (gocv),
// the benchmarks never go through the gRPC server, and nothing in capture
// imports the template layer (so scanners link no extractor). The
// ANSI/NIST-ITL reader (templates/an2k) links no OpenCV either: it leaves
// JPEG 2000 to callers that have it.
func TestLayering(t *testing.T) {
	deps := func(pkgs ...string) map[string]bool {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...)
		cmd.Dir = ".."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %v: %v", pkgs, err)
		}
		set := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			set[p] = true
		}
		return set
	}
	const mod = "github.com/bordermatch/bordermatch/"
	for _, tc := range []struct {
		pkgs   []string
		banned []string
	}{
		{[]string{"./store", "./matcher", "./engine", "./templates", "./templates/an2k", "./templates/lds", "./templates/facerecord", "./templates/internal/..."},
			[]string{"github.com/Kagami/go-face", "gocv.io/x/gocv", mod + "server", "google.golang.org/grpc"}},
		{[]string{"./benchmarks", "./scripts/loadtest"}, []string{mod + "server"}},
		// The cluster's parts sit under the gRPC services and link no
		// face library: a node's extraction happens in the engine's
		// FaceExtractor, given by matchd.
		{[]string{"./cluster"}, []string{mod + "server", mod + "watchlist", "gocv.io/x/gocv", mod + "templates/face"}},
		{[]string{"./capture/..."}, []string{mod + "templates/"}},
		// Searches between agencies: rules and state under the services,
		// reaching the gallery through an interface.
		{[]string{"./federation"}, []string{mod + "server", mod + "watchlist", mod + "engine", mod + "store", "gocv.io/x/gocv", mod + "templates/face"}},
	} {
		got := deps(tc.pkgs...)
		for _, b := range tc.banned {
			for p := range got {
				// A name ending in "/" bans the package and all below it.
				if p == b || strings.HasSuffix(b, "/") && (p == strings.TrimSuffix(b, "/") || strings.HasPrefix(p, b)) {
					t.Errorf("%v depend on %s", tc.pkgs, p)
				}
			}
		}
	}
}
