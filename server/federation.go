package server

// The Federation service (federation.proto): Prüm II-style hit/no-hit
// searches between agencies. Partners (role partner, a certificate of a
// partner CA in matchd --federation) search this gallery and get opaque
// references; officers here review them; a confirmed one releases core
// data to the partner that searched. Officers search partners through this
// server, which holds the partner certificates. The state is package
// federation's ledger in the gallery; every step writes its own audit
// record (audit.Federation*), before the call is answered.

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/federation"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

const fedService = "/bordermatch.v1.Federation/"

// federationService serves bordermatch.v1.Federation.
type federationService struct {
	pb.UnimplementedFederationServer
	cfg      federation.Config
	partners map[string]federation.Loaded
	// ownCA issued this agency's partner certificates: the heads a
	// partner holds of this chain must be signed with one.
	ownCA  *x509.Certificate
	ledger *federation.Ledger
	client *federation.Client
	svc    *Service
	log    *audit.Log
	rec    *audit.Recorder
	m      *fedMetrics
	logger zerolog.Logger
}

func newFederation(cfg federation.Config, partners []federation.Loaded, ownCA *x509.Certificate, ledger *federation.Ledger, svc *Service,
	auditLog *audit.Log, metrics *Metrics, log zerolog.Logger) *federationService {
	f := &federationService{cfg: cfg, partners: map[string]federation.Loaded{}, ownCA: ownCA, ledger: ledger,
		client: federation.NewClient(partners), svc: svc, log: auditLog,
		rec: &audit.Recorder{Log: auditLog, RequestID: requestIDFrom, Logger: log}, logger: log}
	for _, p := range partners {
		f.partners[p.Name] = p
	}
	f.m = newFedMetrics(metrics, ledger)
	return f
}

// partnerOf returns the calling partner agency (access puts it in the
// context for certificates of a partner CA).
func partnerOf(ctx context.Context) (string, error) {
	c, _ := access.CallerFrom(ctx)
	if c.Partner == "" || c.Role != access.Partner {
		return "", status.Error(codes.PermissionDenied, "only a partner agency's certificate may call this")
	}
	return c.Partner, nil
}

// record writes a federation audit record; the call must not be answered
// when it fails.
func (f *federationService) record(ctx context.Context, method, decision string, err error, hits []audit.Hit, detail string, a ...any) error {
	r := f.rec.Base(ctx, fedService+method)
	r.Decision, r.Hits = decision, hits
	r.Detail = fmt.Sprintf(detail, a...)
	r.Code = codeOf(err).String()
	if err != nil {
		r.Detail += ": " + status.Convert(toStatus(err)).Message()
	}
	return f.rec.Write(r)
}

// internal writes a record of something matchd did by itself (a sweep, a
// head sent by the timer).
func (f *federationService) internal(what, decision string, err error, detail string, a ...any) {
	r := audit.Record{Identity: "matchd", Auth: "internal", RPC: "federation/" + what, Decision: decision, Code: codeOf(err).String(), Detail: fmt.Sprintf(detail, a...)}
	if err != nil {
		r.Detail += ": " + err.Error()
	}
	if werr := f.rec.Write(r); werr != nil {
		f.logger.Error().Err(werr).Str("decision", decision).Msg("federation audit record not written")
	}
}

func auditScore(v float32) *float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	return &f
}

func modalityOf(c *pb.Candidate) string {
	switch {
	case c.FaceScore != nil && c.FingerScore != nil:
		return "face+finger"
	case c.FingerScore != nil:
		return "finger"
	}
	return "face"
}

func refIDs(rs []federation.Issued) string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return strings.Join(ids, ",")
}

