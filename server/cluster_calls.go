package server

// A cluster node's answers to the Matcher API (the top of cluster.go says
// what each call does): the calls it coordinates over the partitions, and
// its own partition's answers to other nodes' calls (handleCall).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Methods of the partition-addressed calls (cluster.Call).
const (
	callGetSubject     = "GetSubject"
	callVerify         = "Verify"
	callListSubjects   = "ListSubjects"
	callListWatchlists = "ListWatchlists"
	callExportSubject  = "ExportSubject"
)

// partitionOf is the partition owning a subject id under the node's map.
func (n *clusterNode) partitionOf(id string) int {
	m := n.shardMap()
	return m.PartitionOf(id)
}

// token parses a request's consistency token; a malformed one is
// InvalidArgument.
func token(s string) (cluster.Token, error) {
	t, err := cluster.ParseToken(s)
	if err != nil {
		return t, status.Errorf(codes.InvalidArgument, "consistency_token: %v", err)
	}
	return t, nil
}

// call sends a call to the partition owning id and decodes the answer.
func (n *clusterNode) call(ctx context.Context, partition int, method string, req, resp proto.Message, tok cluster.Token) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("%w: encoding %s: %w", engine.ErrInternal, method, err)
	}
	audit.NoteCluster(ctx, n.cfg.Node, partition)
	out, err := cluster.Call(ctx, n.nc, partition, n.epoch(), method, body, tok)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("%w: %s answer of partition %d: %w", engine.ErrInternal, method, partition, err)
	}
	return nil
}

// handleCall answers another node's call with this node's partition.
func (n *clusterNode) handleCall(ctx context.Context, method string, body []byte) ([]byte, error) {
	var (
		resp proto.Message
		err  error
	)
	switch method {
	case callGetSubject:
		var req pb.GetSubjectRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.GetSubject(ctx, &req)
	case callVerify:
		var req pb.VerifyRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.Verify(ctx, &req)
	case callListSubjects:
		var req pb.ListSubjectsRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.ListSubjects(ctx, &req)
		if errors.As(err, new(*engine.UnknownWatchlistsError)) {
			// Another partition may have the list: this one has
			// nobody on it. The coordinator decides (listSubjects).
			resp, err = &pb.ListSubjectsResponse{}, nil
		}
	case callListWatchlists:
		resp, err = n.local.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
	case callExportSubject:
		var req pb.ExportSubjectRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: %v", method, err)
		}
		resp, err = n.local.ExportSubject(ctx, &req)
	default:
		return nil, status.Errorf(codes.Unimplemented, "cluster call %q: no such method", method)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return proto.Marshal(resp)
}

func allPartitions(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// requestIDOf is the log's deduplication id of a write: the client's, or a
// new one.
func requestIDOf(id string) (string, error) {
	if id == "" {
		b := make([]byte, 16)
		rand.Read(b)
		return hex.EncodeToString(b), nil
	}
	if len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
		return "", status.Errorf(codes.InvalidArgument, "request_id: 1-128 characters without spaces")
	}
	return id, nil
}

// appendTimeout bounds an append to the log: a stream without a quorum
// (its leader cut off, or stepping down) may never answer a publish, and the
// client is told UNAVAILABLE rather than left waiting for its own deadline.
const appendTimeout = 10 * time.Second

// logError is an append's error as the client sees it: a log without a
// quorum is UNAVAILABLE, saying nothing was acknowledged.
func logError(what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return status.Errorf(codes.Unavailable, "%s: the enrolment log did not acknowledge the write (no quorum of the stream?); it may or may not be stored: retry with the same request_id: %v", what, err)
}

