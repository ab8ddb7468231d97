package watchlist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// readPhoto reads a photo file, with the file name in any error.
func readPhoto(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("cannot read photo: %v", err)}
	}
	if len(b) == 0 {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("%s is empty", path)}
	}
	return b, nil
}

func (a *app) searchCmd() *cobra.Command {
	var (
		photo      string
		fingerArgs []string
		dpi        int32
		lists      []string
		top        int32
		threshold  float32
		maxFMR     float64
		largest    bool
		nistPath   string
		partner    string
		purpose    string
	)
	cmd := &cobra.Command{
		Use:   "search [--photo FILE] [--finger POSITION=FILE ...] [--nist FILE]",
		Short: "Search the watchlists with a photo and/or fingerprints (1:N)",
		Long: `search looks the traveller up in the watchlists by a photo, by fingerprints, or
by both. A photo alone is decided on its face score against the server's
threshold (or --threshold). With fingerprints, every modality's score is turned
into a false-match rate (FMR) and the rates are fused; a candidate is shown when
its fused FMR is at most the server's --max-fmr (or this command's), and FUSED
is -log10 of it (3: one impostor in a thousand would score as high).

A fingerprint file is an image (PNG, TIFF, BMP, JPEG or WSQ; --dpi if the file
does not say and it is not 500 dpi) or an ISO/IEC 19794-2 or ANSI INCITS 378
minutiae record.

--nist FILE searches with an ANSI/NIST-ITL transaction (an INT-I CPS or EBTS
TPIS tenprint, traditional encoding): its first face (Type-10) is the photo
unless --photo is given, and its fingers (Types 4 and 14, Type-9 minutiae) are
searched with any --finger. The file is checked here first: a malformed one is
refused naming the record, field and byte.`,
		Example: `  watchlist search --photo traveller.jpg
  watchlist search --nist tenprint.an2 --list interpol
  watchlist search --photo traveller.jpg --list interpol --top 5 --json
  watchlist search --finger right-index=scan.png --finger left-index=l.wsq
  watchlist search --photo gate.jpg --finger right-index=scan.png --dpi 569
  watchlist search --partner agency-b --photo traveller.jpg --purpose "case 2026/117"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, err := parseFingers(fingerArgs)
			if err != nil {
				return err
			}
			if photo == "" && len(fs) == 0 && nistPath == "" {
				return usageError("search: give --photo, --finger, --nist, or several of them")
			}
			var nf *nistFile
			if nistPath != "" {
				if nf, err = readNIST(nistPath); err != nil {
					return err
				}
			}
			for _, f := range []string{"list", "threshold", "max-fmr", "largest-face"} {
				if partner != "" && cmd.Flags().Changed(f) {
					return usageError("search --partner: --%s is not for a partner's gallery (it decides by its own threshold)", f)
				}
			}
			req := &pb.IdentifyRequest{
				Watchlists:      lists,
				TopK:            top,
				TakeLargestFace: largest,
			}
			var files []string // the probe's files, for error messages
			if photo != "" {
				img, err := readPhoto(photo)
				if err != nil {
					return err
				}
				req.Probe = &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: img}}
				files = append(files, photo)
			}
			for _, f := range fs {
				s, err := fingerSample(f, dpi)
				if err != nil {
					return err
				}
				req.Fingers = append(req.Fingers, s)
				files = append(files, f.file)
			}
			if nf != nil {
				req.NistTransaction = nf.data
			}
			if partner != "" {
				// Another agency's gallery: references and scores only.
				var n uint32
				if cmd.Flags().Changed("top") {
					n = uint32(max(top, 0))
				}
				if nf != nil {
					files = append(files, nistPath)
				}
				return a.searchPartner(cmd, partner, purpose, req.Probe, req.Fingers, req.NistTransaction, n, strings.Join(files, ", "))
			}
			if cmd.Flags().Changed("threshold") {
				req.Threshold = &threshold
			}
			if cmd.Flags().Changed("max-fmr") {
				req.MaxFmr = &maxFMR
			}
			resp, err := call(a, cmd.Context(), func(err error) string {
				if status.Code(err) == codes.NotFound {
					return "" // a watchlist, which the message names
				}
				if nf != nil && (nistError(err) || photo == "" && len(fs) == 0) {
					return nistPath
				}
				return probeFile(err, photo, fs)
			}, func(ctx context.Context, c pb.MatcherClient) (*pb.IdentifyResponse, error) {
				return c.Identify(ctx, req)
			})
			if ee := (*exitError)(nil); errors.As(err, &ee) && !largest && strings.Contains(ee.Error(), "several faces") {
				ee.err = fmt.Errorf("%w (--largest-face searches with the largest)", ee.err)
			}
			if err != nil {
				return err
			}
			if a.json {
				out := searchJSON{Candidates: []candidateJSON{}, Threshold: resp.GetThreshold(), Searched: resp.GetSearched(),
					Fused: resp.GetFused(), MaxFMR: resp.GetMaxFmr(), FusedThreshold: resp.GetFusedThreshold(), Rule: resp.GetRule()}
				if nf != nil {
					out.NIST = toNISTUseJSON(nistPath, resp.GetNist())
				}
				for _, c := range resp.GetCandidates() {
					out.Candidates = append(out.Candidates, toCandidateJSON(c))
				}
				return a.printJSON(out)
			}
			decision := fmt.Sprintf("at or above threshold %.3f", resp.GetThreshold())
			if resp.GetFused() {
				decision = fmt.Sprintf("with fused FMR at most %.3g (fused score %.2f or more)", resp.GetMaxFmr(), resp.GetFusedThreshold())
			}
			if r := resp.GetRule(); r != "" {
				decision = "passing " + r // the server's own statement of the rule
			}
			if nf != nil {
				defer fmt.Fprintln(a.stdout, nistProbeText(nistPath, resp.GetNist()))
			}
			if len(resp.GetCandidates()) == 0 {
				fmt.Fprintf(a.stdout, "No candidate %s (%d templates searched).\n", decision, resp.GetSearched())
				return nil
			}
			if !resp.GetFused() {
				t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "SCORE", "FMR", "WATCHLISTS")
				for _, c := range resp.GetCandidates() {
					// The candidate's own face FMR (decision_fmr is the
					// threshold's under a cosine rule, the same for all).
					fmr := "-"
					if c.FaceFmr != nil {
						fmr = fmt.Sprintf("%.2g", c.GetFaceFmr())
					}
					t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.3f", c.GetScore()), fmr, strings.Join(c.GetWatchlists(), ","))
				}
				t.flush()
			} else {
				t := newTable(a.stdout, "RANK", "SUBJECT", "NAME", "FUSED", "FMR", "FACE", "FINGERS", "WATCHLISTS")
				for _, c := range resp.GetCandidates() {
					face := "-"
					if c.FaceScore != nil {
						face = fmt.Sprintf("%.3f", c.GetFaceScore())
					}
					t.row(fmt.Sprint(c.GetRank()), c.GetSubjectId(), c.GetName(), fmt.Sprintf("%.2f", c.GetFusedScore()),
						fmt.Sprintf("%.2g", c.GetFusedFmr()), face, fingerScoresText(c.GetFingerScores()), strings.Join(c.GetWatchlists(), ","))
				}
				t.flush()
			}
			fmt.Fprintf(a.stdout, "%d candidate(s) %s; %d templates searched.\n", len(resp.GetCandidates()), decision, resp.GetSearched())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&photo, "photo", "", "photo of the traveller (JPEG or PNG)")
	f.StringArrayVar(&fingerArgs, "finger", nil, "fingerprint `POSITION=FILE` (right-index=scan.png; repeat, one per finger)")
	f.Int32Var(&dpi, "dpi", 0, "resolution of the fingerprint images (default: what the file says, else 500)")
	f.Float64Var(&maxFMR, "max-fmr", 0, "decision threshold as a false-match rate on the fused scale (default: the server's)")
	f.StringSliceVar(&lists, "list", nil, "search only these watchlists (repeat or comma-separate)")
	f.Int32Var(&top, "top", 10, "most candidates to show (1-100)")
	f.Float32Var(&threshold, "threshold", 0, "decision threshold on the face score, for a photo alone (default: the server's)")
	f.BoolVar(&largest, "largest-face", false, "with several faces in the photo, use the largest")
	f.StringVar(&nistPath, "nist", "", "ANSI/NIST-ITL transaction to search with (.an2, .eft, …: its faces and fingers)")
	f.StringVar(&partner, "partner", "", "search this partner agency instead (hit/no-hit: references and scores only; see watchlist federation)")
	f.StringVar(&purpose, "purpose", "", "with --partner: why (legal basis, case number), recorded on both sides")
	return cmd
}

func (a *app) addCmd() *cobra.Command {
	var (
		id, name   string
		photos     []string
		fingerArgs []string
		dpi        int32
		lists      []string
		meta       []string
		nistPath   string
	)
	cmd := &cobra.Command{
		Use:   "add --id ID --name NAME [--photo FILE ...] [--finger POSITION=FILE ...] [--nist FILE] --list NAME",
		Short: "Enrol a subject with photos and/or fingerprints",
		Long: `add enrols a subject with up to 16 photos and up to 10 fingerprints. A
fingerprint file is an image (PNG, TIFF, BMP, JPEG or WSQ) or an ISO/IEC
19794-2 / ANSI INCITS 378 minutiae record; images under the server's quality
floor are refused with their quality.

--nist FILE enrols an ANSI/NIST-ITL transaction (an INT-I or EBTS tenprint,
traditional encoding): its faces (Type-10) and fingers (Types 4 and 14; Type-9
minutiae for a finger without an image), with any --photo and --finger given
too. --id defaults to the transaction's reference in Type-2 (INT-I 2.007 SCN,
EBTS 2.009 OCA), then its TCN (1.009); --name and --meta default to what the
server reads from Type-2. The file is checked here first: a malformed one is
refused naming the record, field and byte.`,
		Example: `  watchlist add --id P1234 --name "Jane Roe" --photo jane1.jpg --photo jane2.jpg --list interpol --meta nationality=XX
  watchlist add --id P1235 --name "John Roe" --finger right-index=r.png --finger left-index=l.wsq --list interpol
  watchlist add --id P1236 --photo p.jpg --finger right-thumb=thumb.iso --list interpol
  watchlist add --nist tenprint.an2 --list interpol`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, err := parseFingers(fingerArgs)
			if err != nil {
				return err
			}
			var nf *nistFile
			if nistPath != "" {
				if nf, err = readNIST(nistPath); err != nil {
					return err
				}
				if id == "" {
					if id = nf.defaultID(); id == "" {
						return usageError("add: %s has no reference in Type-2 and no TCN (1.009): give --id", nistPath)
					}
				}
			}
			if id == "" || len(photos)+len(fs) == 0 && nf == nil {
				return usageError("add: --id and at least one --photo, --finger or --nist are required")
			}
			md, err := parseMeta(meta)
			if err != nil {
				return err
			}
			resp, err := a.enroll(cmd.Context(), enrolment{id: id, name: name, lists: lists, meta: md, photos: photos, fingers: fs, dpi: dpi, nist: nf})
			if err != nil {
				return err
			}
			sub := resp.GetSubject()
			if a.json {
				out := addJSON{subjectJSON: toSubjectJSON(sub)}
				if nf != nil {
					out.NIST = toNISTUseJSON(nistPath, resp.GetNist())
				}
				return a.printJSON(out)
			}
			if nf == nil {
				fmt.Fprintf(a.stdout, "Added %s (%s) to %s with %s.\n", sub.GetId(), sub.GetName(), listNames(sub.GetWatchlists()), samplesText(len(photos), len(fs)))
				return nil
			}
			u := resp.GetNist()
			total := samplesText(len(photos)+int(u.GetFaces()), len(fs)+int(u.GetFingers()))
			from := "from " + nistSource(nistPath, u)
			if len(photos)+len(fs) > 0 {
				from = samplesText(int(u.GetFaces()), int(u.GetFingers())) + " of them " + from
				if u.GetFaces()+u.GetFingers() == 0 {
					from = "none of them " + "from " + nistSource(nistPath, u)
				}
				from = ", " + from
			} else {
				from = " " + from
			}
			if total == "" {
				total = "no sample"
			}
			fmt.Fprintf(a.stdout, "Added %s (%s) to %s with %s%s%s.\n", sub.GetId(), sub.GetName(), listNames(sub.GetWatchlists()), total, from, skippedText(u))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "subject id (letters, digits, . _ : @ -)")
	f.StringVar(&name, "name", "", "display name")
	f.StringArrayVar(&photos, "photo", nil, "photo with exactly one face (repeat for more)")
	f.StringArrayVar(&fingerArgs, "finger", nil, "fingerprint `POSITION=FILE` (right-index=scan.png; repeat, up to 10)")
	f.Int32Var(&dpi, "dpi", 0, "resolution of the fingerprint images (default: what the file says, else 500)")
	f.StringSliceVar(&lists, "list", nil, "watchlist(s) to put the subject on")
	f.StringArrayVar(&meta, "meta", nil, "metadata key=value (repeat)")
	f.StringVar(&nistPath, "nist", "", "ANSI/NIST-ITL transaction to enrol (.an2, .eft, …: its faces, fingers and Type-2)")
	return cmd
}

func parseMeta(kv []string) (map[string]string, error) {
	if len(kv) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kv))
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageError("--meta %q: want key=value", s)
		}
		m[k] = v
	}
	return m, nil
}

func listNames(l []string) string {
	if len(l) == 0 {
		return "no watchlist"
	}
	return strings.Join(l, ", ")
}

func samplesText(photos, fingers int) string {
	var parts []string
	if photos > 0 {
		parts = append(parts, fmt.Sprintf("%d photo(s)", photos))
	}
	if fingers > 0 {
		parts = append(parts, fmt.Sprintf("%d finger(s)", fingers))
	}
	return strings.Join(parts, " and ")
}

// enrolment is what one Enroll call sends.
type enrolment struct {
	id, name string
	lists    []string
	meta     map[string]string
	photos   []string
	fingers  []fingerArg
	dpi      int32
	// nist, when not nil, is sent as nist_transaction.
	nist *nistFile
}

// addJSON is the JSON shape of add: the subject, and with --nist what the
// server took from the transaction.
type addJSON struct {
	subjectJSON
	NIST *nistUseJSON `json:"nist,omitempty"`
}

// enroll sends one Enroll call; errors name the file that caused them.
func (a *app) enroll(parent context.Context, e enrolment) (*pb.EnrollResponse, error) {
	photos, fingers, dpi := e.photos, e.fingers, e.dpi
	req := &pb.EnrollRequest{SubjectId: e.id, Name: e.name, Watchlists: e.lists, Metadata: e.meta}
	if e.nist != nil {
		req.NistTransaction = e.nist.data
	}
	for _, p := range photos {
		img, err := readPhoto(p)
		if err != nil {
			return nil, err
		}
		req.Samples = append(req.Samples, &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: img}})
	}
	files := append([]string(nil), photos...)
	for _, f := range fingers {
		s, err := fingerSample(f, dpi)
		if err != nil {
			return nil, err
		}
		req.Samples = append(req.Samples, &pb.Sample{Kind: &pb.Sample_Finger{Finger: s}})
		files = append(files, f.file)
	}
	subject := func(err error) string {
		if e.nist == nil {
			return samplePhoto(err, files)
		}
		if f := sampleNamed(err, files); f != "" {
			return f
		}
		if nistError(err) || len(files) == 0 {
			return e.nist.path
		}
		return samplePhoto(err, files)
	}
	return call(a, parent, subject, func(ctx context.Context, c pb.MatcherClient) (*pb.EnrollResponse, error) {
		return c.Enroll(ctx, req)
	})
}

// sampleNamed is the file of the "sample N" a server error names, "" if
// it names none.
func sampleNamed(err error, files []string) string {
	msg := err.Error()
	for i := len(files); i >= 1; i-- {
		if strings.Contains(msg, fmt.Sprintf("sample %d:", i)) || strings.Contains(msg, fmt.Sprintf("sample %d (", i)) {
			return files[i-1]
		}
	}
	return ""
}

// probeFile finds which file of a search a server error is about: the
// server names the probe "probe" and its fingers "probe finger N".
func probeFile(err error, photo string, fingers []fingerArg) string {
	msg := err.Error()
	for i := len(fingers); i >= 1; i-- {
		if strings.Contains(msg, fmt.Sprintf("probe finger %d ", i)) {
			return fingers[i-1].file
		}
	}
	if photo != "" && len(fingers) == 0 {
		return photo
	}
	if photo == "" && len(fingers) == 1 {
		return fingers[0].file
	}
	if photo != "" && strings.Contains(msg, "probe:") {
		return photo
	}
	return ""
}

// samplePhoto finds which file a server error is about: the server names
// samples "sample N".
func samplePhoto(err error, photos []string) string {
	if f := sampleNamed(err, photos); f != "" {
		return f
	}
	if len(photos) == 1 {
		return photos[0]
	}
	return ""
}

func (a *app) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a subject",
		Args:  exactArgs(1, "show needs one subject ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(a, cmd.Context(), nil, func(ctx context.Context, c pb.MatcherClient) (*pb.GetSubjectResponse, error) {
				return c.GetSubject(ctx, &pb.GetSubjectRequest{SubjectId: args[0]})
			})
			if err != nil {
				return err
			}
			j := toSubjectJSON(resp.GetSubject())
			if a.json {
				return a.printJSON(j)
			}
			t := newTable(a.stdout, "FIELD", "VALUE")
			t.row("ID", j.ID)
			t.row("Name", j.Name)
			t.row("Watchlists", listNames(j.Watchlists))
			t.row("Templates", templatesSummary(resp.GetSubject().GetTemplates()))
			t.row("Samples kept", fmt.Sprint(j.Samples))
			t.row("Created", j.Created)
			t.row("Updated", j.Updated)
			for _, k := range sortedKeys(j.Metadata) {
				t.row(k, j.Metadata[k])
			}
			t.flush()
			return nil
		},
	}
}

func templatesSummary(ts []*pb.TemplateInfo) string {
	if len(ts) == 0 {
		return "none"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s %s/v%d", strings.ToLower(strings.TrimPrefix(t.GetModality().String(), "MODALITY_")), t.GetAlgorithm(), t.GetAlgorithmVersion())
		if t.GetModality() == pb.Modality_MODALITY_FINGER {
			parts[i] = fmt.Sprintf("finger %s %s/v%d (%d minutiae, quality %d)", positionName(t.GetFingerPosition()),
				t.GetAlgorithm(), t.GetAlgorithmVersion(), t.GetMinutiae(), t.GetFingerQuality())
		}
	}
	return strings.Join(parts, "; ")
}

func (a *app) removeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a subject and its templates",
		Args:  exactArgs(1, "remove needs one subject ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(a, cmd.Context(), nil, func(ctx context.Context, c pb.MatcherClient) (*pb.DeleteSubjectResponse, error) {
				return c.DeleteSubject(ctx, &pb.DeleteSubjectRequest{SubjectId: args[0]})
			})
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(toSubjectJSON(resp.GetSubject()))
			}
			fmt.Fprintf(a.stdout, "Removed %s (%s).\n", resp.GetSubject().GetId(), resp.GetSubject().GetName())
			return nil
		},
	}
}

func (a *app) listCmd() *cobra.Command {
	var list string
	cmd := &cobra.Command{
		Use:   "list [--list NAME]",
		Short: "List subjects, all or on one watchlist",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []subjectJSON
			token := ""
			for {
				resp, err := call(a, cmd.Context(), nil, func(ctx context.Context, c pb.MatcherClient) (*pb.ListSubjectsResponse, error) {
					return c.ListSubjects(ctx, &pb.ListSubjectsRequest{Watchlist: list, PageSize: 500, PageToken: token})
				})
				if err != nil {
					return err
				}
				for _, s := range resp.GetSubjects() {
					all = append(all, toSubjectJSON(s))
				}
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if a.json {
				if all == nil {
					all = []subjectJSON{}
				}
				return a.printJSON(map[string]any{"subjects": all})
			}
			if len(all) == 0 {
				fmt.Fprintln(a.stdout, "No subjects.")
				return nil
			}
			t := newTable(a.stdout, "SUBJECT", "NAME", "WATCHLISTS", "CREATED")
			for _, s := range all {
				t.row(s.ID, s.Name, strings.Join(s.Watchlists, ","), s.Created)
			}
			t.flush()
			fmt.Fprintf(a.stdout, "%d subject(s).\n", len(all))
			return nil
		},
	}
	cmd.Flags().StringVar(&list, "list", "", "only subjects on this watchlist")
	return cmd
}

func (a *app) listsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lists",
		Short: "List the watchlists with their sizes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := call(a, cmd.Context(), nil, func(ctx context.Context, c pb.MatcherClient) (*pb.ListWatchlistsResponse, error) {
				return c.ListWatchlists(ctx, &pb.ListWatchlistsRequest{})
			})
			if err != nil {
				return err
			}
			type listJSON struct {
				Name     string `json:"name"`
				Subjects int64  `json:"subjects"`
			}
			out := []listJSON{}
			for _, w := range resp.GetWatchlists() {
				out = append(out, listJSON{w.GetName(), w.GetSubjectCount()})
			}
			if a.json {
				return a.printJSON(map[string]any{"watchlists": out})
			}
			if len(out) == 0 {
				fmt.Fprintln(a.stdout, "No watchlists.")
				return nil
			}
			t := newTable(a.stdout, "WATCHLIST", "SUBJECTS")
			for _, w := range out {
				t.row(w.Name, fmt.Sprint(w.Subjects))
			}
			t.flush()
			return nil
		},
	}
}

func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s", msg)
		}
		return nil
	}
}

// photoExts are the file types import picks up in a subject folder.
var photoExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}

func isPhoto(name string) bool { return photoExts[strings.ToLower(filepath.Ext(name))] }
