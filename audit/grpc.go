package audit

import (
	"context"
	"encoding/hex"
	"strconv"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/access"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// Methods are the RPCs audited on every call, whatever their outcome.
// Refused calls of any method are audited too (Recorder.Denied).
var Methods = map[string]bool{
	"/bordermatch.v1.Matcher/Enroll":        true,
	"/bordermatch.v1.Matcher/Identify":      true,
	"/bordermatch.v1.Matcher/Verify":        true,
	"/bordermatch.v1.Matcher/DeleteSubject": true,
	// It releases a subject's biometric data.
	"/bordermatch.v1.Matcher/ExportSubject":    true,
	"/bordermatch.v1.Gates/CaptureAndIdentify": true,
	"/bordermatch.v1.Gates/CaptureAndVerify":   true,
	"/bordermatch.v1.Gates/IdentifyFrames":     true,
	"/bordermatch.v1.Admin/Backup":             true,
	"/bordermatch.v1.Admin/Restore":            true,
	"/bordermatch.v1.Admin/Retemplate":         true,
	"/bordermatch.v1.Admin/RetemplateStatus":   true,
	// A cluster's shard map change, and the reconciler's comparison of
	// every replica.
	"/bordermatch.v1.Admin/ClusterApply":  true,
	"/bordermatch.v1.Admin/ClusterVerify": true,
	// It deletes a subject's stored data.
	"/bordermatch.v1.Admin/RemoveQuarantined": true,
}

// GateHeader is the metadata key a gate controller may name itself with;
// a gate_id field in the request takes precedence.
const GateHeader = "x-gate-id"

// Recorder writes the audit records of calls.
type Recorder struct {
	Log *Log
	// RequestID returns the call's request id (the server's logging
	// interceptor sets it); nil or "" falls back to x-request-id.
	RequestID func(ctx context.Context) string
	Logger    zerolog.Logger
}

// Unary is the interceptor that audits the calls in Methods. It runs after
// access control, which put the caller in the context. When the record
// cannot be written the answer is withheld (Unavailable): a call that
// leaves no trace is not answered.
func (rc *Recorder) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !Methods[info.FullMethod] {
			return handler(ctx, req)
		}
		ctx, note := withClusterNote(ctx)
		resp, err := handler(ctx, req)
		r := rc.base(ctx, info.FullMethod)
		describe(&r, req, resp, err)
		r.Coordinator, r.Partitions = note.get()
		if aerr := rc.append(r); aerr != nil {
			return nil, aerr
		}
		return resp, err
	}
}

// Stream audits the streaming calls in Methods: one record when the
// stream ends, with the gate named by any request message and the hits of
// every response message.
func (rc *Recorder) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !Methods[info.FullMethod] {
			return handler(srv, ss)
		}
		w := &watchStream{ServerStream: ss}
		err := handler(srv, w)
		r := rc.base(ss.Context(), info.FullMethod)
		if r.Gate == "" {
			r.Gate = w.gate
		}
		r.Hits = w.hits
		r.Decision = w.decision
		if r.Decision == "" {
			r.Decision = "ok"
		}
		outcome(&r, err)
		if aerr := rc.append(r); aerr != nil {
			return aerr
		}
		return err
	}
}

// watchStream notes, from the messages passing through, what the record
// needs; it keeps no message.
type watchStream struct {
	grpc.ServerStream
	gate     string
	hits     []Hit
	decision string
}

func (w *watchStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	if err == nil && w.gate == "" {
		if pm, ok := m.(proto.Message); ok {
			w.gate = gateOf(pm.ProtoReflect())
		}
	}
	return err
}

func (w *watchStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		var r Record
		generic(&r, pm.ProtoReflect())
		w.hits = append(w.hits, r.Hits...)
		if r.Decision == "hit" || r.Decision == "match" || w.decision == "" {
			w.decision = r.Decision
		}
	}
	return w.ServerStream.SendMsg(m)
}

// Denied records a call refused by access control, with the gate and the
// subject the request named. It is access.Config's Denied hook.
func (rc *Recorder) Denied(ctx context.Context, method string, req any, err error) {
	r := rc.base(ctx, method)
	if m, ok := req.(proto.Message); ok {
		if g := gateOf(m.ProtoReflect()); g != "" {
			r.Gate = g
		}
		var named Record
		generic(&named, m.ProtoReflect())
		r.Hits = named.Hits
	}
	r.Decision = "denied"
	if status.Code(err) == codes.Unauthenticated {
		r.Decision = "unauthenticated"
	}
	r.Code = status.Code(err).String()
	r.Detail = status.Convert(err).Message()
	_ = rc.append(r)
}

// Granted records a call admitted outside gRPC (pprof on the metrics
// listener) before it is served; detail says what was asked for. An error
// means the record was not written and the call must not be served.
func (rc *Recorder) Granted(ctx context.Context, method, detail string) error {
	r := rc.base(ctx, method)
	r.Decision, r.Code, r.Detail = "ok", codes.OK.String(), clip(detail)
	return rc.append(r)
}

