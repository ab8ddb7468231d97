package server

import (
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
)

// backupChunkBytes is the size of a Backup stream message: well under the
// message limit, large enough that framing costs nothing.
const backupChunkBytes = 1 << 20

// Admin is the bordermatch.v1.Admin service: online backup and restore of
// the gallery behind a Service. Register it with pb.RegisterAdminServer; it
// is for the admin role only.
type Admin struct {
	pb.UnimplementedAdminServer
	svc *Service
}

// NewAdmin returns the Admin service of svc.
func NewAdmin(svc *Service) *Admin { return &Admin{svc: svc} }

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
	start := time.Now()
	w := &chunkWriter{stream: stream, buf: make([]byte, 0, backupChunkBytes)}
	st, err := a.svc.store.Backup(w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		if cerr := ctxErr(stream.Context()); cerr != nil {
			return cerr
		}
		return status.Errorf(codes.Internal, "backup: %v", err)
	}
	a.svc.log.Info().Int64("subjects", st.Subjects).Int64("templates", st.Templates).Int64("bytes", st.Bytes).
		Dur("took", time.Since(start)).Msg("backup streamed")
	return nil
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

// Restore implements pb.AdminServer. It holds every subject lock, so no
// enrolment or deletion interleaves with it, restores into the store (all
// or nothing, empty gallery only) and then indexes what it restored.
func (a *Admin) Restore(stream pb.Admin_RestoreServer) error {
	s := a.svc
	for i := range s.locks {
		s.locks[i].Lock()
	}
	defer func() {
		for i := range s.locks {
			s.locks[i].Unlock()
		}
	}()
	start := time.Now()
	if n, err := s.store.Count(); err != nil {
		return storeStatus(err)
	} else if n > 0 {
		return status.Errorf(codes.FailedPrecondition, "restore: the gallery has %d subjects; restore goes into an empty gallery only (start matchd on a new --data directory)", n)
	}
	st, err := s.store.Restore(&chunkReader{stream: stream})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrBadBackup):
		return status.Errorf(codes.InvalidArgument, "restore: %v; nothing was restored", err)
	case errors.Is(err, store.ErrNotEmpty):
		return status.Errorf(codes.FailedPrecondition, "restore: %v", err)
	default:
		if cerr := ctxErr(stream.Context()); cerr != nil {
			return cerr
		}
		return status.Errorf(codes.Internal, "restore: %v", err)
	}
	// The index was empty with the gallery; load what is there now.
	if err := s.load(); err != nil {
		return status.Errorf(codes.Internal, "restore: stored, but indexing failed (a restart retries): %v", err)
	}
	s.log.Info().Int64("subjects", st.Subjects).Int64("templates", st.Templates).Int64("bytes", st.Bytes).
		Dur("took", time.Since(start)).Msg("gallery restored")
	return stream.SendAndClose(&pb.RestoreResponse{Subjects: st.Subjects, Templates: st.Templates, Entries: st.Entries, Bytes: st.Bytes})
}

var _ io.Reader = (*chunkReader)(nil)
