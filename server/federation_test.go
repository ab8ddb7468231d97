package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/bordermatch/bordermatch/federation"
)

// TestFederationCodes: the federation's error kinds through the one
// mapping.
func TestFederationCodes(t *testing.T) {
	for err, want := range map[error]codes.Code{
		federation.ErrUnknownReference: codes.NotFound,
		federation.ErrUnknownPartner:   codes.NotFound,
		federation.ErrPendingReview:    codes.FailedPrecondition,
		federation.ErrReviewed:         codes.FailedPrecondition,
		federation.ErrHeadConflict:     codes.FailedPrecondition,
		federation.ErrRejected:         codes.PermissionDenied,
		federation.ErrInvalid:          codes.InvalidArgument,
		federation.ErrBadSignature:     codes.InvalidArgument,
		errAuditRead:                   codes.Unavailable,
	} {
		if got := codeOf(fmt.Errorf("wrapped: %w", err)); got != want {
			t.Errorf("codeOf(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestFederationOptions(t *testing.T) {
	cfg, err := federation.ParseConfig([]byte("agency: agency-a\n"))
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultOptions()
	opt.Federation = &cfg
	if err := opt.Validate(); err != nil {
		t.Fatalf("a federation with no partners yet: %v", err)
	}
	opt.Insecure = true
	if err := opt.Validate(); err == nil || !strings.Contains(err.Error(), "Federation") {
		t.Errorf("federation with --insecure: %v", err)
	}
	opt.Insecure = false
	cfg.ReleaseDeadline = 0
	if err := opt.Validate(); err == nil || !strings.Contains(err.Error(), "release_deadline") {
		t.Errorf("a bad federation config: %v", err)
	}
}
