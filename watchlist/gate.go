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
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

func (a *app) gateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Gate cameras: their state, identify who stands at one, verify a passport holder",
	}
	cmd.AddCommand(a.gateStatusCmd(), a.gateIdentifyCmd(), a.gateVerifyCmd())
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
		Short: "Show each gate's camera and scanner state and counters",
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
			t := newTable(a.stdout, "GATE", "SOURCE", "STATE", "FRAMES", "DROPPED", "LAST FRAME", "CAPTURES", "NO FACE", "FAILED", "SCANNER", "SCANNER STATE", "FINGERS", "ERROR")
			for _, g := range resp.GetGates() {
				last := "-"
				if g.GetLastFrameTime() != nil {
					last = time.Since(g.GetLastFrameTime().AsTime()).Round(100*time.Millisecond).String() + " ago"
				}
				scanner, scanState, fingers, errs := "-", "-", "-", g.GetLastError()
				if g.GetScanner() != "" {
					scanner, scanState = g.GetScanner(), stateName(g.GetScannerState())
					if d := g.GetScannerDevice(); d != "" {
						scanState += " (" + d + ")"
					}
					fingers = fmt.Sprintf("%d/%d", g.GetFingersCaptured(), g.GetFingersCaptured()+g.GetFingersFailed())
					if e := g.GetScannerLastError(); e != "" {
						errs = strings.TrimPrefix(errs+"; scanner: "+e, "; ")
					}
				}
				t.row(g.GetGate(), g.GetSource(), stateName(g.GetState()), fmt.Sprint(g.GetFramesRead()), fmt.Sprint(g.GetFramesDropped()),
					last, fmt.Sprint(g.GetCapturesIdentified()), fmt.Sprint(g.GetCapturesNoFace()), fmt.Sprint(g.GetCapturesFailed()),
					scanner, scanState, fingers, errs)
			}
			t.flush()
			return nil
		},
	}
}

// saveShot writes a shot's image to --save-shot's file, if asked.
func saveShot(path string, sh *pb.Shot) error {
	if path == "" || len(sh.GetImage()) == 0 {
		return nil
	}
	if err := os.WriteFile(path, sh.GetImage(), 0o600); err != nil {
		return &exitError{code: ExitFailure, err: fmt.Errorf("--save-shot: %v", err)}
	}
	return nil
}

func stateName(s pb.SourceState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SOURCE_STATE_"))
}

