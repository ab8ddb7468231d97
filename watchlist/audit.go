package watchlist

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bordermatch/bordermatch/audit"
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
	KeyID     string         `json:"key_id,omitempty"`
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
			// The decision last: it is what a reader looks for, and wrapped
			// there it may be long. A line wider than the terminal would
			// run into the next record's.
			rows := [][]string{{"SEQ", "TIME", "CALLER", "ROLE", "GATE", "RPC", "SUBJECTS", "DECISION"}}
			for _, r := range all {
				decision := r.GetDecision()
				if r.GetCode() != "OK" && r.GetDetail() != "" {
					decision += " (" + r.GetCode() + ": " + r.GetDetail() + ")"
				}
				row := []string{strconv.FormatUint(r.GetSeq(), 10), auditTime(r.GetTime().AsTime()),
					callerText(r), dash(r.GetRole()), dash(r.GetGate()), shortRPC(r.GetRpc()), hitsText(r.GetHits()), decision}
				for i, c := range row {
					row[i] = cellText(c)
				}
				rows = append(rows, row)
			}
			cut := fitTable(a.stdout, termWidth(a.stdout), rows, []int{6, 2}, []int{5})
			fmt.Fprintf(a.stdout, "%d record(s).\n", len(all))
			if cut {
				fmt.Fprintln(a.stdout, "(… marks a cell cut to fit the terminal: --json for whole records)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records from this time on: RFC 3339, a date, or a duration such as 24h")
	cmd.Flags().StringVar(&subject, "subject", "", "only records naming this subject")
	cmd.AddCommand(a.auditVerifyCmd())
	return cmd
}

// auditVerifyCmd checks the server's chain (archive and gallery as one), or
// a copy of the archive: on its own with --offline, else also against the
// server's chain.
func (a *app) auditVerifyCmd() *cobra.Command {
	var archive, witness string
	var offline bool
	cmd := &cobra.Command{
		Use:   "verify [--archive FILE [--offline]] [--witness PARTNER]",
		Short: "Check the audit trail's hash chain (the archive and the gallery as one); exit 1 naming the first bad record",
		Long: "Check the audit trail's hash chain on the server: the archive of records moved out of the gallery (matchd --audit-retention)\n" +
			"and the records in the gallery, as one chain. With --archive FILE, check a copy of the archive here: records from 1\n" +
			"without gaps, each linked to the one before; then, unless --offline, that the server's chain has the same record where\n" +
			"the copy ends. Exit 1 naming the file and the first bad record.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if offline && archive == "" {
				return usageError("--offline needs --archive FILE")
			}
			if offline && witness != "" {
				return usageError("--witness needs the server: not with --offline")
			}
			out := map[string]any{}
			var copyRes audit.Result
			if archive != "" {
				var err error
				if copyRes, err = audit.VerifyArchiveFile(archive); err != nil {
					return &exitError{code: ExitFailure, err: err}
				}
				out["archive_copy"] = map[string]any{
					"file": archive, "ok": copyRes.OK, "records": copyRes.Archived, "last_seq": copyRes.HeadSeq,
					"last_hash": copyRes.HeadHash, "torn": copyRes.ArchiveTorn, "bad_seq": copyRes.BadSeq, "problem": copyRes.Problem,
				}
				if !copyRes.OK {
					return a.verifyFailed(out, fmt.Errorf("archive copy broken at record %d: %s", copyRes.BadSeq, copyRes.Problem))
				}
				if !a.json {
					fmt.Fprintf(a.stdout, "Archive copy %s intact: %d record(s), last %d %s\n", archive, copyRes.Archived, copyRes.HeadSeq, copyRes.HeadHash)
					if copyRes.ArchiveTorn {
						fmt.Fprintln(a.stdout, "(it ends in an incomplete line, from an export a crash cut short; ignored)")
					}
				}
				if offline {
					if a.json {
						return a.printJSON(out)
					}
					return nil
				}
			}
			c, err := a.auditClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			res, err := c.Verify(ctx, &pb.VerifyAuditRequest{LinkSeq: copyRes.HeadSeq})
			if err != nil {
				return a.callError(err, "")
			}
			out["ok"], out["records"], out["head_seq"] = res.GetOk(), res.GetRecords(), res.GetHeadSeq()
			out["head_hash"], out["bad_seq"], out["problem"] = hex.EncodeToString(res.GetHeadHash()), res.GetBadSeq(), res.GetProblem()
			out["archive"], out["archived_records"] = res.GetArchive(), res.GetArchivedRecords()
			out["archive_first_seq"], out["archive_last_seq"] = res.GetArchiveFirstSeq(), res.GetArchiveLastSeq()
			out["archive_last_hash"], out["archive_torn"] = hex.EncodeToString(res.GetArchiveLastHash()), res.GetArchiveTorn()
			out["live_first_seq"] = res.GetLiveFirstSeq()
			if !res.GetOk() {
				return a.verifyFailed(out, fmt.Errorf("audit chain broken at record %d: %s", res.GetBadSeq(), res.GetProblem()))
			}
			if archive != "" && copyRes.HeadSeq > 0 {
				link := hex.EncodeToString(res.GetLinkHash())
				out["archive_copy_linked"] = link == copyRes.HeadHash
				switch {
				case len(res.GetLinkHash()) == 0:
					return a.verifyFailed(out, fmt.Errorf("archive copy %s ends at record %d, which the server's chain (%d records) does not have",
						archive, copyRes.HeadSeq, res.GetRecords()))
				case link != copyRes.HeadHash:
					return a.verifyFailed(out, fmt.Errorf("archive copy %s: record %d differs from the server's record %d (hash %s, the server's %s)",
						archive, copyRes.HeadSeq, copyRes.HeadSeq, copyRes.HeadHash, link))
				}
			}
			if witness != "" {
				if err := a.witnessCheck(cmd.Context(), witness, out); err != nil {
					return err
				}
			}
			if a.json {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "Audit chain intact: %d record(s); head %d %s\n", res.GetRecords(), res.GetHeadSeq(), hex.EncodeToString(res.GetHeadHash()))
			if n := res.GetArchivedRecords(); n > 0 {
				fmt.Fprintf(a.stdout, "Archive %s: records %d-%d; ", res.GetArchive(), res.GetArchiveFirstSeq(), res.GetArchiveLastSeq())
				if f := res.GetLiveFirstSeq(); f > 0 {
					fmt.Fprintf(a.stdout, "in the gallery: records %d-%d.\n", f, res.GetHeadSeq())
				} else {
					fmt.Fprintln(a.stdout, "none left in the gallery.")
				}
				if res.GetArchiveTorn() {
					fmt.Fprintln(a.stdout, "(the archive ends in an incomplete line, from an export a crash cut short; ignored, its records are in the gallery)")
				}
			}
			if archive != "" && copyRes.HeadSeq > 0 {
				fmt.Fprintf(a.stdout, "The copy %s is the chain's records 1-%d.\n", archive, copyRes.HeadSeq)
			}
			fmt.Fprintln(a.stdout, "(keep the head somewhere else to detect a later rewrite of the whole chain).")
			return nil
		},
	}
	cmd.Flags().StringVar(&archive, "archive", "", "check this copy of the audit archive (DATA/audit/archive.jsonl), and that the server's chain continues it")
	cmd.Flags().BoolVar(&offline, "offline", false, "with --archive: check the copy only, without connecting")
	cmd.Flags().StringVar(&witness, "witness", "", "also check the chain against the signed heads this partner agency holds of it (a rewritten chain differs)")
	return cmd
}

