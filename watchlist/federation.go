package watchlist

// Searches between agencies (README "Searching partner agencies"): the
// officer's side of the Federation service. Every command talks to the
// local matchd, which holds the partner certificates and calls partners.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *app) federationClient() (pb.FederationClient, error) {
	if _, err := a.dial(); err != nil {
		return nil, err
	}
	return pb.NewFederationClient(a.conn), nil
}

// fedCall is every Federation call of the CLI: dial, timeout, the error in
// plain words.
func fedCall[T any](a *app, parent context.Context, subject string, fn func(context.Context, pb.FederationClient) (T, error)) (T, error) {
	var zero T
	c, err := a.federationClient()
	if err != nil {
		return zero, err
	}
	ctx, cancel := a.ctx(parent)
	defer cancel()
	resp, err := fn(ctx, c)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			// matchd registers the Federation service only with
			// --federation; gRPC's "unknown service" would not say so.
			return zero, &exitError{code: ExitFailure, rpc: codes.Unimplemented,
				err: fmt.Errorf("matchd at %s has no partner agencies: it runs without --federation FILE (README: Searching partner agencies)", a.server)}
		}
		return zero, a.callError(err, subject)
	}
	return resp, nil
}

type referenceJSON struct {
	ReferenceID string  `json:"reference_id"`
	Score       float32 `json:"score"`
	Rank        uint32  `json:"rank"`
	Modality    string  `json:"modality"`
}

type partnerSearchJSON struct {
	Partner    string          `json:"partner"`
	RequestID  string          `json:"request_id"`
	Hit        bool            `json:"hit"`
	References []referenceJSON `json:"references"`
}

// searchPartner is `search --partner NAME`: the probe goes to the partner
// through the local matchd; the answer is references and scores only.
func (a *app) searchPartner(cmd *cobra.Command, partner, purpose string, probe *pb.Sample, fingers []*pb.FingerSample, nist []byte, top uint32, files string) error {
	resp, err := fedCall(a, cmd.Context(), files, func(ctx context.Context, c pb.FederationClient) (*pb.SearchPartnerResponse, error) {
		return c.SearchPartner(ctx, &pb.SearchPartnerRequest{Partner: partner, Face: probe, Fingers: fingers, NistTransaction: nist, MaxCandidates: top, Purpose: purpose})
	})
	if err != nil {
		return err
	}
	ans := resp.GetAnswer()
	if a.json {
		out := partnerSearchJSON{Partner: resp.GetPartner(), RequestID: ans.GetRequestId(), Hit: ans.GetHit(), References: []referenceJSON{}}
		for _, r := range ans.GetReferences() {
			out.References = append(out.References, referenceJSON{r.GetReferenceId(), r.GetScore(), r.GetRank(), r.GetModality()})
		}
		return a.printJSON(out)
	}
	if !ans.GetHit() {
		fmt.Fprintf(a.stdout, "No hit at %s (request %s).\n", partner, ans.GetRequestId())
		return nil
	}
	t := newTable(a.stdout, "RANK", "REFERENCE", "SCORE", "MODALITY")
	for _, r := range ans.GetReferences() {
		t.row(fmt.Sprint(r.GetRank()), r.GetReferenceId(), fmt.Sprintf("%.3f", r.GetScore()), r.GetModality())
	}
	t.flush()
	fmt.Fprintf(a.stdout, "HIT at %s: %d reference(s) (request %s). An officer there confirms or rejects each;\n"+
		"then `watchlist federation request-data REFERENCE` asks for the core data.\n", partner, len(ans.GetReferences()), ans.GetRequestId())
	return nil
}

func (a *app) federationCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "federation",
		Short: "Hit/no-hit searches between agencies: review partners' references, ask partners for core data",
		Long: `Partner agencies search this gallery and get references, never names or photos.
An officer here confirms or rejects each (pending, confirm, reject); only a confirmed
reference releases the subject's core data to the partner that searched.
This agency searches partners with 'watchlist search --partner NAME' and asks for the
core data of a reference with 'request-data'.`,
	}
	cmd.AddCommand(a.fedPendingCmd(), a.fedReviewCmd(true), a.fedReviewCmd(false), a.fedRequestDataCmd(), a.fedSendHeadsCmd())
	return cmd
}

type issuedJSON struct {
	ReferenceID    string  `json:"reference_id"`
	Partner        string  `json:"partner"`
	RequestID      string  `json:"request_id"`
	Purpose        string  `json:"purpose,omitempty"`
	SubjectID      string  `json:"subject_id"`
	Name           string  `json:"name"`
	Score          float32 `json:"score"`
	Rank           uint32  `json:"rank"`
	Modality       string  `json:"modality"`
	State          string  `json:"state"`
	Created        string  `json:"created,omitempty"`
	Expires        string  `json:"expires,omitempty"`
	DataRequested  string  `json:"data_requested,omitempty"`
	Deadline       string  `json:"deadline,omitempty"`
	DeadlineMissed bool    `json:"deadline_missed"`
	ReviewedBy     string  `json:"reviewed_by,omitempty"`
	Reviewed       string  `json:"reviewed,omitempty"`
	Note           string  `json:"note,omitempty"`
	Released       string  `json:"released,omitempty"`
}