// ReferenceSearch answers a partner's search with references only.
func (f *federationService) ReferenceSearch(ctx context.Context, req *pb.ReferenceSearchRequest) (*pb.ReferenceSearchResponse, error) {
	partner, err := partnerOf(ctx)
	if err != nil {
		return nil, err
	}
	reqID, purpose := req.GetRequestId(), req.GetPurpose()
	n := int(req.GetMaxCandidates())
	switch {
	case reqID == "" || len(reqID) > 64:
		err = fmt.Errorf("%w: request_id: want 1..64 characters", federation.ErrInvalid)
	case len(purpose) > 256:
		err = fmt.Errorf("%w: purpose: at most 256 characters", federation.ErrInvalid)
	case n > federation.MaxCandidates:
		err = fmt.Errorf("%w: max_candidates %d: at most %d", federation.ErrInvalid, n, federation.MaxCandidates)
	case req.GetFace().GetKind() == nil && len(req.GetFingers()) == 0 && len(req.GetNistTransaction()) == 0:
		err = fmt.Errorf("%w: give a face, fingers or an ANSI/NIST-ITL transaction", federation.ErrInvalid)
	}
	if n == 0 {
		n = f.cfg.MaxCandidates
	}
	var res *pb.IdentifyResponse
	if err == nil {
		res, err = f.svc.Identify(ctx, &pb.IdentifyRequest{Probe: req.GetFace(), Fingers: req.GetFingers(), NistTransaction: req.GetNistTransaction(), TopK: int32(n)})
	}
	var issued []federation.Issued
	var hits []audit.Hit
	if err == nil {
		fh := make([]federation.Hit, 0, len(res.GetCandidates()))
		for _, c := range res.GetCandidates() {
			fh = append(fh, federation.Hit{SubjectID: c.GetSubjectId(), Name: c.GetName(), Score: c.GetScore(), Rank: int(c.GetRank()), Modality: modalityOf(c)})
			hits = append(hits, audit.Hit{SubjectID: c.GetSubjectId(), Score: auditScore(c.GetScore())})
		}
		issued, err = f.ledger.Issue(partner, reqID, purpose, fh)
	}
	outcome := "no-hit"
	if len(issued) > 0 {
		outcome = "hit"
	}
	if err != nil {
		outcome = "error"
	}
	f.m.searches.WithLabelValues(partner, "inbound", outcome).Inc()
	if aerr := f.record(ctx, "ReferenceSearch", audit.FederationSearchAnswered, err, hits,
		"partner %s request %q purpose %q: %d hit(s) %s", partner, reqID, purpose, len(issued), refIDs(issued)); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	resp := &pb.ReferenceSearchResponse{RequestId: reqID, Hit: len(issued) > 0}
	for _, r := range issued {
		resp.References = append(resp.References, &pb.Reference{ReferenceId: r.ID, Score: r.Score, Rank: uint32(r.Rank), Modality: r.Modality})
	}
	return resp, nil
}

// RequestCoreData releases a confirmed reference's core data to the
// partner it was issued to.
func (f *federationService) RequestCoreData(ctx context.Context, req *pb.CoreDataRequest) (*pb.CoreDataResponse, error) {
	partner, err := partnerOf(ctx)
	if err != nil {
		return nil, err
	}
	r, err := f.ledger.RequestData(partner, req.GetReferenceId())
	var cd *pb.CoreData
	if err == nil {
		var sub *pb.GetSubjectResponse
		sub, err = f.svc.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: r.SubjectID})
		if err == nil {
			cd = f.coreData(sub.GetSubject())
		} else if codeOf(err) == codes.NotFound {
			err = fmt.Errorf("%w: %s: the subject is no longer held", federation.ErrUnknownReference, r.ID)
		}
	}
	var hits []audit.Hit
	if r.SubjectID != "" {
		hits = []audit.Hit{{SubjectID: r.SubjectID}}
	}
	decision := audit.FederationReleased
	if err != nil {
		decision = audit.FederationWithheld
	} else {
		f.m.releases.WithLabelValues(partner).Inc()
	}
	if aerr := f.record(ctx, "RequestCoreData", decision, err, hits, "partner %s request %q reference %s (fields %s)",
		partner, req.GetRequestId(), req.GetReferenceId(), strings.Join(f.cfg.Release, ",")); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return &pb.CoreDataResponse{ReferenceId: r.ID, CoreData: cd, ConfirmedAt: timestamppb.New(r.Reviewed)}, nil
}

// coreData is what the configuration releases of a subject.
func (f *federationService) coreData(s *pb.Subject) *pb.CoreData {
	first := func(keys []string) string {
		for _, k := range keys {
			if v := s.GetMetadata()[k]; v != "" {
				return v
			}
		}
		return ""
	}
	cd := &pb.CoreData{}
	for _, field := range f.cfg.Release {
		switch field {
		case federation.FieldName:
			cd.Name = s.GetName()
		case federation.FieldDateOfBirth:
			cd.DateOfBirth = first(f.cfg.DateOfBirthKeys)
		case federation.FieldNationality:
			cd.Nationality = first(f.cfg.NationalityKeys)
		case federation.FieldReason:
			cd.Reasons = slices.Clone(s.GetWatchlists())
		}
	}
	return cd
}