func (n *clusterNode) enroll(ctx context.Context, req *pb.EnrollRequest, samples []engine.Sample) (*pb.EnrollResponse, error) {
	rid, err := requestIDOf(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	ereq := engine.EnrollRequest{
		SubjectID: req.GetSubjectId(), Name: req.GetName(), Metadata: req.GetMetadata(),
		Watchlists: req.GetWatchlists(), Samples: samples, ReturnTemplates: req.GetReturnTemplates(),
		NIST: given(req.GetNistTransaction()), Created: time.Now().UTC(),
	}
	if ereq.SubjectID == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	// The id must be free in the partition owning it. Two enrolments of one
	// id racing each other both pass this; the log orders them and the
	// second is refused when applied (the replicas log it).
	p := n.partitionOf(ereq.SubjectID)
	var got pb.GetSubjectResponse
	switch err := n.call(ctx, p, callGetSubject, &pb.GetSubjectRequest{SubjectId: ereq.SubjectID}, &got, cluster.Token{}); {
	case err == nil:
		return nil, status.Errorf(codes.AlreadyExists, "subject %q already exists", ereq.SubjectID)
	case codeOf(err) != codes.NotFound:
		return nil, err
	}
	logReq, res, err := n.eng.PrepareEnroll(ctx, ereq)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, appendTimeout)
	shard, seq, err := cluster.EnrollThroughLog(actx, n.log, logReq, rid)
	cancel()
	if err != nil {
		return nil, logError("enrol", err)
	}
	resp := &pb.EnrollResponse{Subject: subjectProto(res.Subject), Templates: res.Templates,
		ConsistencyToken: cluster.Token{Shard: shard, Seq: seq}.String()}
	for _, q := range res.FaceQuality {
		resp.Quality = append(resp.Quality, faceQualityProto(&q))
	}
	resp.FingerQuality = fingerQualityProto(res.FingerQuality)
	resp.Nist = nistProto(res.NIST)
	return resp, nil
}

func (n *clusterNode) deleteSubject(ctx context.Context, req *pb.DeleteSubjectRequest) (*pb.DeleteSubjectResponse, error) {
	rid, err := requestIDOf(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	id := req.GetSubjectId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "subject_id is required")
	}
	var got pb.GetSubjectResponse
	if err := n.call(ctx, n.partitionOf(id), callGetSubject, &pb.GetSubjectRequest{SubjectId: id}, &got, tok); err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, appendTimeout)
	shard, seq, err := cluster.DeleteThroughLog(actx, n.log, id, rid)
	cancel()
	if err != nil {
		return nil, logError("delete", err)
	}
	return &pb.DeleteSubjectResponse{Subject: got.Subject, ConsistencyToken: cluster.Token{Shard: shard, Seq: seq}.String()}, nil
}

func (n *clusterNode) identify(ctx context.Context, req *pb.IdentifyRequest, p engine.Probe) (*pb.IdentifyResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	q := engine.Query{TopK: int(req.GetTopK()), Watchlists: req.GetWatchlists(), Threshold: req.Threshold, MaxFMR: req.MaxFmr}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	tpl, quality, err := n.eng.ProbeTemplate(ctx, p)
	if err != nil {
		return nil, err
	}
	coord := n.coordinator()
	audit.NoteCluster(ctx, n.cfg.Node, allPartitions(coord.Partitions)...)
	res, err := coord.Identify(ctx, cluster.SearchRequest{Template: tpl, Query: q, AllowPartial: req.GetAllowPartial(), Token: tok})
	n.metrics.observeCoverage(res.Coverage.Answered, coord.Partitions, err)
	if err != nil {
		return nil, err
	}
	resp := &pb.IdentifyResponse{
		Threshold:    defaultThreshold(n.eng),
		Rule:         res.Rule,
		Searched:     res.Searched,
		ProbeQuality: faceQualityProto(quality),
		Coverage: &pb.Coverage{Answered: int32(res.Coverage.Answered), Total: int32(res.Coverage.Total),
			Partial: res.Partial, Coordinator: n.cfg.Node},
	}
	if q.Threshold != nil {
		resp.Threshold = *q.Threshold
	}
	if q.MaxFMR != nil {
		resp.Fused, resp.MaxFmr = true, *q.MaxFMR
	}
	for _, m := range res.Missing {
		resp.Coverage.Missing = append(resp.Coverage.Missing, int32(m))
	}
	for _, c := range res.Candidates {
		resp.Candidates = append(resp.Candidates, candidateProto(c))
	}
	return resp, nil
}