func tsText(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func toIssuedJSON(r *pb.IssuedReference) issuedJSON {
	return issuedJSON{
		ReferenceID: r.GetReferenceId(), Partner: r.GetPartner(), RequestID: r.GetRequestId(), Purpose: r.GetPurpose(),
		SubjectID: r.GetSubjectId(), Name: r.GetName(), Score: r.GetScore(), Rank: r.GetRank(), Modality: r.GetModality(),
		State: r.GetState(), Created: tsText(r.GetCreatedAt()), Expires: tsText(r.GetExpiresAt()), DataRequested: tsText(r.GetDataRequestedAt()),
		Deadline: tsText(r.GetDeadline()), DeadlineMissed: r.GetDeadlineMissed(), ReviewedBy: r.GetReviewedBy(),
		Reviewed: tsText(r.GetReviewedAt()), Note: r.GetNote(), Released: tsText(r.GetReleasedAt()),
	}
}

func (a *app) fedPendingCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "pending [--all]",
		Short: "References issued to partner agencies awaiting review (--all: also those reviewed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := fedCall(a, cmd.Context(), "", func(ctx context.Context, c pb.FederationClient) (*pb.ListPendingResponse, error) {
				return c.ListPending(ctx, &pb.ListPendingRequest{All: all})
			})
			if err != nil {
				return err
			}
			if a.json {
				out := struct {
					References []issuedJSON `json:"references"`
				}{References: []issuedJSON{}}
				for _, r := range resp.GetReferences() {
					out.References = append(out.References, toIssuedJSON(r))
				}
				return a.printJSON(out)
			}
			if len(resp.GetReferences()) == 0 {
				fmt.Fprintln(a.stdout, "No reference awaits review.")
				return nil
			}
			t := newTable(a.stdout, "REFERENCE", "PARTNER", "SUBJECT", "NAME", "SCORE", "STATE", "DATA REQUESTED", "DEADLINE")
			for _, r := range resp.GetReferences() {
				deadline := dash(tsText(r.GetDeadline()))
				if r.GetDeadlineMissed() {
					deadline += " MISSED"
				}
				t.row(r.GetReferenceId(), r.GetPartner(), r.GetSubjectId(), r.GetName(), fmt.Sprintf("%.3f", r.GetScore()), r.GetState(),
					dash(tsText(r.GetDataRequestedAt())), deadline)
			}
			t.flush()
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also the references already confirmed or rejected")
	return cmd
}

func (a *app) fedReviewCmd(confirm bool) *cobra.Command {
	var note string
	verb, short := "reject", "Reject a partner's reference: its core data is never released"
	if confirm {
		verb, short = "confirm", "Confirm a partner's reference after checking the match: its core data is released to that partner"
	}
	cmd := &cobra.Command{
		Use:   verb + " REFERENCE [--note TEXT]",
		Short: short,
		Args:  exactArgs(1, verb+" needs a REFERENCE id (watchlist federation pending lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := fedCall(a, cmd.Context(), args[0], func(ctx context.Context, c pb.FederationClient) (*pb.ReviewReferenceResponse, error) {
				return c.ReviewReference(ctx, &pb.ReviewReferenceRequest{ReferenceId: args[0], Confirm: confirm, Note: note})
			})
			if err != nil {
				return err
			}
			r := resp.GetReference()
			if a.json {
				return a.printJSON(toIssuedJSON(r))
			}
			fmt.Fprintf(a.stdout, "%s %s (partner %s, subject %s).\n", strings.ToUpper(r.GetState()[:1])+r.GetState()[1:], r.GetReferenceId(), r.GetPartner(), r.GetSubjectId())
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why (kept with the review and in the audit trail)")
	return cmd
}

type coreDataJSON struct {
	Partner     string   `json:"partner"`
	ReferenceID string   `json:"reference_id"`
	Name        string   `json:"name,omitempty"`
	DateOfBirth string   `json:"date_of_birth,omitempty"`
	Nationality string   `json:"nationality,omitempty"`
	Reasons     []string `json:"reasons"`
	ConfirmedAt string   `json:"confirmed_at,omitempty"`
}

