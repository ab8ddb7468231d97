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
	// Every kind has a code of its own.
	seen := map[codes.Code]error{}
	for _, k := range engine.Kinds {
		c := codeOf(k)
		if prev, dup := seen[c]; dup {
			t.Errorf("%v and %v both map to %v", prev, k, c)
		}
		seen[c] = k
	}
}
