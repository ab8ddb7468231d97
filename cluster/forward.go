package cluster

// Partition-addressed calls. In a partitioned cluster a node holds only its
// partition's subjects, yet a client may send any gRPC call to any node. A
// call that concerns one subject (Verify by subject id, GetSubject, the
// existence check before an enrolment or deletion) goes to the partition
// owning the subject's shard; one that concerns every subject
// (ListSubjects, ListWatchlists) goes to every partition (CallAll). The
// server packs the gRPC request into the body; this file only carries it:
//
//	request  subject bm.call.<partition>, queue group part-<partition>, so
//	         one live replica of the partition answers
//	         headers Bm-Method  the method name (required)
//	                 Bm-Epoch   the caller's shard-map epoch (required)
//	                 Bm-Token   a consistency token (optional, token.go)
//	                 Bm-Timeout the caller's remaining time in ms (optional)
//	         body    opaque bytes
//	reply    body    the handler's answer, or nothing with
//	         headers Bm-Code    a gRPC code (decimal; absent or 0: OK)
//	                 Bm-Error   its message
//	                 Bm-Reason  "stale-epoch" when the epochs differ
//
// A replica refuses a request of another epoch (codes.Unavailable; the
// caller's error also wraps ErrStaleEpoch), so that nothing is answered from
// a layout the caller does not hold. A token of a shard the replica owns is
// waited for first (read-your-writes), bounded by the request's time.
// Errors cross as gRPC statuses, so the server can return them as they
// are; a malformed request is InvalidArgument and logged, never a crash.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Call headers and subjects.
const (
	// CallSubjectPrefix + partition is a partition's call subject.
	CallSubjectPrefix = "bm.call."
	HeaderMethod      = "Bm-Method"
	HeaderEpoch       = "Bm-Epoch"
	HeaderToken       = "Bm-Token"
	HeaderTimeout     = "Bm-Timeout"
	HeaderCode        = "Bm-Code"
	HeaderError       = "Bm-Error"
	HeaderReason      = "Bm-Reason"
	reasonStaleEpoch  = "stale-epoch"
)

// CallSubject is the subject of partition p's calls.
func CallSubject(p int) string { return CallSubjectPrefix + strconv.Itoa(p) }

// CallOptions configure a CallServer.
type CallOptions struct {
	// Epoch is the node's current shard-map epoch (required).
	Epoch func() uint64
	// Owns reports whether the node applies shard; tokens of other shards
	// are not waited for. Nil: owns none.
	Owns func(shard int) bool
	// Wait waits until shard is applied up to seq (Replica.WaitApplied).
	// Nil: tokens are not waited for.
	Wait func(ctx context.Context, shard int, seq uint64) error
	// Handler answers a call (required). Its error is sent as a gRPC
	// status (status.Convert; a context error keeps its code).
	Handler func(ctx context.Context, method string, body []byte) ([]byte, error)
	// Timeout bounds a call, token wait included, when the request does not
	// carry an earlier one (0: DefaultSearchTimeout).
	Timeout time.Duration
	Logger  zerolog.Logger
}

// CallServer answers one partition's calls.
type CallServer struct {
	sub       *nats.Subscription
	partition int
	opt       CallOptions
	log       zerolog.Logger
	sem       chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// ServeCalls subscribes to CallSubject(partition) in the partition's queue
// group. Calls are handled concurrently, at most 4×GOMAXPROCS at once
// (further requests wait in the subscription); Close stops it.
func ServeCalls(nc *nats.Conn, partition int, opt CallOptions) (*CallServer, error) {
	switch {
	case partition < 0 || partition >= MaxShards:
		return nil, fmt.Errorf("cluster: serve calls: partition %d, want 0..%d", partition, MaxShards-1)
	case opt.Epoch == nil:
		return nil, errors.New("cluster: serve calls: no Epoch function")
	case opt.Handler == nil:
		return nil, errors.New("cluster: serve calls: no Handler")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultSearchTimeout
	}
	s := &CallServer{partition: partition, opt: opt, sem: make(chan struct{}, 4*runtime.GOMAXPROCS(0)),
		log: opt.Logger.With().Str("component", "call").Int("partition", partition).Logger()}
	sub, err := nc.QueueSubscribe(CallSubject(partition), QueueGroup(partition), s.handle)
	if err != nil {
		return nil, fmt.Errorf("cluster: serve calls of partition %d: %w", partition, err)
	}
	s.sub = sub
	return s, nil
}

// Close unsubscribes and waits for the calls under way.
func (s *CallServer) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.sub.Unsubscribe()
	s.wg.Wait()
	return err
}