func headProto(h federation.Head) *pb.AuditHead {
	hash, _ := hex.DecodeString(h.Hash)
	p := &pb.AuditHead{Agency: h.Agency, Seq: h.Seq, Hash: hash, Time: timestamppb.New(h.Time), Certificate: h.Cert, Signature: h.Sig}
	if !h.Received.IsZero() {
		p.ReceivedAt = timestamppb.New(h.Received)
	}
	return p
}

// SubmitAuditHead keeps a partner's signed head.
func (f *federationService) SubmitAuditHead(ctx context.Context, req *pb.SubmitAuditHeadRequest) (*pb.SubmitAuditHeadResponse, error) {
	partner, err := partnerOf(ctx)
	if err != nil {
		return nil, err
	}
	ph := req.GetHead()
	h := federation.Head{Agency: ph.GetAgency(), Seq: ph.GetSeq(), Hash: hex.EncodeToString(ph.GetHash()), Time: ph.GetTime().AsTime(),
		Cert: ph.GetCertificate(), Sig: ph.GetSignature(), Received: time.Now().UTC()}
	held := 0
	if err = federation.VerifyHead(h, f.partners[partner].CACert, time.Now()); err == nil {
		held, err = f.ledger.KeepHead(partner, h)
	}
	outcome := "kept"
	if err != nil {
		outcome = "refused"
	}
	f.m.heads.WithLabelValues(partner, "received", outcome).Inc()
	if aerr := f.record(ctx, "SubmitAuditHead", audit.FederationHeadReceived, err, nil, "partner %s (agency %q) head %d %s",
		partner, h.Agency, h.Seq, h.Hash); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return &pb.SubmitAuditHeadResponse{HeadsHeld: uint64(held)}, nil
}

// ListWitnessedHeads returns the heads held of the calling partner.
func (f *federationService) ListWitnessedHeads(ctx context.Context, req *pb.ListWitnessedHeadsRequest) (*pb.ListWitnessedHeadsResponse, error) {
	partner, err := partnerOf(ctx)
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = 1000
	case limit > 10000:
		return nil, fmt.Errorf("%w: limit %d: at most 10000", federation.ErrInvalid, limit)
	}
	hs, err := f.ledger.Heads(partner, limit)
	if aerr := f.record(ctx, "ListWitnessedHeads", audit.FederationHeadsListed, err, nil, "partner %s: %d head(s)", partner, len(hs)); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	resp := &pb.ListWitnessedHeadsResponse{}
	for _, h := range hs {
		resp.Heads = append(resp.Heads, headProto(h))
	}
	return resp, nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func issuedProto(r federation.Issued) *pb.IssuedReference {
	return &pb.IssuedReference{
		ReferenceId: r.ID, Partner: r.Partner, RequestId: r.RequestID, Purpose: r.Purpose, SubjectId: r.SubjectID, Name: r.Name,
		Score: r.Score, Rank: uint32(r.Rank), Modality: r.Modality, State: r.State, CreatedAt: ts(r.Created), ExpiresAt: ts(r.Expires),
		DataRequestedAt: ts(r.DataRequested), Deadline: ts(r.Deadline), DeadlineMissed: r.DeadlineMissed, ReviewedBy: r.ReviewedBy,
		ReviewedAt: ts(r.Reviewed), Note: r.Note, ReleasedAt: ts(r.Released),
	}
}

// ListPending lists the references issued to partners.
func (f *federationService) ListPending(ctx context.Context, req *pb.ListPendingRequest) (*pb.ListPendingResponse, error) {
	rs, err := f.ledger.List(req.GetAll())
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPendingResponse{}
	for _, r := range rs {
		resp.References = append(resp.References, issuedProto(r))
	}
	return resp, nil
}