func (n *clusterNode) verify(ctx context.Context, req *pb.VerifyRequest) (*pb.VerifyResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	var resp pb.VerifyResponse
	if err := n.call(ctx, n.partitionOf(req.GetSubjectId()), callVerify, req, &resp, tok); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (n *clusterNode) getSubject(ctx context.Context, req *pb.GetSubjectRequest) (*pb.GetSubjectResponse, error) {
	tok, err := token(req.GetConsistencyToken())
	if err != nil {
		return nil, err
	}
	var resp pb.GetSubjectResponse
	if err := n.call(ctx, n.partitionOf(req.GetSubjectId()), callGetSubject, req, &resp, tok); err != nil {
		return nil, err
	}
	return &resp, nil
}

// exportSubject asks the partition holding the subject to write it.
func (n *clusterNode) exportSubject(ctx context.Context, req *pb.ExportSubjectRequest) (*pb.ExportSubjectResponse, error) {
	var resp pb.ExportSubjectResponse
	if err := n.call(ctx, n.partitionOf(req.GetSubjectId()), callExportSubject, req, &resp, cluster.Token{}); err != nil {
		return nil, err
	}
	return &resp, nil
}

// callAll sends a call to every partition.
func (n *clusterNode) callAll(ctx context.Context, method string, req proto.Message) ([][]byte, error) {
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s: %w", engine.ErrInternal, method, err)
	}
	m := n.shardMap()
	audit.NoteCluster(ctx, n.cfg.Node, allPartitions(m.Partitions)...)
	return cluster.CallAll(ctx, n.nc, m.Partitions, m.Epoch, method, body, cluster.Token{})
}

// listSubjects merges the partitions' pages: each lists in id order from
// the same token, the merged page takes the first ids of all, and its token
// continues every partition after the last of them.
func (n *clusterNode) listSubjects(ctx context.Context, req *pb.ListSubjectsRequest) (*pb.ListSubjectsResponse, error) {
	size := int(req.GetPageSize())
	if size <= 0 {
		size = store.DefaultPageSize
	}
	outs, err := n.callAll(ctx, callListSubjects, req)
	if err != nil {
		return nil, err
	}
	var all []*pb.Subject
	more, limit := false, ""
	for i, b := range outs {
		var r pb.ListSubjectsResponse
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%w: ListSubjects answer of partition %d: %w", engine.ErrInternal, i, err)
		}
		all = append(all, r.Subjects...)
		if r.NextPageToken != "" && len(r.Subjects) > 0 {
			// Beyond its last id this partition said nothing yet.
			if last := r.Subjects[len(r.Subjects)-1].Id; !more || last < limit {
				limit = last
			}
			more = true
		}
	}
	slices.SortFunc(all, func(a, b *pb.Subject) int { return strings.Compare(a.Id, b.Id) })
	if more {
		i, _ := slices.BinarySearchFunc(all, limit, func(s *pb.Subject, id string) int { return strings.Compare(s.Id, id) })
		all = all[:i+1]
	}
	if len(all) == 0 && req.GetWatchlist() != "" && req.GetPageToken() == "" {
		if err := n.knownList(ctx, req.GetWatchlist()); err != nil {
			return nil, err
		}
	}
	resp := &pb.ListSubjectsResponse{}
	if len(all) > size {
		all, more = all[:size], true
	}
	resp.Subjects = all
	if more && len(all) > 0 {
		resp.NextPageToken = store.PageToken(req.GetWatchlist(), all[len(all)-1].Id)
	}
	return resp, nil
}

// knownList refuses a watchlist no partition has anyone on, as a single
// node's engine does.
func (n *clusterNode) knownList(ctx context.Context, list string) error {
	lists, err := n.listWatchlists(ctx)
	if err != nil {
		return err
	}
	var known []string
	for _, w := range lists.GetWatchlists() {
		if w.GetName() == list {
			return nil
		}
		known = append(known, w.GetName())
	}
	return &engine.UnknownWatchlistsError{Unknown: []string{list}, Known: known}
}

func (n *clusterNode) listWatchlists(ctx context.Context) (*pb.ListWatchlistsResponse, error) {
	outs, err := n.callAll(ctx, callListWatchlists, &pb.ListWatchlistsRequest{})
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	for i, b := range outs {
		var r pb.ListWatchlistsResponse
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%w: ListWatchlists answer of partition %d: %w", engine.ErrInternal, i, err)
		}
		for _, w := range r.Watchlists {
			counts[w.Name] += w.SubjectCount
		}
	}
	resp := &pb.ListWatchlistsResponse{}
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		resp.Watchlists = append(resp.Watchlists, &pb.Watchlist{Name: name, SubjectCount: counts[name]})
	}
	return resp, nil
}
