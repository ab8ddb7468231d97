package watchlist

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// retemplateJSON is the stable JSON shape of `retemplate --json` and
// `retemplate status --json`.
type retemplateJSON struct {
	State            string                  `json:"state"`
	Algorithm        string                  `json:"algorithm,omitempty"`
	Phase            string                  `json:"phase,omitempty"`
	Total            int64                   `json:"total"`
	Done             int64                   `json:"done"`
	Templated        int64                   `json:"templated"`
	Failed           int64                   `json:"failed"`
	NeedReenrol      int64                   `json:"need_reenrol"`
	Cleaned          int64                   `json:"cleaned"`
	Failures         []retemplateFailureJSON `json:"failures"`
	NeedsReenrolment []string                `json:"needs_reenrolment"`
	Started          string                  `json:"started,omitempty"`
	Finished         string                  `json:"finished,omitempty"`
	Rate             float64                 `json:"rate"`
	Error            string                  `json:"error,omitempty"`
}

type retemplateFailureJSON struct {
	SubjectID string `json:"subject_id"`
	Reason    string `json:"reason"`
}

func toRetemplateJSON(s *pb.RetemplateStatusResponse) retemplateJSON {
	j := retemplateJSON{State: s.GetState(), Algorithm: s.GetAlgorithm(), Phase: s.GetPhase(), Total: s.GetTotal(), Done: s.GetDone(),
		Templated: s.GetTemplated(), Failed: s.GetFailed(), NeedReenrol: s.GetNeedReenrol(), Cleaned: s.GetCleaned(),
		Failures: []retemplateFailureJSON{}, NeedsReenrolment: nonNil(s.GetNeedsReenrolment()), Rate: s.GetRate(), Error: s.GetError()}
	for _, f := range s.GetFailures() {
		j.Failures = append(j.Failures, retemplateFailureJSON{f.GetSubjectId(), f.GetReason()})
	}
	if s.GetStartedAt() != nil {
		j.Started = s.GetStartedAt().AsTime().UTC().Format(time.RFC3339)
	}
	if s.GetFinishedAt() != nil {
		j.Finished = s.GetFinishedAt().AsTime().UTC().Format(time.RFC3339)
	}
	return j
}

// printRetemplate prints a job's status, readable or as JSON.
func (a *app) printRetemplate(s *pb.RetemplateStatusResponse) error {
	if a.json {
		return a.printJSON(toRetemplateJSON(s))
	}
	w := a.stdout
	if s.GetState() == "none" {
		fmt.Fprintln(w, "No re-templating job has run on this gallery.")
		return nil
	}
	fmt.Fprintf(w, "Re-templating to %s: %s", s.GetAlgorithm(), s.GetState())
	if s.GetState() != "done" {
		fmt.Fprintf(w, " (%s)", s.GetPhase())
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  subjects:  %d of %d done: %d templated, %d failed, %d need re-enrolment; %d cleaned of other algorithms\n",
		s.GetDone(), s.GetTotal(), s.GetTemplated(), s.GetFailed(), s.GetNeedReenrol(), s.GetCleaned())
	if s.GetStartedAt() != nil {
		fmt.Fprintf(w, "  started:   %s\n", s.GetStartedAt().AsTime().UTC().Format(time.RFC3339))
	}
	if s.GetFinishedAt() != nil {
		fmt.Fprintf(w, "  finished:  %s\n", s.GetFinishedAt().AsTime().UTC().Format(time.RFC3339))
	}
	if s.GetState() == "running" && s.GetRate() > 0 {
		fmt.Fprintf(w, "  rate:      %.1f subjects/s\n", s.GetRate())
	}
	if s.GetError() != "" {
		fmt.Fprintf(w, "  stopped:   %s\n", s.GetError())
	}
	if len(s.GetFailures()) > 0 {
		fmt.Fprintln(w, "Failed (kept their old templates):")
		for _, f := range s.GetFailures() {
			fmt.Fprintf(w, "  %s\t%s\n", f.GetSubjectId(), f.GetReason())
		}
	}
	if len(s.GetNeedsReenrolment()) > 0 {
		fmt.Fprintln(w, "Need re-enrolment (no kept photo):")
		for _, id := range s.GetNeedsReenrolment() {
			fmt.Fprintf(w, "  %s\n", id)
		}
	}
	return nil
}