// ReviewReference records an officer's confirmation or rejection.
func (f *federationService) ReviewReference(ctx context.Context, req *pb.ReviewReferenceRequest) (*pb.ReviewReferenceResponse, error) {
	c, _ := access.CallerFrom(ctx)
	officer := c.Identity
	if len(req.GetNote()) > 512 {
		return nil, fmt.Errorf("%w: note: at most 512 characters", federation.ErrInvalid)
	}
	r, err := f.ledger.Review(req.GetReferenceId(), officer, req.GetConfirm(), req.GetNote())
	decision := audit.FederationRejected
	if req.GetConfirm() {
		decision = audit.FederationConfirmed
	}
	var hits []audit.Hit
	if r.SubjectID != "" {
		hits = []audit.Hit{{SubjectID: r.SubjectID, Score: auditScore(r.Score)}}
	}
	if aerr := f.record(ctx, "ReviewReference", decision, err, hits, "reference %s of partner %s request %q (note %q)",
		req.GetReferenceId(), r.Partner, r.RequestID, req.GetNote()); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return &pb.ReviewReferenceResponse{Reference: issuedProto(r)}, nil
}

// partnerError passes a partner's answer on with its code, naming the
// partner; a partner out of reach is Unavailable.
func partnerError(partner string, err error) error {
	st := status.Convert(err)
	code := st.Code()
	switch code {
	case codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Unauthenticated:
		// Our own caller's deadline aside, these are the partner's or the
		// link's trouble, not the officer's.
		code = codes.Unavailable
	}
	return status.Errorf(code, "partner %s: %s", partner, st.Message())
}

func (f *federationService) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.cfg.CallTimeout)
}

// SearchPartner sends an officer's probe to a partner.
func (f *federationService) SearchPartner(ctx context.Context, req *pb.SearchPartnerRequest) (*pb.SearchPartnerResponse, error) {
	c, _ := access.CallerFrom(ctx)
	fc, _, err := f.client.Partner(req.GetPartner())
	if err != nil {
		return nil, err
	}
	reqID := requestIDFrom(ctx)
	if reqID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		reqID = hex.EncodeToString(b[:])
	}
	cctx, cancel := f.callCtx(ctx)
	defer cancel()
	ans, err := fc.ReferenceSearch(cctx, &pb.ReferenceSearchRequest{RequestId: reqID, Purpose: req.GetPurpose(),
		Face: req.GetFace(), Fingers: req.GetFingers(), NistTransaction: req.GetNistTransaction(), MaxCandidates: req.GetMaxCandidates()})
	if err != nil {
		err = partnerError(req.GetPartner(), err)
	}
	var ids []string
	if err == nil {
		var recv []federation.Received
		now := time.Now().UTC()
		for _, r := range ans.GetReferences() {
			ids = append(ids, r.GetReferenceId())
			recv = append(recv, federation.Received{ID: r.GetReferenceId(), Partner: req.GetPartner(), RequestID: reqID, Purpose: req.GetPurpose(),
				Officer: c.Identity, Score: r.GetScore(), Rank: int(r.GetRank()), Modality: r.GetModality(), Created: now})
		}
		err = f.ledger.RecordReceived(recv)
	}
	outcome := "no-hit"
	switch {
	case err != nil:
		outcome = "error"
	case len(ids) > 0:
		outcome = "hit"
	}
	f.m.searches.WithLabelValues(req.GetPartner(), "outbound", outcome).Inc()
	if aerr := f.record(ctx, "SearchPartner", audit.FederationSearchSent, err, nil, "partner %s request %q purpose %q: %d reference(s) %s",
		req.GetPartner(), reqID, req.GetPurpose(), len(ids), strings.Join(ids, ",")); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return &pb.SearchPartnerResponse{Partner: req.GetPartner(), Answer: ans}, nil
}

// FetchCoreData asks the partner that gave a reference for its core data.
func (f *federationService) FetchCoreData(ctx context.Context, req *pb.FetchCoreDataRequest) (*pb.FetchCoreDataResponse, error) {
	rec, err := f.ledger.Received(req.GetReferenceId())
	if err != nil {
		return nil, err
	}
	fc, _, err := f.client.Partner(rec.Partner)
	if err != nil {
		return nil, err
	}
	cctx, cancel := f.callCtx(ctx)
	defer cancel()
	data, err := fc.RequestCoreData(cctx, &pb.CoreDataRequest{ReferenceId: rec.ID, RequestId: requestIDFrom(ctx)})
	if err != nil {
		err = partnerError(rec.Partner, err)
	}
	if aerr := f.record(ctx, "FetchCoreData", audit.FederationDataReceived, err, nil, "partner %s reference %s (search %q)",
		rec.Partner, rec.ID, rec.RequestID); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return &pb.FetchCoreDataResponse{Partner: rec.Partner, Data: data}, nil
}

