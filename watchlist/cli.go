// Package watchlist is the border officer's command-line client of matchd:
// search the watchlists by photo, fingerprints or ANSI/NIST-ITL
// transaction, and add, show, remove, list, import and export subjects. It prints readable tables by default and JSON with --json.
//
// Exit codes, stable for scripts:
//
//	0  the command ran (a search with no candidate above the threshold included)
//	1  the server failed or an import had failures
//	2  bad usage: unknown flag, missing argument, a parameter the server
//	   refuses (--top 500, a watchlist name it cannot hold)
//	3  not found: no such subject
//	4  bad input: unreadable photo, no face, several faces, subject exists,
//	   malformed ANSI/NIST-ITL file, export or backup file exists
//	5  the server could not be reached or did not answer in time
//	6  refused: no valid credentials, or the caller's role may not do that
//
// Connections are TLS: the CA certificate and the client certificate are
// taken from --ca, --cert and --key, or, by default, from the local CA that
// matchd creates in <--data>/tls (ca.pem, admin.pem, admin-key.pem), so on
// the server's machine the CLI works as admin out of the box. --token sends
// a bearer token instead of (or besides) a certificate; --insecure talks
// plaintext to a matchd run with --insecure.
package watchlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitNotFound    = 3
	ExitBadInput    = 4
	ExitUnavailable = 5
	ExitDenied      = 6
)

// exitError carries an exit code with the message printed on stderr.
type exitError struct {
	code int
	err  error
	rpc  codes.Code // the gRPC status behind the error, OK if none
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// app holds what every subcommand shares.
type app struct {
	tls     connFlags
	server  string
	json    bool
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer

	conn   *grpc.ClientConn
	client pb.MatcherClient
}

// Main runs the CLI with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if a.conn != nil {
		a.conn.Close()
	}
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "watchlist:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// cobra's own errors (unknown command or flag) are usage errors.
	return ExitUsage
}

func (a *app) root() *cobra.Command {
	def := os.Getenv("BORDERMATCH_SERVER")
	if def == "" {
		def = "127.0.0.1:" + defaultPort
	}
	root := &cobra.Command{
		Use:   "watchlist",
		Short: "Search and manage Bordermatch watchlists",
		Long: `watchlist is the border officer's client of the Bordermatch matching engine (matchd).

Exit codes: 0 done, 1 server failure or import failures, 2 bad usage (also
a parameter the server refuses), 3 subject not found, 4 bad input (unreadable
photo, no face, several faces, subject exists, file exists), 5 server
unreachable or timed out, 6 refused (credentials or role).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", def, "matchd address host[:port], port "+defaultPort+" if not given (env BORDERMATCH_SERVER)")
	pf.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long to wait for the server per call")
	a.tls.register(pf)
	root.AddCommand(a.searchCmd(), a.addCmd(), a.showCmd(), a.removeCmd(), a.listCmd(), a.listsCmd(), a.importCmd(), a.auditCmd(), a.gateCmd())
	root.AddCommand(a.exportCmd(), a.backupCmd(), a.restoreCmd(), a.retemplateCmd(), a.quarantineCmd(), a.clusterCmd(), a.federationCmd())
	return root
}

func (a *app) dial() (pb.MatcherClient, error) {
	if a.client != nil {
		return a.client, nil
	}
	creds, err := a.tls.dialOptions()
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	a.server = withDefaultPort(a.server)
	conn, err := grpc.NewClient(a.server, append(creds,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))...)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--server %q: %v", a.server, err)}
	}
	a.conn, a.client = conn, pb.NewMatcherClient(conn)
	return a.client, nil
}

func (a *app) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, a.timeout)
}

// callError turns a gRPC error into a message in plain words and an exit code.
// subject names what the call was about, for messages like
// "no face found in traveller.jpg".
func (a *app) callError(err error, subject string) *exitError {
	st := status.Convert(err)
	msg := st.Message()
	if subject != "" {
		msg = subject + ": " + msg
	}
	e := &exitError{code: ExitFailure, err: errors.New(msg), rpc: st.Code()}
	switch st.Code() {
	case codes.NotFound:
		e.code = ExitNotFound
	case codes.InvalidArgument, codes.AlreadyExists, codes.FailedPrecondition, codes.ResourceExhausted, codes.OutOfRange:
		e.code = ExitBadInput
	case codes.Unauthenticated, codes.PermissionDenied:
		e.code = ExitDenied
	case codes.Unavailable:
		e.code = ExitUnavailable
		e.err = fmt.Errorf("cannot reach matchd at %s (is it running?): %s", a.server, st.Message())
		if tlsTrouble(st.Message()) {
			e.err = fmt.Errorf("no secure connection to matchd at %s (%s): %s", a.server, a.tls.advice(st.Message()), st.Message())
		}
	case codes.DeadlineExceeded:
		e.code = ExitUnavailable
		e.err = fmt.Errorf("matchd at %s did not answer within %s", a.server, a.timeout)
	}
	return e
}

// call is every Matcher call of the CLI: dial (once), the per-call
// timeout, and the error in plain words (callError, naming subject).
func call[T any](a *app, parent context.Context, subject func(error) string, fn func(context.Context, pb.MatcherClient) (T, error)) (T, error) {
	var zero T
	c, err := a.dial()
	if err != nil {
		return zero, err
	}
	ctx, cancel := a.ctx(parent)
	defer cancel()
	resp, err := fn(ctx, c)
	if err != nil {
		if subject != nil && requestError(err) {
			// A parameter such as top_k, not a file: blaming the photo
			// would send the officer to fix the wrong thing.
			e := a.callError(err, "")
			e.code = ExitUsage
			return zero, e
		}
		s := ""
		if subject != nil && aboutSample(err) {
			s = subject(err)
		}
		return zero, a.callError(err, s)
	}
	return resp, nil
}

// sampleRef is how the server names what a call carried: "probe", "probe
// finger 2", "sample 3", "reference".
var sampleRef = regexp.MustCompile(`\b(probe|sample \d+|reference)\b`)

// aboutSample tells an error about one of the files a call carried: the
// server names the sample (sampleRef), or the ANSI/NIST-ITL transaction,
// or the request was too large to receive. Others (a subject that exists,
// a parameter) are not the file's fault.
func aboutSample(err error) bool {
	msg := status.Convert(err).Message()
	return sampleRef.MatchString(msg) || nistError(err) || strings.Contains(msg, "message larger than max")
}

// requestError tells a refusal of the request's parameters (top_k, the
// subject id, a watchlist name) from one of its samples.
func requestError(err error) bool {
	return status.Code(err) == codes.InvalidArgument && !aboutSample(err)
}