func (rc *Recorder) append(r Record) error {
	if _, err := rc.Log.Append(r); err != nil {
		rc.Logger.Error().Err(err).Str("rpc", r.RPC).Str("request_id", r.RequestID).Msg("audit record not written")
		return status.Errorf(codes.Unavailable, "the audit trail cannot be written, so the answer is withheld (request id %s)", r.RequestID)
	}
	return nil
}

func (rc *Recorder) base(ctx context.Context, method string) Record {
	r := Record{RPC: method}
	if c, ok := access.CallerFrom(ctx); ok {
		r.Identity, r.KeyID, r.Role, r.Auth, r.Peer = c.Identity, c.KeyID, c.Role, c.Auth, c.Peer
	} else {
		r.Auth = "none"
	}
	if rc.RequestID != nil {
		r.RequestID = rc.RequestID(ctx)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if r.RequestID == "" {
		if v := md.Get("x-request-id"); len(v) > 0 {
			r.RequestID = clip(v[0])
		}
	}
	if v := md.Get(GateHeader); len(v) > 0 {
		r.Gate = clip(v[0])
	}
	return r
}

func clip(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// describe fills the hits and decision of a unary call from its request and
// response. Known messages are read field by field; others (services added
// later) generically: any subject_id with a score beside it is a hit, a
// match field is the decision.
func describe(r *Record, req, resp any, err error) {
	if m, ok := req.(proto.Message); ok {
		if g := gateOf(m.ProtoReflect()); g != "" {
			r.Gate = g
		}
	}
	switch q := req.(type) {
	case *pb.EnrollRequest:
		r.Hits = []Hit{{SubjectID: q.GetSubjectId()}}
		r.Decision = "enrolled"
	case *pb.DeleteSubjectRequest:
		r.Hits = []Hit{{SubjectID: q.GetSubjectId()}}
		r.Decision = "deleted"
	case *pb.ExportSubjectRequest:
		r.Hits = []Hit{{SubjectID: q.GetSubjectId()}}
		r.Decision = "exported"
	case *pb.VerifyRequest:
		v, _ := resp.(*pb.VerifyResponse)
		if id := q.GetSubjectId(); id != "" {
			h := Hit{SubjectID: id}
			if v != nil {
				h.Score = score(v.GetScore())
			}
			r.Hits = []Hit{h}
		} else if v != nil {
			r.Hits = []Hit{{Score: score(v.GetScore())}}
		}
		r.Decision = "no-match"
		if v.GetMatch() {
			r.Decision = "match"
		}
		r.PassiveAuth = passiveAuth(q.GetPassiveAuth())
	case *pb.CaptureAndVerifyRequest:
		// The 1:1 score first (no subject: the reference is the chip's),
		// then the watchlist candidates. The decision names the worst
		// finding: a hit before a failed comparison before no face.
		v, _ := resp.(*pb.CaptureAndVerifyResponse)
		r.PassiveAuth = passiveAuth(q.GetPassiveAuth())
		if vr := v.GetVerification(); vr != nil {
			r.Hits = []Hit{{Score: score(vr.GetScore())}}
		}
		for _, c := range v.GetIdentification().GetCandidates() {
			r.Hits = append(r.Hits, Hit{SubjectID: c.GetSubjectId(), Score: score(c.GetScore())})
		}
		switch {
		case v.GetClear():
			r.Decision = "clear"
		case len(v.GetIdentification().GetCandidates()) > 0:
			r.Decision = "hit"
		case v.GetOutcome() == pb.CaptureOutcome_CAPTURE_OUTCOME_NO_FACE:
			r.Decision = "no-face"
		case !v.GetVerification().GetMatch():
			r.Decision = "no-match"
		default:
			// Verified and no hit, but passive authentication did not pass.
			r.Decision = "match"
		}
	case *pb.IdentifyRequest:
		res, _ := resp.(*pb.IdentifyResponse)
		for _, c := range res.GetCandidates() {
			r.Hits = append(r.Hits, Hit{SubjectID: c.GetSubjectId(), Score: score(c.GetScore())})
		}
		r.Decision = "no-hit"
		if len(r.Hits) > 0 {
			r.Decision = "hit"
		}
	default:
		if m, ok := resp.(proto.Message); ok && err == nil {
			generic(r, m.ProtoReflect())
		}
		if r.Decision == "" {
			r.Decision = "ok"
		}
	}
	outcome(r, err)
}

// passiveAuth is how records name a caller's statement ("" when none).
func passiveAuth(p pb.PassiveAuthentication) string {
	switch p {
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED:
		return "passed"
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_FAILED:
		return "failed"
	case pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_NOT_PERFORMED:
		return "not-performed"
	}
	return ""
}

func score(f float32) *float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return &v
}

func outcome(r *Record, err error) {
	st := status.Convert(err)
	r.Code = st.Code().String()
	if err != nil {
		r.Decision = "error"
		r.Detail = st.Message()
	}
}

// gateOf returns a top-level gate_id (or gate) string field of a request.
func gateOf(m protoreflect.Message) string {
	for _, name := range []protoreflect.Name{"gate_id", "gate"} {
		if fd := m.Descriptor().Fields().ByName(name); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			if s := m.Get(fd).String(); s != "" {
				return clip(s)
			}
		}
	}
	return ""
}