func (a *app) gateIdentifyCmd() *cobra.Command {
	var (
		lists         []string
		top           int32
		wait          time.Duration
		fresh         bool
		save          string
		withFingers   bool
		fingerNames   []string
		fingerTimeout time.Duration
		noFace        bool
	)
	cmd := &cobra.Command{
		Use:   "identify GATE",
		Short: "Identify the traveller at a gate from its camera's best shot (and its scanner's fingers)",
		Long: `identify takes the best face the gate's camera saw in the last seconds and until
--wait, and searches the watchlists with it. It prints the shot's quality and the
candidates; --save-shot keeps the image that was searched.

With --fingers (the gate's configured fingers) or --finger POSITION (repeat), the
gate's scanner is read in the same session, each finger asked for in turn, and the
face and the fingers captured are searched together (fused); --no-face searches by
the fingers alone. Each finger's outcome is printed (captured with its quality, no
finger in time, bad scan, scanner not ready).`,
		Example: `  watchlist gate identify 3
  watchlist gate identify 3 --wait 5s --fresh --list interpol --save-shot shot.jpg
  watchlist gate identify 3 --fingers
  watchlist gate identify 3 --finger right-index --finger left-index --finger-timeout 15s
  watchlist gate identify 3 --no-face --finger right-index`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			positions, err := gateFingerPositions(fingerNames)
			if err != nil {
				return err
			}
			if noFace && !withFingers && len(positions) == 0 {
				return usageError("--no-face: give --fingers or --finger POSITION")
			}
			req := &pb.CaptureAndIdentifyRequest{
				Gate: args[0], Watchlists: lists, TopK: top, MaxWait: durationpb.New(wait),
				FreshFramesOnly: fresh, ReturnImage: save != "",
				CaptureFingers: withFingers, FingerPositions: positions, SkipFace: noFace,
			}
			req.FingerTimeout = optDuration(fingerTimeout)
			c, err := a.gates()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.CaptureAndIdentify(ctx, req)
			if err != nil {
				return a.gateError(err)
			}
			if err := saveShot(save, resp.GetShot()); err != nil {
				return err
			}
			if a.json {
				return a.printProtoJSON(resp)
			}
			a.printGateFingers(resp.GetFingers())
			res := resp.GetResult()
			if resp.GetOutcome() != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED {
				fmt.Fprintf(a.stdout, "Gate %s: %s.\n", resp.GetGate(), resp.GetDetail())
				return nil
			}
			if sh, q := resp.GetShot(), resp.GetShot().GetQuality(); res.GetProbeQuality() != nil {
				fmt.Fprintf(a.stdout, "Gate %s: shot from frame %d, quality %.2f (eyes %.0f px apart, sharpness %.0f, yaw %.0f°), %d of %d frames with a usable face, %v.\n",
					resp.GetGate(), sh.GetFrameSeq(), q.GetScore(), q.GetInterEyePixels(), q.GetSharpness(), q.GetYaw(),
					sh.GetFaceFrames(), sh.GetFramesAssessed(), resp.GetElapsed().AsDuration().Round(time.Millisecond))
			} else {
				fmt.Fprintf(a.stdout, "Gate %s: %s, %v.\n", resp.GetGate(), resp.GetDetail(), resp.GetElapsed().AsDuration().Round(time.Millisecond))
			}
			if len(res.GetCandidates()) == 0 {
				if r := res.GetRule(); r != "" {
					fmt.Fprintf(a.stdout, "No candidate passing %s (%d templates searched).\n", r, res.GetSearched())
				} else if res.GetFused() {
					fmt.Fprintf(a.stdout, "No candidate at or below FMR %.2g (%d templates searched).\n", res.GetMaxFmr(), res.GetSearched())
				} else {
					fmt.Fprintf(a.stdout, "No candidate at or above threshold %.3f (%d templates searched).\n", res.GetThreshold(), res.GetSearched())
				}
				return nil
			}
			if len(resp.GetFingers()) == 0 {
				t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "SCORE", "WATCHLISTS")
				for _, c := range res.GetCandidates() {
					t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.3f", c.GetScore()), strings.Join(c.GetWatchlists(), ","))
				}
				t.flush()
				return nil
			}
			t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "SCORE", "FACE", "FINGERS", "FUSED FMR", "WATCHLISTS")
			for _, c := range res.GetCandidates() {
				face := "-"
				if c.FaceScore != nil {
					face = fmt.Sprintf("%.3f", c.GetFaceScore())
				}
				var fs []string
				for _, f := range c.GetFingerScores() {
					if f.GetCompared() {
						fs = append(fs, fmt.Sprintf("%s %.3f", minutiae.Position(f.GetPosition()), f.GetScore()))
					}
				}
				fingers := strings.Join(fs, ", ")
				if fingers == "" {
					fingers = "-"
				}
				t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.3f", c.GetScore()), face, fingers,
					fmt.Sprintf("%.2g", c.GetFusedFmr()), strings.Join(c.GetWatchlists(), ","))
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
	f.BoolVar(&withFingers, "fingers", false, "capture the gate's configured fingers from its scanner too")
	f.StringArrayVar(&fingerNames, "finger", nil, "capture this finger from the gate's scanner (`POSITION`: right-index, left-thumb …; repeat, in order)")
	f.DurationVar(&fingerTimeout, "finger-timeout", 0, "how long to wait for each finger (0: the gate's, 10s unless configured; at most 1m)")
	f.BoolVar(&noFace, "no-face", false, "do not watch the camera: identify by the fingers alone")
	return cmd
}

// gateFingerPositions reads --finger values.
func gateFingerPositions(names []string) ([]pb.FingerPosition, error) {
	var positions []pb.FingerPosition
	for _, n := range names {
		p, ok := minutiae.ParsePosition(strings.ToLower(n))
		if !ok || p == minutiae.PositionUnknown {
			return nil, usageError("--finger %q: not a finger position (right-thumb … right-little, left-thumb … left-little, or 1-10)", n)
		}
		positions = append(positions, pb.FingerPosition(p))
	}
	return positions, nil
}

