//go:build matprofile

package capture

import (
	"bytes"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func matCount() int { return gocv.MatProfile.Count() }

// checkMats fails the test if Mats created since before are still open. The
// reader goroutines close theirs as they stop, so it waits a little.
func checkMats(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for gocv.MatProfile.Count() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := gocv.MatProfile.Count(); n > before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d Mats leaked:\n%s", n-before, b.String())
	}
}