func (a *app) retemplateCmd() *cobra.Command {
	var algorithm string
	var wait bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "retemplate --algorithm NAME [--wait]",
		Short: "Re-template the gallery with another face algorithm (admin)",
		Long: `retemplate starts re-templating the gallery in matchd with a loaded face
algorithm, from the photos kept with every subject (matchd --keep-samples),
while searches and enrolments go on. NAME is the algorithm as id/vN
(mobilefacenet-192/v1) or its id. With --wait (the default on a terminal) it
shows the progress until the job is done, and exits 1 if subjects failed;
without, it prints the job's status and returns. Running it again for the
same algorithm shows the running job; a job interrupted by a restart resumes
by itself. "retemplate status" shows the job.`,
		Args: exactArgs(0, "retemplate takes no arguments: give --algorithm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if algorithm == "" {
				return usageError("retemplate needs --algorithm NAME")
			}
			if !cmd.Flags().Changed("wait") {
				wait = isTerminal(a.stdout)
			}
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			st, err := c.Retemplate(ctx, &pb.RetemplateRequest{Algorithm: algorithm})
			cancel()
			if err != nil {
				return a.callError(err, "retemplate")
			}
			if wait {
				if st, err = a.waitRetemplate(cmd, c, st, every); err != nil {
					return err
				}
			}
			if err := a.printRetemplate(st); err != nil {
				return err
			}
			if wait && st.GetFailed() > 0 {
				return &exitError{code: ExitFailure, err: fmt.Errorf("retemplate: %d subjects failed", st.GetFailed())}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "the face `algorithm` to re-template with (id/vN or id)")
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until the job is done (default: on a terminal)")
	cmd.Flags().DurationVar(&every, "every", 5*time.Second, "with --wait and no terminal, print a progress line this often")
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the re-templating job (admin)",
		Args:  exactArgs(0, "retemplate status takes no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.admin()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			st, err := c.RetemplateStatus(ctx, &pb.RetemplateStatusRequest{})
			if err != nil {
				return a.callError(err, "retemplate")
			}
			return a.printRetemplate(st)
		},
	})
	return cmd
}

// waitRetemplate polls the job until it is no longer running: a bar on a
// terminal (stderr), else a line every `every`.
func (a *app) waitRetemplate(cmd *cobra.Command, c pb.AdminClient, st *pb.RetemplateStatusResponse, every time.Duration) (*pb.RetemplateStatusResponse, error) {
	terminal := isTerminal(a.stderr)
	barOut := io.Discard
	if terminal {
		barOut = a.stderr
	}
	bar := progressbar.NewOptions64(max(st.GetTotal(), 1),
		progressbar.OptionSetWriter(barOut),
		progressbar.OptionSetDescription("re-templating to "+st.GetAlgorithm()),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish())
	last := time.Now()
	for st.GetState() == "running" {
		select {
		case <-cmd.Context().Done():
			return nil, &exitError{code: ExitFailure, err: fmt.Errorf("stopped waiting (the job goes on in matchd): %w", cmd.Context().Err())}
		case <-time.After(500 * time.Millisecond):
		}
		ctx, cancel := a.ctx(cmd.Context())
		next, err := c.RetemplateStatus(ctx, &pb.RetemplateStatusRequest{})
		cancel()
		if err != nil {
			return nil, a.callError(err, "retemplate")
		}
		st = next
		if terminal {
			bar.ChangeMax64(max(st.GetTotal(), st.GetDone(), 1))
			bar.Describe(fmt.Sprintf("re-templating to %s (%s, %d failed)", st.GetAlgorithm(), st.GetPhase(), st.GetFailed()))
			bar.Set64(st.GetDone())
		} else if time.Since(last) >= every {
			last = time.Now()
			fmt.Fprintf(a.stderr, "re-templating to %s: %s, %d of %d done, %d failed, %.1f subjects/s\n",
				st.GetAlgorithm(), st.GetPhase(), st.GetDone(), st.GetTotal(), st.GetFailed(), st.GetRate())
		}
	}
	bar.Finish()
	return st, nil
}