// verifyFailed prints the JSON answer (if asked for) and exits 1 with err.
func (a *app) verifyFailed(out map[string]any, err error) error {
	if a.json {
		if perr := a.printJSON(out); perr != nil {
			return perr
		}
	}
	return &exitError{code: ExitFailure, err: err}
}

// callerText names a record's caller with its key id, since two callers
// may share a name.
func callerText(r *pb.AuditRecord) string {
	if r.GetKeyId() == "" {
		return r.GetIdentity()
	}
	return r.GetIdentity() + " (" + r.GetKeyId() + ")"
}

func toAuditJSON(r *pb.AuditRecord) auditJSON {
	j := auditJSON{
		Seq: r.GetSeq(), Time: r.GetTime().AsTime().Format(time.RFC3339Nano), Identity: r.GetIdentity(), KeyID: r.GetKeyId(), Role: r.GetRole(),
		Auth: r.GetAuth(), Gate: r.GetGate(), RPC: r.GetRpc(), RequestID: r.GetRequestId(), Peer: r.GetPeer(),
		Hits: []auditHitJSON{}, Decision: r.GetDecision(), Code: r.GetCode(), Detail: r.GetDetail(),
		Hash: hex.EncodeToString(r.GetHash()), PrevHash: hex.EncodeToString(r.GetPrevHash()),
	}
	for _, h := range r.GetHits() {
		j.Hits = append(j.Hits, auditHitJSON{SubjectID: h.GetSubjectId(), Score: h.Score})
	}
	return j
}

// auditTime is a record's time in the local zone, with the zone: an
// audit table is read next to logs and reports of other places and
// machines.
func auditTime(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05 MST")
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