func (a *app) fedRequestDataCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "request-data REFERENCE",
		Short: "Ask the partner agency that gave REFERENCE for the subject's core data (after its officer confirmed the match)",
		Long: `request-data asks the partner agency that answered a search with REFERENCE for the
subject's core data. The partner releases it once one of its officers confirmed the
match; until then the answer is "awaits review" (exit 4) and the partner's release
deadline runs; a rejected match is refused (exit 6).`,
		Args: exactArgs(1, "request-data needs a REFERENCE id a partner gave (watchlist search --partner)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := fedCall(a, cmd.Context(), args[0], func(ctx context.Context, c pb.FederationClient) (*pb.FetchCoreDataResponse, error) {
				return c.FetchCoreData(ctx, &pb.FetchCoreDataRequest{ReferenceId: args[0]})
			})
			if err != nil {
				return err
			}
			d := resp.GetData()
			cd := d.GetCoreData()
			out := coreDataJSON{Partner: resp.GetPartner(), ReferenceID: d.GetReferenceId(), Name: cd.GetName(), DateOfBirth: cd.GetDateOfBirth(),
				Nationality: cd.GetNationality(), Reasons: nonNil(cd.GetReasons()), ConfirmedAt: tsText(d.GetConfirmedAt())}
			if a.json {
				return a.printJSON(out)
			}
			t := newTable(a.stdout, "FIELD", "VALUE")
			t.row("partner", out.Partner)
			t.row("reference", out.ReferenceID)
			t.row("name", dash(out.Name))
			t.row("date of birth", dash(out.DateOfBirth))
			t.row("nationality", dash(out.Nationality))
			t.row("reason", dash(strings.Join(out.Reasons, ", ")))
			t.row("confirmed", dash(out.ConfirmedAt))
			t.flush()
			return nil
		},
	}
}

func (a *app) fedSendHeadsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "send-heads [PARTNER]",
		Short: "Admin: send this server's signed audit-chain head to the partners now (matchd also does every head_interval)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 1 {
				p = args[0]
			}
			resp, err := fedCall(a, cmd.Context(), p, func(ctx context.Context, c pb.FederationClient) (*pb.SendAuditHeadsResponse, error) {
				return c.SendAuditHeads(ctx, &pb.SendAuditHeadsRequest{Partner: p})
			})
			if err != nil {
				return err
			}
			failed := 0
			if a.json {
				if err := a.printJSON(resp.GetSent()); err != nil {
					return err
				}
			}
			for _, s := range resp.GetSent() {
				if s.GetError() != "" {
					failed++
				}
				if !a.json {
					if s.GetError() != "" {
						fmt.Fprintf(a.stdout, "%s: not sent: %s\n", s.GetPartner(), s.GetError())
					} else {
						fmt.Fprintf(a.stdout, "%s: head %d sent\n", s.GetPartner(), s.GetSeq())
					}
				}
			}
			if failed > 0 {
				return &exitError{code: ExitFailure, err: fmt.Errorf("%d of %d partner(s) did not take the head", failed, len(resp.GetSent()))}
			}
			return nil
		},
	}
}

// witnessCheck is `audit verify --witness PARTNER`: after the chain
// verified here, the heads PARTNER holds of it must be its records.
func (a *app) witnessCheck(parent context.Context, partner string, out map[string]any) error {
	res, err := fedCall(a, parent, partner, func(ctx context.Context, c pb.FederationClient) (*pb.VerifyWitnessResponse, error) {
		return c.VerifyWitness(ctx, &pb.VerifyWitnessRequest{Partner: partner})
	})
	if err != nil {
		return err
	}
	w := map[string]any{"partner": partner, "ok": res.GetOk(), "heads": res.GetHeads(), "matched": res.GetMatched(), "latest_seq": res.GetLatestSeq()}
	var mm []map[string]any
	for _, m := range res.GetMismatches() {
		mm = append(mm, map[string]any{"seq": m.GetSeq(), "witnessed_hash": hex.EncodeToString(m.GetWitnessedHash()),
			"local_hash": hex.EncodeToString(m.GetLocalHash()), "problem": m.GetProblem()})
	}
	w["mismatches"] = mm
	out["witness"] = w
	switch {
	case res.GetHeads() == 0:
		return a.verifyFailed(out, fmt.Errorf("witness %s holds no audit head of this server yet: nothing to check against (watchlist federation send-heads %s)", partner, partner))
	case len(res.GetMismatches()) > 0:
		return a.verifyFailed(out, fmt.Errorf("the audit chain is intact here but DIFFERS from what %s witnessed: %d of %d head(s) disagree; %s",
			partner, len(res.GetMismatches()), res.GetHeads(), res.GetMismatches()[0].GetProblem()))
	case !res.GetOk():
		return a.verifyFailed(out, errors.New("witness check failed"))
	}
	if !a.json {
		fmt.Fprintf(a.stdout, "Witness %s: %d head(s) held, all agree with this chain (latest record %d).\n", partner, res.GetHeads(), res.GetLatestSeq())
	}
	return nil
}
