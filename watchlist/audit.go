package watchlist

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *app) auditClient() (pb.AuditClient, error) {
	if _, err := a.dial(); err != nil {
		return nil, err
	}
	return pb.NewAuditClient(a.conn), nil
}

type auditHitJSON struct {
	SubjectID string   `json:"subject_id"`
	Score     *float64 `json:"score,omitempty"`
}

type auditJSON struct {
	Seq       uint64         `json:"seq"`
	Time      string         `json:"time"`
	Identity  string         `json:"identity"`
	Role      string         `json:"role"`
	Auth      string         `json:"auth"`
	Gate      string         `json:"gate,omitempty"`
	RPC       string         `json:"rpc"`
	RequestID string         `json:"request_id,omitempty"`
	Peer      string         `json:"peer,omitempty"`
	Hits      []auditHitJSON `json:"hits"`
	Decision  string         `json:"decision"`
	Code      string         `json:"code"`
	Detail    string         `json:"detail,omitempty"`
	Hash      string         `json:"hash"`
	PrevHash  string         `json:"prev_hash"`
}

// parseSince reads an RFC 3339 time, a date (UTC), or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError("--since %q: want a time (2026-11-23T08:00:00Z), a date (2026-11-23) or a duration back from now (24h)", s)
}

func (a *app) auditCmd() *cobra.Command {
	var since, subject string
	cmd := &cobra.Command{
		Use:   "audit [--since TIME] [--subject ID]",
		Short: "List the audit trail (admin), oldest first; 'audit verify' checks its hash chain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.ListAuditRequest{SubjectId: subject, PageSize: 1000}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				req.Since = timestamppb.New(t)
			}
			c, err := a.auditClient()
			if err != nil {
				return err
			}
			var all []*pb.AuditRecord
			for {
				ctx, cancel := a.ctx(cmd.Context())
				resp, err := c.List(ctx, req)
				cancel()
				if err != nil {
					return a.callError(err, "")
				}
				all = append(all, resp.GetRecords()...)
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
			if a.json {
				out := make([]auditJSON, len(all))
				for i, r := range all {
					out[i] = toAuditJSON(r)
				}
				return a.printJSON(map[string]any{"records": out})
			}
			if len(all) == 0 {
				fmt.Fprintln(a.stdout, "No audit records.")
				return nil
			}
			t := newTable(a.stdout, "SEQ", "TIME", "CALLER", "ROLE", "GATE", "RPC", "DECISION", "SUBJECTS")
			for _, r := range all {
				decision := r.GetDecision()
				if r.GetCode() != "OK" && r.GetDetail() != "" {
					decision += " (" + r.GetCode() + ": " + r.GetDetail() + ")"
				}
				t.row(strconv.FormatUint(r.GetSeq(), 10), r.GetTime().AsTime().Local().Format("2006-01-02 15:04:05"),
					r.GetIdentity(), dash(r.GetRole()), dash(r.GetGate()), shortRPC(r.GetRpc()), decision, hitsText(r.GetHits()))
			}
			t.flush()
			fmt.Fprintf(a.stdout, "%d record(s).\n", len(all))
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records from this time on: RFC 3339, a date, or a duration such as 24h")
	cmd.Flags().StringVar(&subject, "subject", "", "only records naming this subject")
	cmd.AddCommand(&cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain; exit 1 naming the first bad record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.auditClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			res, err := c.Verify(ctx, &pb.VerifyAuditRequest{})
			if err != nil {
				return a.callError(err, "")
			}
			if a.json {
				if err := a.printJSON(map[string]any{
					"ok": res.GetOk(), "records": res.GetRecords(), "head_seq": res.GetHeadSeq(),
					"head_hash": hex.EncodeToString(res.GetHeadHash()), "bad_seq": res.GetBadSeq(), "problem": res.GetProblem(),
				}); err != nil {
					return err
				}
			} else if res.GetOk() {
				fmt.Fprintf(a.stdout, "Audit chain intact: %d record(s); head %d %s\n(keep the head somewhere else to detect a later rewrite of the whole chain).\n",
					res.GetRecords(), res.GetHeadSeq(), hex.EncodeToString(res.GetHeadHash()))
			}
			if !res.GetOk() {
				return &exitError{code: ExitFailure, err: fmt.Errorf("audit chain broken at record %d: %s", res.GetBadSeq(), res.GetProblem())}
			}
			return nil
		},
	})
	return cmd
}

func toAuditJSON(r *pb.AuditRecord) auditJSON {
	j := auditJSON{
		Seq: r.GetSeq(), Time: r.GetTime().AsTime().Format(time.RFC3339Nano), Identity: r.GetIdentity(), Role: r.GetRole(),
		Auth: r.GetAuth(), Gate: r.GetGate(), RPC: r.GetRpc(), RequestID: r.GetRequestId(), Peer: r.GetPeer(),
		Hits: []auditHitJSON{}, Decision: r.GetDecision(), Code: r.GetCode(), Detail: r.GetDetail(),
		Hash: hex.EncodeToString(r.GetHash()), PrevHash: hex.EncodeToString(r.GetPrevHash()),
	}
	for _, h := range r.GetHits() {
		j.Hits = append(j.Hits, auditHitJSON{SubjectID: h.GetSubjectId(), Score: h.Score})
	}
	return j
}

func shortRPC(m string) string {
	if i := strings.LastIndex(m, "."); i >= 0 && strings.HasPrefix(m, "/bordermatch.") {
		return m[i+1:]
	}
	return m
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func hitsText(hs []*pb.AuditHit) string {
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		id := h.GetSubjectId()
		if id == "" {
			id = "(reference)"
		}
		if h.Score != nil {
			id += fmt.Sprintf(" %.3f", h.GetScore())
		}
		parts = append(parts, id)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