// VerifyWitness checks this chain against the heads partner holds of it.
func (f *federationService) VerifyWitness(ctx context.Context, req *pb.VerifyWitnessRequest) (*pb.VerifyWitnessResponse, error) {
	fc, _, err := f.client.Partner(req.GetPartner())
	if err != nil {
		return nil, err
	}
	cctx, cancel := f.callCtx(ctx)
	defer cancel()
	held, err := fc.ListWitnessedHeads(cctx, &pb.ListWitnessedHeadsRequest{})
	if err != nil {
		err = partnerError(req.GetPartner(), err)
		if aerr := f.record(ctx, "VerifyWitness", audit.FederationWitnessMismatch, err, nil, "partner %s", req.GetPartner()); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	seqs := make([]uint64, 0, len(held.GetHeads()))
	for _, h := range held.GetHeads() {
		seqs = append(seqs, h.GetSeq())
	}
	local, err := f.log.HashesAt(seqs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errAuditRead, err)
	}
	resp := &pb.VerifyWitnessResponse{Partner: req.GetPartner(), Heads: uint32(len(seqs))}
	for _, h := range held.GetHeads() {
		resp.LatestSeq = max(resp.LatestSeq, h.GetSeq())
		want := hex.EncodeToString(h.GetHash())
		got, ok := local[h.GetSeq()]
		signed := federation.VerifyHead(federation.Head{Agency: h.GetAgency(), Seq: h.GetSeq(), Hash: want, Time: h.GetTime().AsTime(),
			Cert: h.GetCertificate(), Sig: h.GetSignature()}, f.ownCA, h.GetTime().AsTime())
		switch {
		case signed != nil:
			// Not a head this agency sent: the partner's word alone.
			resp.Mismatches = append(resp.Mismatches, &pb.WitnessMismatch{Seq: h.GetSeq(), WitnessedHash: h.GetHash(),
				Problem: fmt.Sprintf("head %d held by %s is not signed by this agency: %v", h.GetSeq(), req.GetPartner(), signed)})
		case !ok:
			resp.Mismatches = append(resp.Mismatches, &pb.WitnessMismatch{Seq: h.GetSeq(), WitnessedHash: h.GetHash(),
				Problem: fmt.Sprintf("record %d, witnessed at %s, is not in this chain (cut short?)", h.GetSeq(), h.GetTime().AsTime().Format(time.RFC3339))})
		case got != want:
			lb, _ := hex.DecodeString(got)
			resp.Mismatches = append(resp.Mismatches, &pb.WitnessMismatch{Seq: h.GetSeq(), WitnessedHash: h.GetHash(), LocalHash: lb,
				Problem: fmt.Sprintf("record %d is %s here but was %s when its head was sent at %s: the chain was rewritten", h.GetSeq(), got, want, h.GetTime().AsTime().Format(time.RFC3339))})
		default:
			resp.Matched++
		}
	}
	resp.Ok = len(resp.Mismatches) == 0 && resp.Heads > 0
	decision := audit.FederationWitnessOK
	if !resp.Ok {
		decision = audit.FederationWitnessMismatch
	}
	first := ""
	if len(resp.Mismatches) > 0 {
		first = "; first: " + resp.Mismatches[0].GetProblem()
	}
	if aerr := f.record(ctx, "VerifyWitness", decision, nil, nil, "partner %s holds %d head(s), %d agree, %d differ%s",
		req.GetPartner(), resp.Heads, resp.Matched, len(resp.Mismatches), first); aerr != nil {
		return nil, aerr
	}
	return resp, nil
}

var errAuditRead = errors.New("reading the audit trail")

// SendAuditHeads sends the head now.
func (f *federationService) SendAuditHeads(ctx context.Context, req *pb.SendAuditHeadsRequest) (*pb.SendAuditHeadsResponse, error) {
	names := f.client.Names()
	if p := req.GetPartner(); p != "" {
		if _, ok := f.partners[p]; !ok {
			return nil, fmt.Errorf("%w: %q is not configured (matchd --federation)", federation.ErrUnknownPartner, p)
		}
		names = []string{p}
	}
	slices.Sort(names)
	return &pb.SendAuditHeadsResponse{Sent: f.sendHeads(ctx, names)}, nil
}