// printGateFingers prints what the scanner gave for each finger.
func (a *app) printGateFingers(fs []*pb.FingerCapture) {
	for _, f := range fs {
		outcome := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(f.GetOutcome().String(), "FINGER_CAPTURE_OUTCOME_")), "_", " ")
		fmt.Fprintf(a.stdout, "Finger %s: %s: %s.\n", minutiae.Position(f.GetPosition()), outcome, f.GetDetail())
	}
}

// passiveAuths are --passive-auth's values.
var passiveAuths = map[string]pb.PassiveAuthentication{
	"":              pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_UNSPECIFIED,
	"passed":        pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_PASSED,
	"failed":        pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_FAILED,
	"not-performed": pb.PassiveAuthentication_PASSIVE_AUTHENTICATION_NOT_PERFORMED,
}

func (a *app) gateVerifyCmd() *cobra.Command {
	var (
		dg2, photo, pa, save string
		lists                []string
		top                  int32
		wait                 time.Duration
		fresh, skip          bool
		withFingers          bool
		fingerNames          []string
		fingerTimeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify GATE --dg2 FILE",
		Short: "The e-gate transaction: the traveller at a gate against the passport's chip photo, and the watchlists",
		Long: `verify takes the best face the gate's camera sees, compares it with the passport's
photo (1:1) and searches the watchlists with it (1:N), in one call. The passport's
photo is the chip's DG2 as read (--dg2; a bare ISO/IEC 19794-5 or 39794-5 face
record is taken too) or a photo file (--photo). --passive-auth states what the
gate controller found when it checked the chip's signature; it is recorded in the
audit trail. The answer is CLEAR only when the holder is verified, passive
authentication passed and no watchlist candidate passed the decision.`,
		Example: `  watchlist gate verify 3 --dg2 Datagroup2.bin --passive-auth passed
  watchlist gate verify 3 --dg2 ef0102.bin --list interpol --fresh --json
  watchlist gate verify 3 --dg2 Datagroup2.bin --passive-auth passed --fingers`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			positions, err := gateFingerPositions(fingerNames)
			if err != nil {
				return err
			}
			auth, ok := passiveAuths[pa]
			if !ok {
				return usageError("--passive-auth %q: use passed, failed or not-performed", pa)
			}
			var ref *pb.Sample
			switch {
			case (dg2 == "") == (photo == ""):
				return usageError("give the passport's photo: --dg2 FILE (the chip's DG2) or --photo FILE")
			case dg2 != "":
				b, err := os.ReadFile(dg2)
				if err != nil {
					return &exitError{code: ExitBadInput, err: fmt.Errorf("cannot read --dg2: %v", err)}
				}
				ref = &pb.Sample{Kind: &pb.Sample_FaceRecord{FaceRecord: b}}
			default:
				img, err := readPhoto(photo)
				if err != nil {
					return err
				}
				ref = &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: img}}
			}
			c, err := a.gates()
			if err != nil {
				return err
			}
			ctx, cancel := a.ctx(cmd.Context())
			defer cancel()
			resp, err := c.CaptureAndVerify(ctx, &pb.CaptureAndVerifyRequest{
				Gate: args[0], Reference: ref, PassiveAuth: auth, Watchlists: lists, SkipWatchlists: skip, TopK: top,
				MaxWait: durationpb.New(wait), FreshFramesOnly: fresh, ReturnImage: save != "",
				CaptureFingers: withFingers, FingerPositions: positions, FingerTimeout: optDuration(fingerTimeout),
			})
			if err != nil {
				return a.gateError(err)
			}
			if err := saveShot(save, resp.GetShot()); err != nil {
				return err
			}
			if a.json {
				return a.printProtoJSON(resp)
			}
			a.printGateVerify(resp)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dg2, "dg2", "", "the chip's DG2 (EF.DG2 as read, or a bare face record) `FILE`")
	f.StringVar(&photo, "photo", "", "a photo `FILE` of the passport holder, instead of --dg2")
	f.StringVar(&pa, "passive-auth", "", "the chip's passive authentication: passed, failed or not-performed")
	f.StringSliceVar(&lists, "list", nil, "search only these watchlists (repeat or comma-separate)")
	f.BoolVar(&skip, "no-watchlists", false, "compare with the passport only (no watchlist search)")
	f.Int32Var(&top, "top", 10, "most candidates to show (1-100)")
	f.DurationVar(&wait, "wait", 3*time.Second, "how long to watch for a good face (at most 30s)")
	f.BoolVar(&fresh, "fresh", false, "use only frames from now on (not the last seconds)")
	f.StringVar(&save, "save-shot", "", "write the compared image (JPEG) to `FILE`")
	f.BoolVar(&withFingers, "fingers", false, "capture the gate's configured fingers too, for the watchlist search")
	f.StringArrayVar(&fingerNames, "finger", nil, "capture this finger for the watchlist search (`POSITION`; repeat, in order)")
	f.DurationVar(&fingerTimeout, "finger-timeout", 0, "how long to wait for each finger (0: the gate's)")
	return cmd
}