func (s *CallServer) handle(m *nats.Msg) {
	s.sem <- struct{}{}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.sem
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() { <-s.sem; s.wg.Done() }()
		s.answer(m)
	}()
}

func (s *CallServer) answer(m *nats.Msg) {
	if m.Reply == "" {
		s.log.Warn().Msg("call without a reply subject ignored")
		return
	}
	body, st, reason := s.call(m)
	rep := nats.NewMsg(m.Reply)
	rep.Data = body
	if st.Code() != codes.OK {
		rep.Data = nil
		rep.Header.Set(HeaderCode, strconv.Itoa(int(st.Code())))
		rep.Header.Set(HeaderError, st.Message())
		if reason != "" {
			rep.Header.Set(HeaderReason, reason)
		}
	}
	if err := m.RespondMsg(rep); err != nil {
		s.log.Warn().Err(err).Msg("call reply not sent")
	}
}

func (s *CallServer) call(m *nats.Msg) ([]byte, *status.Status, string) {
	h := m.Header
	method := h.Get(HeaderMethod)
	if method == "" {
		s.log.Warn().Msg("call without " + HeaderMethod)
		return nil, status.Newf(codes.InvalidArgument, "call to partition %d: no %s header", s.partition, HeaderMethod), ""
	}
	epoch, err := strconv.ParseUint(h.Get(HeaderEpoch), 10, 64)
	if err != nil {
		s.log.Warn().Str("method", method).Str("epoch", h.Get(HeaderEpoch)).Msg("call with a bad epoch header")
		return nil, status.Newf(codes.InvalidArgument, "call %s to partition %d: %s header %.32q: want a number", method, s.partition, HeaderEpoch, h.Get(HeaderEpoch)), ""
	}
	tok, err := ParseToken(h.Get(HeaderToken))
	if err != nil {
		s.log.Warn().Str("method", method).Err(err).Msg("call with a bad token")
		return nil, status.Newf(codes.InvalidArgument, "call %s to partition %d: %s: %v", method, s.partition, HeaderToken, err), ""
	}
	timeout := s.opt.Timeout
	if v := h.Get(HeaderTimeout); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			s.log.Warn().Str("method", method).Str("timeout", v).Msg("call with a bad timeout header")
			return nil, status.Newf(codes.InvalidArgument, "call %s to partition %d: %s header %.32q: want milliseconds > 0", method, s.partition, HeaderTimeout, v), ""
		}
		timeout = min(timeout, time.Duration(ms)*time.Millisecond)
	}
	if cur := s.opt.Epoch(); epoch != cur {
		return nil, status.Newf(codes.Unavailable, "%v: call %s: request epoch %d, partition %d is at %d",
			ErrStaleEpoch, method, epoch, s.partition, cur), reasonStaleEpoch
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if !tok.IsZero() && s.opt.Wait != nil && s.opt.Owns != nil && s.opt.Owns(tok.Shard) {
		if err := s.opt.Wait(ctx, tok.Shard, tok.Seq); err != nil {
			return nil, status.Newf(codes.Unavailable, "call %s: partition %d has not applied token %s: %v", method, s.partition, tok, err), ""
		}
	}
	out, err := s.runHandler(ctx, method, m.Data)
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.FromContextError(err)
			if st.Code() == codes.Unknown {
				st = status.Convert(err)
			}
		}
		return nil, st, ""
	}
	return out, status.New(codes.OK, ""), ""
}

// runHandler calls the handler, turning a panic into an Internal error so
// that one bad request cannot take the node down.
func (s *CallServer) runHandler(ctx context.Context, method string, body []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Str("method", method).Interface("panic", r).Msg("call handler panicked")
			err = status.Errorf(codes.Internal, "call %s: handler panicked on partition %d", method, s.partition)
		}
	}()
	return s.opt.Handler(ctx, method, body)
}

// replyBudget is the time a replica gets of a caller's deadline: what is
// left less a tenth (at most 100 ms), so that its answer (an unapplied token,
// say) comes back before the caller stops waiting; at least 1 ms.
func replyBudget(dl time.Time) time.Duration {
	left := time.Until(dl)
	left -= min(left/10, 100*time.Millisecond)
	return max(left, time.Millisecond)
}

