package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/engine"
)

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{fmt.Errorf("probe: %w: no face found", engine.ErrInvalid), codes.InvalidArgument},
		{engine.ErrNotFound, codes.NotFound},
		{engine.ErrExists, codes.AlreadyExists},
		{engine.ErrIncompatible, codes.FailedPrecondition},
		{fmt.Errorf("%w: re-templating to x/v1 is running", engine.ErrBusy), codes.FailedPrecondition},
		{fmt.Errorf("face search: %w: %w", engine.ErrUnavailable, errors.New("badger: closed")), codes.Unavailable},
		{engine.ErrResourceExhausted, codes.ResourceExhausted},
		{engine.ErrInternal, codes.Internal},
		{errors.New("no kind"), codes.Internal},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied},
	} {
		if got := codeOf(tc.err); got != tc.want {
			t.Errorf("codeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// Every kind has a code of its own, but ErrBusy, which shares
	// FailedPrecondition with ErrIncompatible: in both the system's state,
	// not the request, stands in the way.
	seen := map[codes.Code]error{}
	for _, k := range engine.Kinds {
		if k == engine.ErrBusy {
			continue
		}
		c := codeOf(k)
		if prev, dup := seen[c]; dup {
			t.Errorf("%v and %v both map to %v", prev, k, c)
		}
		seen[c] = k
	}
}
