package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// DefaultMaxMessageBytes bounds a request or response. A passport-quality
// JPEG is well under 1 MB; 16 MB leaves room for an enrolment with several
// high-resolution photos. Larger messages are refused with ResourceExhausted
// before they are read into memory.
const DefaultMaxMessageBytes = 16 << 20

// RequestIDHeader carries the request id: taken from the caller's metadata if
// present, generated otherwise, and sent back in the response header so an
// operator can find the log line of a call.
const RequestIDHeader = "x-request-id"

// GRPCOptions configures NewGRPCServer.
type GRPCOptions struct {
	MaxMessageBytes int
	Logger          zerolog.Logger
	// TLS, if set, is the listener's TLS configuration (pki.ServerConfig).
	TLS *tls.Config
	// Access, if set, authenticates, authorises and rate-limits every call
	// (package access). Nil lets every call through: only for in-process
	// tests of the service itself; Serve always sets it.
	Access *access.Config
	// Audit, if set, records the audited calls and every refused call, and
	// is served as the bordermatch.v1.Audit service.
	Audit *audit.Log
	// Metrics, if set, records every call's latency.
	Metrics *Metrics
}

// NewGRPCServer returns a gRPC server with the Matcher service, the standard
// health service and server reflection (so grpcurl works) registered, and
// with logging and panic recovery on every call; with opt.Access and
// opt.Audit, calls pass access control (access.Guard: authentication, the
// role table, per-caller limits) and then the audit recorder, and the
// bordermatch.v1.Audit service is registered. The returned health server
// reports SERVING for "" and bordermatch.v1.Matcher; set it to NOT_SERVING
// before a graceful stop.
func NewGRPCServer(svc *Service, opt GRPCOptions) (*grpc.Server, *health.Server) {
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = DefaultMaxMessageBytes
	}
	observeUnary, observeStream := opt.Metrics.Interceptors()
	unary := []grpc.UnaryServerInterceptor{observeUnary, logUnary(opt.Logger)}
	stream := []grpc.StreamServerInterceptor{observeStream, logStream(opt.Logger)}
	var rec *audit.Recorder
	if opt.Audit != nil {
		rec = &audit.Recorder{Log: opt.Audit, RequestID: requestIDFrom, Logger: opt.Logger}
	}
	if opt.Access != nil {
		acc := *opt.Access
		if rec != nil {
			acc.Denied = rec.Denied
		}
		if acc.Refused == nil && opt.Metrics != nil {
			acc.Refused = opt.Metrics.CountRefused
		}
		g := access.New(acc)
		unary = append(unary, g.Unary())
		stream = append(stream, g.Stream())
	}
	if rec != nil {
		unary = append(unary, rec.Unary())
		stream = append(stream, rec.Stream())
	}
	unary = append(unary, statusUnary)
	stream = append(stream, statusStream)
	sopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opt.MaxMessageBytes),
		grpc.MaxSendMsgSize(opt.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}
	if opt.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opt.TLS)))
	}
	gs := grpc.NewServer(sopts...)
	pb.RegisterMatcherServer(gs, svc)
	if opt.Audit != nil {
		pb.RegisterAuditServer(gs, &audit.Service{Log: opt.Audit})
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.Matcher_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs, hs
}

// logUnary logs one line per call: request id, method, peer, latency and
// status code. It never logs request or response bodies, which carry
// biometric data. A panic in a handler becomes Internal instead of taking the
// server down.
func logUnary(log zerolog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		id := requestID(ctx)
		_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
		ctx = context.WithValue(ctx, requestIDKey{}, id)
		defer func() {
			if r := recover(); r != nil {
				log.Error().Str("request_id", id).Str("rpc", info.FullMethod).
					Interface("panic", r).Bytes("stack", debug.Stack()).Msg("handler panicked")
				resp, err = nil, status.Errorf(codes.Internal, "internal error (request id %s)", id)
			}
			logCall(log, ctx, id, info.FullMethod, start, err)
		}()
		return handler(ctx, req)
	}
}

// logStream is logUnary for streaming calls (Admin, Gates): one line per
// call, and a panic becomes Internal.
func logStream(log zerolog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		id := requestID(ss.Context())
		_ = ss.SetHeader(metadata.Pairs(RequestIDHeader, id))
		defer func() {
			if r := recover(); r != nil {
				log.Error().Str("request_id", id).Str("rpc", info.FullMethod).
					Interface("panic", r).Bytes("stack", debug.Stack()).Msg("handler panicked")
				err = status.Errorf(codes.Internal, "internal error (request id %s)", id)
			}
			logCall(log, ss.Context(), id, info.FullMethod, start, err)
		}()
		return handler(srv, ss)
	}
}

// logCall writes a call's one line: request id, method, peer, latency and
// status code; errors that mean a server fault at error level. A call
// access control refused has no line here: the Guard logs refusals itself,
// a bounded number per caller (access.RefusalLogLimits), so that a client
// retrying a refused call in a loop cannot fill the disk.
func logCall(log zerolog.Logger, ctx context.Context, id, method string, start time.Time, err error) {
	if _, refused := access.RefusalReason(err); refused {
		return
	}
	code := status.Code(err)
	ev := log.Info()
	if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		ev = log.Error()
	}
	if p, ok := peer.FromContext(ctx); ok {
		ev = ev.Str("peer", p.Addr.String())
	}
	ev = ev.Str("request_id", id).Str("rpc", method).
		Dur("latency_ms", time.Since(start)).Str("code", code.String())
	if err != nil {
		ev = ev.Str("error", status.Convert(err).Message())
	}
	ev.Msg("rpc")
}

type requestIDKey struct{}

// requestIDFrom returns the request id logUnary gave the call.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func requestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDHeader); len(v) > 0 && v[0] != "" && len(v[0]) <= 64 {
			return v[0]
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
