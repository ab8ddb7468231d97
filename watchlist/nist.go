package watchlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/templates/an2k"
)

// nistExts are the file types taken as ANSI/NIST-ITL transactions, by
// --nist and by import.
var nistExts = map[string]bool{".an2": true, ".an2k": true, ".eft": true, ".nist": true}

// isNISTFile tells whether a file name is an ANSI/NIST-ITL transaction's.
func isNISTFile(name string) bool { return nistExts[strings.ToLower(filepath.Ext(name))] }

// nistFile is an ANSI/NIST-ITL transaction read and parsed on the client,
// so that a malformed file is refused before any call.
type nistFile struct {
	path string
	data []byte
	tx   *an2k.Transaction
}

// readNIST reads and parses a transaction; errors name the file and, for a
// malformed one, the record, field and byte (an2k.Error), with ExitBadInput.
func readNIST(path string) (*nistFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("cannot read ANSI/NIST-ITL file: %v", err)}
	}
	if len(b) == 0 {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("%s is empty", path)}
	}
	tx, err := an2k.ParseAny(b)
	if err != nil {
		return nil, &exitError{code: ExitBadInput, err: fmt.Errorf("%s is not a valid ANSI/NIST-ITL transaction: %v", path, err)}
	}
	return &nistFile{path: path, data: b, tx: tx}, nil
}

// profileOf is the profile of the transaction's domain (1.013 DOM), nil
// when no profile here has that domain.
func profileOf(tx *an2k.Transaction) *an2k.Profile {
	dom, _ := tx.Domain()
	dom = strings.TrimSpace(dom)
	if dom == "" {
		return nil
	}
	for _, name := range an2k.Profiles() {
		p, err := an2k.LoadProfile(name)
		if err == nil && strings.EqualFold(p.Domain.Name, dom) {
			return p
		}
	}
	return nil
}

// attributes reads the transaction's first Type-2 record through its
// domain's profile; nil without either.
func (n *nistFile) attributes() map[string]string {
	p := profileOf(n.tx)
	if p == nil {
		return nil
	}
	for i := range n.tx.Records {
		if n.tx.Records[i].Type == 2 {
			return p.Subject(&n.tx.Records[i])
		}
	}
	return nil
}

// defaultID is the subject id a transaction gives: its Type-2 reference
// (INT-I 2.007 SCN, EBTS 2.009 OCA), else its TCN (1.009), else "".
func (n *nistFile) defaultID() string {
	if ref := strings.TrimSpace(n.attributes()["reference"]); ref != "" {
		return ref
	}
	return strings.TrimSpace(n.tx.TCN())
}

// hasName tells whether the transaction's Type-2 holds a name (which the
// server then takes when the request leaves the name empty).
func (n *nistFile) hasName() bool { return strings.TrimSpace(n.attributes()["name"]) != "" }