// callError is a call's gRPC status that also wraps a sentinel
// (ErrStaleEpoch), so that both status.FromError and errors.Is see it.
type callError struct {
	st    *status.Status
	cause error
}

func (e *callError) Error() string              { return e.st.Err().Error() }
func (e *callError) GRPCStatus() *status.Status { return e.st }
func (e *callError) Unwrap() error              { return e.cause }

// Call sends a call to one live replica of partition and returns its
// answer. Every error carries a gRPC status: the handler's own, or
// Unavailable when no replica of the partition is subscribed, when the
// replica refused the epoch (the error then also wraps ErrStaleEpoch) or
// could not apply the token in time, or when no answer came within
// DefaultSearchTimeout; DeadlineExceeded or Canceled when ctx ended first.
func Call(ctx context.Context, nc *nats.Conn, partition int, epoch uint64, method string, body []byte, tok Token) ([]byte, error) {
	if method == "" {
		return nil, status.Errorf(codes.InvalidArgument, "call to partition %d: empty method", partition)
	}
	if partition < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "call %s: partition %d", method, partition)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, DefaultSearchTimeout)
	defer cancel()
	msg := nats.NewMsg(CallSubject(partition))
	msg.Header.Set(HeaderMethod, method)
	msg.Header.Set(HeaderEpoch, strconv.FormatUint(epoch, 10))
	if !tok.IsZero() {
		msg.Header.Set(HeaderToken, tok.String())
	}
	if dl, ok := ctx.Deadline(); ok {
		msg.Header.Set(HeaderTimeout, strconv.FormatInt(replyBudget(dl).Milliseconds(), 10))
	}
	msg.Data = body
	rep, err := nc.RequestMsgWithContext(ctx, msg)
	switch {
	case err == nil:
	case errors.Is(err, nats.ErrNoResponders):
		return nil, status.Errorf(codes.Unavailable, "call %s: partition %d has no live replica", method, partition)
	case parent.Err() != nil:
		return nil, status.FromContextError(parent.Err()).Err()
	case ctx.Err() != nil:
		return nil, status.Errorf(codes.Unavailable, "call %s: partition %d did not answer within %v", method, partition, DefaultSearchTimeout)
	default:
		return nil, status.Errorf(codes.Unavailable, "call %s to partition %d: %v", method, partition, err)
	}
	c := rep.Header.Get(HeaderCode)
	if c == "" || c == "0" {
		return rep.Data, nil
	}
	n, err := strconv.ParseUint(c, 10, 32)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "call %s: partition %d replied with %s %.32q", method, partition, HeaderCode, c)
	}
	st := status.New(codes.Code(n), rep.Header.Get(HeaderError))
	if rep.Header.Get(HeaderReason) == reasonStaleEpoch {
		return nil, &callError{st: st, cause: ErrStaleEpoch}
	}
	return nil, st.Err()
}

// CallAll calls every partition 0..partitions-1 concurrently and returns
// their answers, indexed by partition. It fails unless all answer: with the
// first (by partition) handler error that is not about availability, as it
// is; otherwise with Unavailable naming the missing partitions and why (the
// error wraps ErrStaleEpoch if a replica refused the epoch).
func CallAll(ctx context.Context, nc *nats.Conn, partitions int, epoch uint64, method string, body []byte, tok Token) ([][]byte, error) {
	if partitions < 1 {
		return nil, status.Errorf(codes.InvalidArgument, "call %s: %d partitions", method, partitions)
	}
	out := make([][]byte, partitions)
	errs := make([]error, partitions)
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[p], errs[p] = Call(ctx, nc, p, epoch, method, body, tok)
		}()
	}
	wg.Wait()
	var missing []string
	stale := false
	for p, err := range errs {
		if err == nil {
			continue
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			missing = append(missing, fmt.Sprintf("partition %d: %s", p, status.Convert(err).Message()))
			stale = stale || errors.Is(err, ErrStaleEpoch)
		default:
			st := status.Convert(err)
			return nil, status.Errorf(st.Code(), "partition %d: %s", p, st.Message())
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	code := codes.Unavailable
	if ctx.Err() != nil { // the caller's deadline, not the partitions
		code = status.FromContextError(ctx.Err()).Code()
	}
	st := status.Newf(code, "call %s: %d of %d partitions missing: %s", method, len(missing), partitions, strings.Join(missing, "; "))
	if stale {
		return nil, &callError{st: st, cause: ErrStaleEpoch}
	}
	return nil, st.Err()
}
