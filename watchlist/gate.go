package watchlist

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

func (a *app) gateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Gate cameras: their state, and identify who stands at one",
	}
	cmd.AddCommand(a.gateStatusCmd(), a.gateIdentifyCmd())
	return cmd
}

func (a *app) gates() (pb.GatesClient, error) {
	if _, err := a.dial(); err != nil {
		return nil, err
	}
	return pb.NewGatesClient(a.conn), nil
}

// gateError is callError for the gate RPCs: Unavailable names a gate's
// camera, not matchd, when the server says so.
func (a *app) gateError(err error) error {
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), "gate ") {
		return &exitError{code: ExitUnavailable, err: fmt.Errorf("%s", st.Message()), rpc: st.Code()}
	}
	return a.callError(err, "")
}

func (a *app) printProtoJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

func (a *app) gateStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [GATE...]",
		Short: "Show each gate's camera state and counters",
		Example: `  watchlist gate status
  watchlist gate status 3 --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.gates()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.GateStatus(ctx, &pb.GateStatusRequest{Gates: args})
			if err != nil {
				return a.gateError(err)
			}
			if a.json {
				return a.printProtoJSON(resp)
			}
			if len(resp.GetGates()) == 0 {
				fmt.Fprintln(a.stdout, "No gates configured (matchd --gates FILE or --gate ID=SOURCE).")
				return nil
			}
			t := newTable(a.stdout, "GATE", "SOURCE", "STATE", "FRAMES", "DROPPED", "LAST FRAME", "CAPTURES", "NO FACE", "FAILED", "ERROR")
			for _, g := range resp.GetGates() {
				last := "-"
				if g.GetLastFrameTime() != nil {
					last = time.Since(g.GetLastFrameTime().AsTime()).Round(100*time.Millisecond).String() + " ago"
				}
				t.row(g.GetGate(), g.GetSource(), stateName(g.GetState()), fmt.Sprint(g.GetFramesRead()), fmt.Sprint(g.GetFramesDropped()),
					last, fmt.Sprint(g.GetCapturesIdentified()), fmt.Sprint(g.GetCapturesNoFace()), fmt.Sprint(g.GetCapturesFailed()), g.GetLastError())
			}
			t.flush()
			return nil
		},
	}
}

func stateName(s pb.SourceState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SOURCE_STATE_"))
}

func (a *app) gateIdentifyCmd() *cobra.Command {
	var (
		lists []string
		top   int32
		wait  time.Duration
		fresh bool
		save  string
	)
	cmd := &cobra.Command{
		Use:   "identify GATE",
		Short: "Identify the traveller at a gate from its camera's best shot",
		Long: `identify takes the best face the gate's camera saw in the last seconds and until
--wait, and searches the watchlists with it. It prints the shot's quality and the
candidates; --save-shot keeps the image that was searched.`,
		Example: `  watchlist gate identify 3
  watchlist gate identify 3 --wait 5s --fresh --list interpol --save-shot shot.jpg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.gates()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.CaptureAndIdentify(ctx, &pb.CaptureAndIdentifyRequest{
				Gate: args[0], Watchlists: lists, TopK: top, MaxWait: durationpb.New(wait),
				FreshFramesOnly: fresh, ReturnImage: save != "",
			})
			if err != nil {
				return a.gateError(err)
			}
			if save != "" && len(resp.GetShot().GetImage()) > 0 {
				if err := os.WriteFile(save, resp.GetShot().GetImage(), 0o600); err != nil {
					return &exitError{code: ExitFailure, err: fmt.Errorf("--save-shot: %v", err)}
				}
			}
			if a.json {
				return a.printProtoJSON(resp)
			}
			if resp.GetOutcome() != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED {
				fmt.Fprintf(a.stdout, "Gate %s: %s.\n", resp.GetGate(), resp.GetDetail())
				return nil
			}
			sh, q := resp.GetShot(), resp.GetShot().GetQuality()
			fmt.Fprintf(a.stdout, "Gate %s: shot from frame %d, quality %.2f (eyes %.0f px apart, sharpness %.0f, yaw %.0f°), %d of %d frames with a usable face, %v.\n",
				resp.GetGate(), sh.GetFrameSeq(), q.GetScore(), q.GetInterEyePixels(), q.GetSharpness(), q.GetYaw(),
				sh.GetFaceFrames(), sh.GetFramesAssessed(), resp.GetElapsed().AsDuration().Round(time.Millisecond))
			res := resp.GetResult()
			if len(res.GetCandidates()) == 0 {
				fmt.Fprintf(a.stdout, "No candidate at or above threshold %.3f (%d templates searched).\n", res.GetThreshold(), res.GetSearched())
				return nil
			}
			t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "SCORE", "WATCHLISTS")
			for _, c := range res.GetCandidates() {
				t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.3f", c.GetScore()), strings.Join(c.GetWatchlists(), ","))
			}
			t.flush()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&lists, "list", nil, "search only these watchlists (repeat or comma-separate)")
	f.Int32Var(&top, "top", 10, "most candidates to show (1-100)")
	f.DurationVar(&wait, "wait", 3*time.Second, "how long to watch for a good face (at most 30s)")
	f.BoolVar(&fresh, "fresh", false, "use only frames from now on (not the last seconds)")
	f.StringVar(&save, "save-shot", "", "write the searched image (JPEG) to `FILE`")
	return cmd
}