// nistUseJSON is the JSON shape of what the server took from a transaction.
type nistUseJSON struct {
	File       string            `json:"file"`
	Domain     string            `json:"domain,omitempty"`
	TOT        string            `json:"tot,omitempty"`
	Faces      int32             `json:"faces"`
	Fingers    int32             `json:"fingers"`
	Skipped    []string          `json:"skipped,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

func toNISTUseJSON(file string, u *pb.NISTUse) *nistUseJSON {
	if u == nil {
		return &nistUseJSON{File: file}
	}
	return &nistUseJSON{File: file, Domain: u.GetDomain(), TOT: u.GetTot(), Faces: u.GetFaces(), Fingers: u.GetFingers(),
		Skipped: u.GetSkipped(), Attributes: u.GetAttributes()}
}

// nistSource is "tenprint.an2 (INT-I 4.22 CPS)".
func nistSource(file string, u *pb.NISTUse) string {
	kind := strings.TrimSpace(u.GetDomain() + " " + u.GetTot())
	if kind == "" {
		return filepath.Base(file)
	}
	return filepath.Base(file) + " (" + kind + ")"
}

// skippedText is "; 2 records not used: record 3 (Type-13): …; record 4 …",
// or "" when every record was used.
func skippedText(u *pb.NISTUse) string {
	s := u.GetSkipped()
	switch len(s) {
	case 0:
		return ""
	case 1:
		return "; 1 record not used: " + s[0]
	}
	return fmt.Sprintf("; %d records not used: %s", len(s), strings.Join(s, "; "))
}

// nistProbeText is search's line about the transaction searched with.
func nistProbeText(file string, u *pb.NISTUse) string {
	var with []string
	if n := u.GetFaces(); n > 0 {
		with = append(with, counted(int(n), "face", "faces"))
	}
	if n := u.GetFingers(); n > 0 {
		with = append(with, counted(int(n), "finger", "fingers"))
	}
	what := "nothing from it"
	if len(with) > 0 {
		what = strings.Join(with, " and ")
	}
	return fmt.Sprintf("From %s: searched with %s%s.", nistSource(file, u), what, skippedText(u))
}

func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// nistError tells whether a server error is about the transaction rather
// than one of the samples given beside it.
func nistError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "an2k") || strings.Contains(strings.ToLower(msg), "nist") || recordRef.MatchString(msg)
}

// recordRef is how the server and an2k name a transaction's record.
var recordRef = regexp.MustCompile(`record \d+ \(Type-\d+\)|Type-\d+`)

func (a *app) exportCmd() *cobra.Command {
	var (
		format, profile, tot, ori, dai, out string
		force                               bool
	)
	cmd := &cobra.Command{
		Use:   "export ID -o FILE [--profile int-i|ebts] [--tot CAR] [--ori AGENCY] [--dai AGENCY]",
		Short: "Write a subject as an ANSI/NIST-ITL transaction for a partner agency",
		Long: `export writes an enrolled subject's kept samples (photos as Type-10, fingerprint
images as Type-14, minutiae records as Type-9) and its name and metadata (Type-2,
in the fields of the domain's profile: INT-I or EBTS) as an ANSI/NIST-ITL
1-2011 transaction in the traditional encoding. Metadata the profile has no
field for is not written, and said so. -o - writes to standard output (not to a
terminal); an existing file is kept unless --force. Exporting releases
biometric data: the server audits it (officers and admins may).`,
		Example: `  watchlist export P1234 -o p1234.an2
  watchlist export P1234 --profile ebts --tot CAR --ori WVMEDS000 --dai WVFBI0000 -o p1234.eft
  watchlist export P1234 -o - | nc partner 9000`,
		Args: exactArgs(1, "export needs one subject ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError("export: -o FILE is required (- for standard output)")
			}
			if format != "an2k" {
				return usageError("export: --format %q: only an2k (ANSI/NIST-ITL traditional encoding) is written", format)
			}
			p, err := an2k.LoadProfile(profile)
			if err != nil {
				return usageError("export: --profile: %v", err)
			}
			if tot != "" && !p.HasTOT(strings.ToUpper(tot)) {
				var codes []string
				for _, t := range p.TOTs {
					codes = append(codes, t.Code)
				}
				return usageError("export: --tot %q is not a %s transaction type (%s)", tot, strings.ToUpper(p.Name), strings.Join(codes, ", "))
			}
			info := a.stdout
			if out == "-" {
				if isTerminal(a.stdout) {
					return usageError("export: not writing a binary transaction to a terminal; give -o FILE or redirect")
				}
				info = a.stderr
			} else if !force {
				if _, err := os.Stat(out); err == nil {
					return &exitError{code: ExitBadInput, err: fmt.Errorf("export: %s exists (--force to overwrite it)", out)}
				} else if !errors.Is(err, os.ErrNotExist) {
					return &exitError{code: ExitBadInput, err: fmt.Errorf("export: %v", err)}
				}
			}
			req := &pb.ExportSubjectRequest{SubjectId: args[0], Format: format, Profile: p.Name, Tot: strings.ToUpper(tot), Originator: ori, Destination: dai}
			resp, err := call(a, cmd.Context(), nil, func(ctx context.Context, c pb.MatcherClient) (*pb.ExportSubjectResponse, error) {
				return c.ExportSubject(ctx, req)
			})
			if err != nil {
				return err
			}
			if err := writeExport(a.stdout, out, force, resp.GetData()); err != nil {
				return err
			}
			if a.json {
				j := exportJSON{File: out, Bytes: len(resp.GetData()), Records: resp.GetRecords(), LeftOut: nonNil(resp.GetLeftOut())}
				if j.Records == nil {
					j.Records = map[int32]int32{}
				}
				w := a.stdout
				if out == "-" {
					w = a.stderr
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(j)
			}
			dest := out
			if out == "-" {
				dest = "standard output"
			}
			left := ""
			if l := resp.GetLeftOut(); len(l) > 0 {
				left = fmt.Sprintf("; not written (no %s field): %s", strings.ToUpper(p.Name), strings.Join(l, ", "))
			}
			fmt.Fprintf(info, "Wrote %s as an ANSI/NIST-ITL transaction (%s): %s to %s (%s bytes)%s.\n",
				args[0], strings.ToUpper(p.Name), recordsText(resp.GetRecords()), dest, thousands(len(resp.GetData())), left)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "file to write (- for standard output)")
	f.StringVar(&format, "format", "an2k", "file format: an2k (ANSI/NIST-ITL 1-2011, traditional encoding)")
	f.StringVar(&profile, "profile", "int-i", "implementation domain whose Type-2 is written: "+strings.Join(an2k.Profiles(), ", "))
	f.StringVar(&tot, "tot", "", "type of transaction, 1.004 TOT (default: the server's, CAR)")
	f.StringVar(&ori, "ori", "", "originating agency, 1.008 ORI")
	f.StringVar(&dai, "dai", "", "destination agency, 1.007 DAI")
	f.BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

// exportJSON is the JSON shape of `export --json`.
type exportJSON struct {
	File    string          `json:"file"`
	Bytes   int             `json:"bytes"`
	Records map[int32]int32 `json:"records"`
	LeftOut []string        `json:"left_out"`
}

// writeExport writes the transaction to the file (or stdout for "-"),
// never over an existing file without force.
func writeExport(stdout io.Writer, out string, force bool, data []byte) error {
	if out == "-" {
		if _, err := stdout.Write(data); err != nil {
			return &exitError{code: ExitFailure, err: fmt.Errorf("export: writing to standard output: %v", err)}
		}
		return nil
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return &exitError{code: ExitBadInput, err: fmt.Errorf("export: %s exists (--force to overwrite it)", out)}
	}
	if err != nil {
		return &exitError{code: ExitBadInput, err: fmt.Errorf("export: %v", err)}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return &exitError{code: ExitFailure, err: fmt.Errorf("export: writing %s: %v", out, err)}
	}
	if err := f.Close(); err != nil {
		return &exitError{code: ExitFailure, err: fmt.Errorf("export: writing %s: %v", out, err)}
	}
	return nil
}

// recordsText is "Type-1, Type-2, 1× Type-10, 2× Type-14": the records by
// type in type order, the header records (one each) without a count.
func recordsText(m map[int32]int32) string {
	types := make([]int, 0, len(m))
	for t := range m {
		types = append(types, int(t))
	}
	sort.Ints(types)
	parts := make([]string, 0, len(types))
	for _, t := range types {
		n := m[int32(t)]
		if (t == 1 || t == 2) && n == 1 {
			parts = append(parts, "Type-"+strconv.Itoa(t))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d× Type-%d", n, t))
	}
	if len(parts) == 0 {
		return "no records"
	}
	return strings.Join(parts, ", ")
}

// thousands writes n with commas: 123456 → "123,456".
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