// generic collects hits (messages with a subject_id, and a score beside
// it) and the decision (a match field; or hit/no-hit when a candidates
// field exists) from a response it has no special case for. It reads only
// strings, numbers and booleans, never bytes fields.
func generic(r *Record, m protoreflect.Message) {
	var walk func(m protoreflect.Message, depth int)
	walk = func(m protoreflect.Message, depth int) {
		if depth > 6 {
			return
		}
		fields := m.Descriptor().Fields()
		if fd := fields.ByName("subject_id"); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			if id := m.Get(fd).String(); id != "" {
				h := Hit{SubjectID: id}
				if sd := fields.ByName("score"); sd != nil && !sd.IsList() &&
					(sd.Kind() == protoreflect.FloatKind || sd.Kind() == protoreflect.DoubleKind) {
					h.Score = score(float32(m.Get(sd).Float()))
				}
				r.Hits = append(r.Hits, h)
			}
		}
		if depth == 0 {
			if fd := fields.ByName("match"); fd != nil && fd.Kind() == protoreflect.BoolKind && !fd.IsList() {
				r.Decision = "no-match"
				if m.Get(fd).Bool() {
					r.Decision = "match"
				}
			}
		}
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
				continue
			}
			if fd.IsList() {
				l := m.Get(fd).List()
				for j := 0; j < l.Len(); j++ {
					walk(l.Get(j).Message(), depth+1)
				}
			} else if m.Has(fd) {
				walk(m.Get(fd).Message(), depth+1)
			}
		}
	}
	walk(m, 0)
	if r.Decision == "" && m.Descriptor().Fields().ByName("candidates") != nil {
		r.Decision = "no-hit"
		if len(r.Hits) > 0 {
			r.Decision = "hit"
		}
	}
}

// Service is the bordermatch.v1.Audit gRPC service.
type Service struct {
	pb.UnimplementedAuditServer
	Log *Log
}

// Page sizes of List.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// List pages through the records; the page token is the sequence number
// of the last record of the previous page.
func (s *Service) List(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	n := int(req.GetPageSize())
	switch {
	case n < 0 || n > MaxPageSize:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d: want 0..%d", n, MaxPageSize)
	case n == 0:
		n = DefaultPageSize
	}
	f := Filter{Subject: req.GetSubjectId()}
	if t := req.GetSince(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		f.Since = t.AsTime()
	}
	if tok := req.GetPageToken(); tok != "" {
		after, err := strconv.ParseUint(tok, 10, 64)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "page_token %q is not one List returned", tok)
		}
		f.After = after
	}
	recs, next, err := s.Log.List(f, n)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "%v (run watchlist audit verify)", err)
	}
	resp := &pb.ListAuditResponse{Records: make([]*pb.AuditRecord, len(recs))}
	for i := range recs {
		resp.Records[i] = recordProto(&recs[i])
	}
	if next > 0 {
		resp.NextPageToken = strconv.FormatUint(next, 10)
	}
	return resp, nil
}

// Verify checks the chain, archive and gallery as one, and reports the
// hash of the record the request names (link_seq).
func (s *Service) Verify(ctx context.Context, req *pb.VerifyAuditRequest) (*pb.VerifyAuditResponse, error) {
	res, err := s.Log.VerifyLink(req.GetLinkSeq())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &pb.VerifyAuditResponse{
		Ok: res.OK, Records: res.Records, HeadSeq: res.HeadSeq, HeadHash: unhex(res.HeadHash),
		BadSeq: res.BadSeq, Problem: res.Problem,
		Archive: res.Archive, ArchivedRecords: res.Archived, ArchiveFirstSeq: res.ArchiveFirstSeq,
		ArchiveLastSeq: res.ArchiveLastSeq, ArchiveLastHash: unhex(res.ArchiveLastHash), ArchiveTorn: res.ArchiveTorn,
		LiveFirstSeq: res.LiveFirstSeq, LinkHash: unhex(res.LinkHash),
	}, nil
}

func recordProto(r *Record) *pb.AuditRecord {
	p := &pb.AuditRecord{
		Seq: r.Seq, Time: timestamppb.New(r.Time), Identity: r.Identity, Role: r.Role, Auth: r.Auth,
		Gate: r.Gate, Rpc: r.RPC, RequestId: r.RequestID, Peer: r.Peer, Decision: r.Decision,
		Code: r.Code, Detail: r.Detail, PrevHash: unhex(r.Prev), Hash: unhex(r.Hash), Coordinator: r.Coordinator,
		PassiveAuth: r.PassiveAuth, KeyId: r.KeyID,
	}
	for _, part := range r.Partitions {
		p.Partitions = append(p.Partitions, int32(part))
	}
	for _, h := range r.Hits {
		p.Hits = append(p.Hits, &pb.AuditHit{SubjectId: h.SubjectID, Score: h.Score})
	}
	return p
}

func unhex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