// optDuration is d, or nil for 0.
func optDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func (a *app) printGateVerify(resp *pb.CaptureAndVerifyResponse) {
	a.printGateFingers(resp.GetFingers())
	if resp.GetOutcome() != pb.CaptureOutcome_CAPTURE_OUTCOME_IDENTIFIED {
		fmt.Fprintf(a.stdout, "Gate %s: %s.\nREFER TO AN OFFICER: no face to compare.\n", resp.GetGate(), resp.GetDetail())
		return
	}
	sh, q := resp.GetShot(), resp.GetShot().GetQuality()
	fmt.Fprintf(a.stdout, "Gate %s: shot from frame %d, quality %.2f (eyes %.0f px apart, sharpness %.0f, yaw %.0f°), %v.\n",
		resp.GetGate(), sh.GetFrameSeq(), q.GetScore(), q.GetInterEyePixels(), q.GetSharpness(), q.GetYaw(),
		resp.GetElapsed().AsDuration().Round(time.Millisecond))
	v := resp.GetVerification()
	if rec := v.GetReferenceRecord(); rec != nil {
		fmt.Fprintf(a.stdout, "Passport photo: %s (%s), %s %d×%d", rec.GetContainer(), rec.GetFormat(), rec.GetImageType(), rec.GetWidth(), rec.GetHeight())
		if rec.GetFaces() > 1 {
			fmt.Fprintf(a.stdout, ", first of %d faces", rec.GetFaces())
		}
		fmt.Fprintln(a.stdout, ".")
	}
	verdict := "NOT the holder"
	if v.GetMatch() {
		verdict = "the holder"
	}
	rule := fmt.Sprintf("threshold %.3f", v.GetThreshold())
	if v.GetFused() {
		rule = fmt.Sprintf("FMR %.2g, at most %.2g", v.GetFusedFmr(), v.GetMaxFmr())
	}
	if r := v.GetRule(); r != "" {
		// The server's own rule, with the number it was decided on.
		if v.GetFused() {
			rule = fmt.Sprintf("%s: fused FMR %.2g", r, v.GetFusedFmr())
		} else {
			rule = fmt.Sprintf("%s: face FMR %.2g", r, v.GetFaceFmr())
		}
	}
	fmt.Fprintf(a.stdout, "1:1: %s (score %.3f, %s).\n", verdict, v.GetScore(), rule)
	fmt.Fprintf(a.stdout, "Passive authentication: %s.\n", passiveAuthName(resp.GetPassiveAuth()))
	id := resp.GetIdentification()
	switch {
	case id == nil:
		fmt.Fprintln(a.stdout, "Watchlists: not searched.")
	case len(id.GetCandidates()) == 0:
		fmt.Fprintf(a.stdout, "Watchlists: no hit (%d templates searched).\n", id.GetSearched())
	default:
		fmt.Fprintf(a.stdout, "Watchlists: %d candidates.\n", len(id.GetCandidates()))
		t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "SCORE", "WATCHLISTS")
		for _, c := range id.GetCandidates() {
			t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.3f", c.GetScore()), strings.Join(c.GetWatchlists(), ","))
		}
		t.flush()
	}
	if resp.GetClear() {
		fmt.Fprintln(a.stdout, "CLEAR: holder verified, chip authenticated, no watchlist hit.")
	} else {
		fmt.Fprintf(a.stdout, "REFER TO AN OFFICER: %s.\n", resp.GetDetail())
	}
}

func passiveAuthName(p pb.PassiveAuthentication) string {
	for k, v := range passiveAuths {
		if v == p && k != "" {
			return k
		}
	}
	return "not stated"
}
