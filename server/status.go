package server

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/federation"
)

// codeOf is the one mapping from the engine's error kinds to gRPC codes.
// An error that is a status already keeps its code; one of no known kind
// is Internal, since only a bug gets there.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, engine.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, engine.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, engine.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, engine.ErrIncompatible), errors.Is(err, engine.ErrBusy):
		return codes.FailedPrecondition
	case errors.Is(err, engine.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, engine.ErrResourceExhausted):
		return codes.ResourceExhausted
	// Searches between agencies (server/federation.go).
	case errors.Is(err, federation.ErrUnknownReference), errors.Is(err, federation.ErrUnknownPartner):
		return codes.NotFound
	case errors.Is(err, federation.ErrPendingReview), errors.Is(err, federation.ErrReviewed), errors.Is(err, federation.ErrHeadConflict):
		return codes.FailedPrecondition
	case errors.Is(err, federation.ErrRejected):
		return codes.PermissionDenied
	case errors.Is(err, federation.ErrInvalid), errors.Is(err, federation.ErrBadSignature):
		return codes.InvalidArgument
	case errors.Is(err, errAuditRead):
		return codes.Unavailable
	}
	return codes.Internal
}

// toStatus turns any error into a status error with codeOf's code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

// statusUnary and statusStream apply toStatus once per call, innermost,
// so that the handlers return the engine's errors as they are and every
// interceptor outside (audit, logging, metrics) sees the final code.
func statusUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, toStatus(err)
}

func statusStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return toStatus(handler(srv, ss))
}
