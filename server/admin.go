package server

import (
	"context"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// backupChunkBytes is the size of a Backup stream message: well under the
// message limit, large enough that framing costs nothing.
const backupChunkBytes = 1 << 20

// Admin is the bordermatch.v1.Admin service: online backup and restore of
// an engine's gallery. Register it with pb.RegisterAdminServer; it is for
// the admin role only.
type Admin struct {
	pb.UnimplementedAdminServer
	eng *engine.Engine
	// node is the cluster this server is a node of (cluster_admin.go);
	// nil on a single node.
	node *clusterNode
}

// NewAdmin returns the Admin service of eng.
func NewAdmin(eng *engine.Engine) *Admin { return &Admin{eng: eng} }

// chunkWriter sends what is written as BackupChunk messages.
type chunkWriter struct {
	stream pb.Admin_BackupServer
	buf    []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), backupChunkBytes-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == backupChunkBytes {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.stream.Send(&pb.BackupChunk{Data: w.buf})
	w.buf = w.buf[:0]
	return err
}

// Backup implements pb.AdminServer: one consistent snapshot, streamed.
func (a *Admin) Backup(_ *pb.BackupRequest, stream pb.Admin_BackupServer) error {
	w := &chunkWriter{stream: stream, buf: make([]byte, 0, backupChunkBytes)}
	if _, err := a.eng.Backup(stream.Context(), w); err != nil {
		return err
	}
	return w.flush()
}

// chunkReader reads the data of RestoreChunk messages.
type chunkReader struct {
	stream pb.Admin_RestoreServer
	buf    []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		m, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end of the stream
		}
		r.buf = m.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Restore implements pb.AdminServer: all or nothing, into an empty
// gallery only (engine.Restore).
func (a *Admin) Restore(stream pb.Admin_RestoreServer) error {
	if a.node != nil {
		return status.Error(codes.FailedPrecondition, "restore: this matchd is a cluster node, whose gallery is what the enrolment log says; a new replica copies a peer's when it starts on an empty --data directory")
	}
	st, err := a.eng.Restore(stream.Context(), &chunkReader{stream: stream})
	if err != nil {
		return err
	}
	return stream.SendAndClose(&pb.RestoreResponse{Subjects: st.Subjects, Templates: st.Templates, Entries: st.Entries, Bytes: st.Bytes})
}

var _ io.Reader = (*chunkReader)(nil)

// Retemplate implements pb.AdminServer: starts re-templating the gallery
// with a loaded face algorithm (engine.Retemplate).
func (a *Admin) Retemplate(ctx context.Context, req *pb.RetemplateRequest) (*pb.RetemplateStatusResponse, error) {
	if a.node != nil {
		return nil, status.Error(codes.FailedPrecondition, "retemplate: a cluster's templates come from its enrolment log, which carries no samples to re-template from; re-enrol through the cluster")
	}
	st, err := a.eng.Retemplate(ctx, req.GetAlgorithm())
	if err != nil {
		return nil, err
	}
	return retemplateProto(st), nil
}

// RetemplateStatus implements pb.AdminServer.
func (a *Admin) RetemplateStatus(ctx context.Context, _ *pb.RetemplateStatusRequest) (*pb.RetemplateStatusResponse, error) {
	st, err := a.eng.RetemplateStatus(ctx)
	if err != nil {
		return nil, err
	}
	return retemplateProto(st), nil
}

func retemplateProto(st engine.RetemplateStatus) *pb.RetemplateStatusResponse {
	p := &pb.RetemplateStatusResponse{
		State: st.State, Algorithm: st.Algorithm, Phase: st.Phase,
		Total: int64(st.Total), Done: int64(st.Done), Templated: int64(st.Templated), Failed: int64(st.Failed),
		NeedReenrol: int64(st.NeedReenrol), Cleaned: int64(st.Cleaned),
		NeedsReenrolment: st.NeedsReenrolment, Rate: st.Rate, Error: st.Error,
	}
	for _, f := range st.Failures {
		p.Failures = append(p.Failures, &pb.RetemplateFailure{SubjectId: f.SubjectID, Reason: f.Reason})
	}
	if !st.Started.IsZero() {
		p.StartedAt = timestamppb.New(st.Started)
	}
	if !st.Finished.IsZero() {
		p.FinishedAt = timestamppb.New(st.Finished)
	}
	return p
}

// ListQuarantine implements pb.AdminServer: the subjects this server's
// load left out of the indexes (engine/quarantine.go).
func (a *Admin) ListQuarantine(context.Context, *pb.ListQuarantineRequest) (*pb.ListQuarantineResponse, error) {
	resp := &pb.ListQuarantineResponse{}
	for _, q := range a.eng.Quarantined() {
		resp.Subjects = append(resp.Subjects, &pb.QuarantinedSubject{SubjectId: q.SubjectID, Reason: q.Reason, Since: timestamppb.New(q.Since)})
	}
	return resp, nil
}

// RemoveQuarantined implements pb.AdminServer.
func (a *Admin) RemoveQuarantined(ctx context.Context, req *pb.RemoveQuarantinedRequest) (*pb.RemoveQuarantinedResponse, error) {
	sub, err := a.eng.RemoveQuarantined(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	return &pb.RemoveQuarantinedResponse{SubjectId: sub.ID}, nil
}