// sendHeads signs the current head and sends it to each partner, one
// audit record each.
func (f *federationService) sendHeads(ctx context.Context, names []string) []*pb.HeadSent {
	var out []*pb.HeadSent
	for _, name := range names {
		res := &pb.HeadSent{Partner: name}
		out = append(out, res)
		seq, hash, err := f.log.Head()
		if err == nil && seq == 0 {
			err = errors.New("the audit trail is empty")
		}
		var h federation.Head
		if err == nil {
			res.Seq = seq
			h, err = federation.SignHead(f.cfg.Agency, seq, hash, time.Now(), f.partners[name].Client)
		}
		if err == nil {
			var fc pb.FederationClient
			if fc, _, err = f.client.Partner(name); err == nil {
				cctx, cancel := f.callCtx(ctx)
				_, err = fc.SubmitAuditHead(cctx, &pb.SubmitAuditHeadRequest{Head: headProto(h)})
				cancel()
				if err != nil {
					err = partnerError(name, err)
				}
			}
		}
		outcome := "sent"
		if err != nil {
			res.Error = status.Convert(err).Message()
			outcome = "failed"
			f.logger.Warn().Str("partner", name).Err(err).Msg("audit head not sent")
		}
		f.m.heads.WithLabelValues(name, "sent", outcome).Inc()
		if _, byCall := access.CallerFrom(ctx); byCall {
			// An admin's SendAuditHeads: the record names the admin.
			if aerr := f.record(ctx, "SendAuditHeads", audit.FederationHeadSent, err, nil, "to partner %s: head %d %s", name, seq, hash); aerr != nil {
				res.Error = status.Convert(aerr).Message()
			}
		} else {
			f.internal("SendAuditHead", audit.FederationHeadSent, err, "to partner %s: head %d %s", name, seq, hash)
		}
	}
	return out
}

// run sends the head every HeadInterval (and once at start) and sweeps
// for missed deadlines and expired references every SweepInterval, until
// ctx is done.
func (f *federationService) run(ctx context.Context) {
	heads := time.NewTicker(f.cfg.HeadInterval)
	defer heads.Stop()
	sweep := time.NewTicker(f.cfg.SweepInterval)
	defer sweep.Stop()
	names := f.client.Names()
	slices.Sort(names)
	f.sendHeads(ctx, names)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heads.C:
			f.sendHeads(ctx, names)
		case <-sweep.C:
			f.sweep()
		}
	}
}

func (f *federationService) sweep() {
	missed, expired, err := f.ledger.Sweep()
	if err != nil {
		f.logger.Error().Err(err).Msg("federation sweep")
	}
	for _, r := range missed {
		f.m.deadlines.WithLabelValues(r.Partner).Inc()
		f.logger.Warn().Str("partner", r.Partner).Str("reference", r.ID).Time("deadline", r.Deadline).
			Msg("a partner's request for core data was not reviewed within the release deadline")
		f.internal("sweep", audit.FederationDeadlineMissed, nil, "partner %s reference %s request %q: data requested %s, deadline %s passed without a review",
			r.Partner, r.ID, r.RequestID, r.DataRequested.Format(time.RFC3339), r.Deadline.Format(time.RFC3339))
	}
	if expired > 0 {
		f.logger.Info().Int("references", expired).Msg("expired federation references forgotten")
	}
}

func (f *federationService) close() { f.client.Close() }

// fedMetrics are the federation's metrics.
type fedMetrics struct {
	searches, releases, deadlines, heads *prometheus.CounterVec
}

func newFedMetrics(m *Metrics, ledger *federation.Ledger) *fedMetrics {
	fm := &fedMetrics{
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bordermatch_federation_searches_total",
			Help: "Hit/no-hit searches with partner agencies: inbound (a partner searched here) and outbound, by outcome (hit, no-hit, error)."},
			[]string{"partner", "direction", "outcome"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bordermatch_federation_releases_total",
			Help: "Core data released to a partner for a confirmed reference."}, []string{"partner"}),
		deadlines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bordermatch_federation_deadlines_missed_total",
			Help: "Partners' requests for core data not reviewed within the release deadline."}, []string{"partner"}),
		heads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bordermatch_federation_audit_heads_total",
			Help: "Signed audit-chain heads sent to partners and received from them, by outcome."}, []string{"partner", "direction", "outcome"}),
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bordermatch_federation_pending_reviews",
		Help: "References issued to partners awaiting an officer's review."}, func() float64 {
		n, err := ledger.Pending()
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if m != nil {
		m.Registry().MustRegister(fm.searches, fm.releases, fm.deadlines, fm.heads, pending)
	}
	return fm
}
