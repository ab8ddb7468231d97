//go:build !matprofile

package capture

import "testing"

// Without the matprofile tag gocv does not count Mats; `make test` and the
// capture tests below run with -tags matprofile.
func matCount() int { return 0 }

func checkMats(t *testing.T, before int) {}
