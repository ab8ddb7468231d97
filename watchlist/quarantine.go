package watchlist

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *app) quarantineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quarantine list|remove",
		Short: "List or remove the subjects matchd could not index (admin)",
		Long: `quarantine lists the stored subjects matchd left out of its search indexes
when it loaded the gallery (at start or after a restore): a template that
does not decode, or holds values no extractor makes (a zero vector, an
absurd norm, implausible minutiae), as a damaged disk or an older version
leaves. They are never searched. "quarantine remove ID" deletes one while
matchd runs; enrol the person again afterwards.`,
		Args: exactArgs(0, "quarantine needs a subcommand: list or remove ID"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the quarantined subjects and why (admin)",
		Args:  exactArgs(0, "quarantine list takes no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.ListQuarantine(ctx, &pb.ListQuarantineRequest{})
			if err != nil {
				return a.callError(err, "quarantine")
			}
			type entry struct {
				SubjectID string    `json:"subject_id"`
				Reason    string    `json:"reason"`
				Since     time.Time `json:"since"`
			}
			out := []entry{}
			for _, q := range resp.GetSubjects() {
				out = append(out, entry{q.GetSubjectId(), q.GetReason(), q.GetSince().AsTime()})
			}
			if a.json {
				return a.printJSON(map[string]any{"quarantined": out})
			}
			if len(out) == 0 {
				fmt.Fprintln(a.stdout, "No quarantined subjects.")
				return nil
			}
			t := newTable(a.stdout, "SUBJECT", "SINCE", "REASON")
			for _, q := range out {
				t.row(q.SubjectID, q.Since.Local().Format(time.DateTime), q.Reason)
			}
			t.flush()
			return nil
		},
	}, &cobra.Command{
		Use:   "remove ID",
		Short: "Delete a quarantined subject from the gallery (admin)",
		Args:  exactArgs(1, "quarantine remove needs the subject ID (see quarantine list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.RemoveQuarantined(ctx, &pb.RemoveQuarantinedRequest{SubjectId: args[0]})
			if err != nil {
				return a.callError(err, "quarantine remove "+args[0])
			}
			if a.json {
				return a.printJSON(map[string]any{"removed": resp.GetSubjectId()})
			}
			fmt.Fprintf(a.stdout, "Removed quarantined subject %s; enrol the person again to make them searchable.\n", resp.GetSubjectId())
			return nil
		},
	})
	return cmd
}
