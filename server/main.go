package server

// Main is matchd's command line: cmd/matchd is only
// os.Exit(server.Main(os.Args[1:], os.Stdout, os.Stderr)).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bordermatch/bordermatch/cluster"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/federation"
	"github.com/bordermatch/bordermatch/pki"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/face"
)

// matchd's exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the server or a subcommand failed
	ExitUsage   = 2 // unknown flag or command, or a bad flag or environment value
)

// EnvPrefix starts the environment variable of every matchd flag.
const EnvPrefix = "BORDERMATCH_"

// EnvVar is the environment variable of a flag: EnvPrefix and the flag's
// name in upper snake case (--finger-dpi: BORDERMATCH_FINGER_DPI).
func EnvVar(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Main runs matchd with args (without the program name) and returns the
// exit code: ExitOK, ExitFailure or ExitUsage. Without a subcommand it
// serves until SIGINT or SIGTERM; "certs" issues a client certificate from
// the local CA, "rotate-key" changes the gallery's master key, "check"
// verifies a stopped gallery and "salvage" copies a damaged one's readable
// subjects into a new data directory.
//
// Every flag can also be set by its environment variable (EnvVar); a flag on
// the command line wins over the environment, and an empty variable counts
// as unset. A bad value is reported under the flag or variable that gave it.
func Main(args []string, stdout, stderr io.Writer) int {
	return runMain(args, stdout, stderr, os.LookupEnv)
}

func runMain(args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	c := &cli{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	root := c.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "matchd:", err)
	var ue usageErr
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return ExitUsage
	}
	return ExitFailure
}

// usageErr marks an error as bad usage (ExitUsage).
type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

// cli holds the flags' values and where each came from.
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// fromEnv names the flags set from the environment.
	fromEnv map[string]bool
}

// name is how an error names a flag: as given, on the command line or in
// the environment.
func (c *cli) name(cmd *cobra.Command, flag string) string {
	if c.fromEnv[flag] {
		v, _ := c.lookupEnv(EnvVar(flag))
		return fmt.Sprintf("%s=%q", EnvVar(flag), v)
	}
	if f := cmd.Flags().Lookup(flag); f != nil {
		return fmt.Sprintf("--%s %q", flag, f.Value.String())
	}
	return "--" + flag
}

// given reports whether a flag was set, on the command line or in the
// environment.
func (c *cli) given(cmd *cobra.Command, flag string) bool {
	return cmd.Flags().Changed(flag) || c.fromEnv[flag]
}

// applyEnv sets every flag not given on the command line from its
// environment variable. Runs before every command.
func (c *cli) applyEnv(cmd *cobra.Command, _ []string) error {
	c.fromEnv = map[string]bool{}
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name := EnvVar(f.Name)
		v, ok := c.lookupEnv(name)
		if !ok || v == "" {
			return
		}
		var e error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			// Space-separated; a list of names also comma-separated, as
			// on the command line.
			sep := unicode.IsSpace
			if f.Value.Type() == "stringSlice" {
				sep = func(r rune) bool { return r == ',' || unicode.IsSpace(r) }
			}
			e = sv.Replace(strings.FieldsFunc(v, sep))
		} else {
			e = f.Value.Set(v)
		}
		if e != nil {
			err = usageErr{fmt.Errorf("%s=%q: %v", name, v, e)}
			return
		}
		c.fromEnv[f.Name] = true
	})
	return err
}

// documentEnv adds each flag's environment variable, and a default pflag
// would not print (an empty or zero one), to its help line.
func documentEnv(fs *pflag.FlagSet, zeroDefaults map[string]string) {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage += " [$" + EnvVar(f.Name) + "]"
		switch f.DefValue {
		case "", "false", "0", "0s", "[]":
			d, ok := zeroDefaults[f.Name]
			if !ok {
				d = map[string]string{"": "none", "false": "off", "[]": "none"}[f.DefValue]
				if d == "" {
					d = f.DefValue
				}
			}
			f.Usage += " (default " + d + ")"
		}
	})
}

func (c *cli) root() *cobra.Command {
	opt := DefaultOptions()
	var (
		level       = choice{val: "info", valid: []string{"debug", "info", "warn", "error"}}
		format      = choice{val: "auto", valid: []string{"auto", "json", "console"}}
		detector    = detectorValue{&opt.Detector}
		gatesFile   string
		gateFlags   gateList
		clusterFile string
		fedFile     string
	)
	root := &cobra.Command{
		Use:   "matchd",
		Short: "Serve the Bordermatch matching engine over gRPC",
		Long: `matchd serves the Bordermatch matching engine over gRPC with mutual TLS
(see README.md): the Matcher, Gates, Admin and Audit services.

Every flag can also be set by the environment variable shown with it; a flag
on the command line wins over the environment. The gallery's master key may
also be given in hex in $` + engine.EncryptionKeyEnv + `.

Exit codes: 0 stopped cleanly, 1 failed, 2 bad usage (unknown flag, bad
flag or environment value).`,
		Args:              usageArgs(cobra.NoArgs),
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: c.applyEnv,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logOut := c.stderr
			var native *nativeStderr
			if _, err := zerolog.ParseLevel(level.val); err == nil && !consoleLog(format.val, c.stderr) {
				// One JSON object a line: native libraries' stderr
				// lines become records too (nativelog.go).
				var err error
				if native, err = captureNativeStderr(c.stderr); err != nil {
					return err
				}
				if native != nil {
					logOut = native.orig
				}
			}
			log, err := newLogger(level.val, format.val, logOut)
			if native != nil {
				native.forward(log)
				defer native.restore()
			}
			if err != nil {
				return err
			}
			opt.Logger = log
			if c.given(cmd, "target-fmr") {
				if c.given(cmd, "threshold") {
					return usageErr{fmt.Errorf("give either %s or %s, not both", c.name(cmd, "threshold"), c.name(cmd, "target-fmr"))}
				}
				opt.FaceThresholdFromFMR = true
			}
			var gates []GateConfig
			if gatesFile != "" {
				if gates, err = ReadGatesFile(gatesFile); err != nil {
					return fmt.Errorf("%s: %w", c.name(cmd, "gates"), err)
				}
			}
			opt.Gates = MergeGates(gates, gateFlags)
			if clusterFile != "" {
				cfg, err := cluster.ReadConfig(clusterFile)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name(cmd, "cluster"), err)
				}
				opt.Cluster = &cfg
			}
			if fedFile != "" {
				cfg, err := federation.ReadConfig(fedFile)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name(cmd, "federation"), err)
				}
				opt.Federation = &cfg
			}
			if err := opt.Validate(); err != nil {
				return c.optionError(cmd, err)
			}
			return Serve(cmd.Context(), opt)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr{err} })

	f := root.Flags()
	f.SortFlags = false
	f.StringVar(&opt.Listen, "listen", opt.Listen, "gRPC listen address `host:port`")
	f.StringVar(&opt.DataDir, "data", opt.DataDir, "data `dir`ectory: the gallery, the local CA (created if missing)")
	f.StringVar(&opt.ModelsDir, "models", opt.ModelsDir, "`dir`ectory with the face models (make models)")
	f.StringVar(&opt.FaceModel, "face-model", opt.FaceModel,
		"face `model` of every enrolment and probe photo: a model in --models (e.g. "+face.DefaultModel+", faceplugin-512, "+face.DlibModel+") or a descriptor's path (.json)")
	f.StringSliceVar(&opt.MoreFaceModels, "more-face-models", nil,
		"more face `models` to load beside --face-model, comma-separated: a gallery moving between models is searched with both, and watchlist retemplate can move it to any loaded one")
	f.Var(&level, "log-level", "log `level`: debug, info, warn, error")
	f.Var(&format, "log-format", "log `format`: auto (console on a terminal, JSON otherwise), json, console")
	f.Float32Var(&opt.Threshold, "threshold", opt.Threshold, "face decision threshold on the cosine `score` of the --face-model")
	f.Var(&detector, "detector", "face `detector`: auto (HOG, then retries on the padded and upsampled photo and dlib's CNN when it finds no face), hog (HOG and its retries, no CNN), cnn (CNN only: slowest)")
	f.Float64Var(&opt.TargetFMR, "target-fmr", opt.TargetFMR,
		"decision threshold as a false match `rate`: for fused decisions (probes with fingers) and, given, for faces too, through the face calibration (not with --threshold)")
	f.StringVar(&opt.FaceCalibration, "face-calibration", "", "face calibration `file` (bmbench calibrate)")
	f.StringVar(&opt.FingerCalibration, "finger-calibration", "", "finger calibration `file`")
	f.IntVar(&opt.FingerQualityFloor, "finger-quality-floor", opt.FingerQualityFloor, "lowest fingerprint image `quality` (0-100) accepted at enrolment; 0: none")
	f.IntVar(&opt.FingerDPI, "finger-dpi", opt.FingerDPI, "resolution assumed for fingerprint images that declare none, in `dpi`")
	f.IntVar(&opt.MaxMessageBytes, "max-message-bytes", opt.MaxMessageBytes, "largest request or response in `bytes`")
	f.IntVar(&opt.MaxImagePixels, "max-image-pixels", opt.MaxImagePixels, "largest image accepted, in `pixels` (checked before decoding)")
	f.Var(byteSize{&opt.MemoryBudget}, "memory-budget", "memory the images being decoded and extracted at once may take, as a `size` (e.g. 2GiB): further calls wait their turn")
	f.DurationVar(&opt.ShutdownGrace, "shutdown-grace", opt.ShutdownGrace, "how long a stop may take: in-flight calls get three quarters of it; past it matchd exits, logging what did not finish; 0: calls are not waited for and the stop is not bounded")
	f.StringVar(&gatesFile, "gates", "", "gates configuration `file` (YAML): the camera source of each gate, and its fingerprint scanner (scanner:, fingers:, finger_timeout:)")
	f.Var(&gateFlags, "gate", "a gate's camera as `ID=SOURCE` (repeatable; over the file's gate of the same id), e.g. 3=rtsp://cam3/stream, 4=/dev/video0, 5=folder:/srv/frames; in the environment, space-separated")
	f.StringVar(&opt.EncryptionKeyFile, "encryption-key-file", "", "gallery master key `file` (hex, 16/24/32 bytes)")
	f.DurationVar(&opt.PurgeInterval, "purge-interval", opt.PurgeInterval, "how often deleted subjects' bytes are purged from disk when there were deletions; 0: never")
	f.StringVar(&opt.MetricsListen, "metrics-listen", "", "`host:port` for /metrics, /livez, /readyz (and pprof), with TLS unless --insecure")
	f.BoolVar(&opt.Pprof, "pprof", false, "serve /debug/pprof/ on the metrics listener, to callers with the admin role (audited)")
	f.BoolVar(&opt.KeepSamples, "keep-samples", opt.KeepSamples, "keep enrolments' photos and fingerprint images in the gallery, for re-templating with a new face algorithm (false: a new algorithm needs re-enrolment)")
	f.DurationVar(&opt.AuditRetention, "audit-retention", 0, "audit records older than this `duration` (e.g. 2160h) move to DATA/audit/archive.jsonl; 0: keep all in the gallery")
	f.StringVar(&clusterFile, "cluster", "", "cluster configuration `file` (YAML): this node's partition and replica, the NATS servers or an embedded one, TLS; without it matchd is a single node")
	f.StringVar(&fedFile, "federation", "", "federation configuration `file` (YAML): this agency's name and its partner agencies for hit/no-hit searches (README: Searching partner agencies)")
	f.BoolVar(&opt.Insecure, "insecure", false, "serve plaintext gRPC with no client authentication (every caller is admin unless --tokens); development only")
	f.StringVar(&opt.TLSCert, "tls-cert", "", "server certificate `file` (PEM)")
	f.StringVar(&opt.TLSKey, "tls-key", "", "server key `file` (PEM)")
	f.StringVar(&opt.ClientCA, "client-ca", "", "CA certificate `file` that client certificates must chain to")
	f.StringVar(&opt.TokensFile, "tokens", "", "bearer token `file`: TOKEN IDENTITY ROLE per line (client certificates become optional)")
	f.Float64Var(&opt.RateLimit, "rate-limit", opt.RateLimit, "calls per second each caller may make, sustained (0: no limit)")
	f.IntVar(&opt.RateBurst, "rate-burst", opt.RateBurst, "calls a caller may make at once above --rate-limit")
	f.IntVar(&opt.MaxConcurrent, "max-concurrent", opt.MaxConcurrent, "calls each caller may have in flight (0: no limit)")
	documentEnv(f, map[string]string{
		"threshold":           "0: the model's built-in threshold",
		"face-calibration":    "built in",
		"finger-calibration":  "built in",
		"encryption-key-file": "$" + engine.EncryptionKeyEnv + ", else DATA/master.key, generated at first start",
		"tls-cert":            "the local CA's, in DATA/tls",
		"tls-key":             "the local CA's, in DATA/tls",
		"client-ca":           "the local CA, in DATA/tls",
	})

	root.AddCommand(c.certsCmd(), c.rotateKeyCmd(), c.checkCmd(), c.salvageCmd())
	return root
}

// optionFlags names the flag that sets each Options field.
var optionFlags = map[string]string{
	"Listen": "listen", "DataDir": "data", "ModelsDir": "models", "Detector": "detector",
	"FaceModel": "face-model", "MoreFaceModels": "more-face-models",
	"Threshold": "threshold", "TargetFMR": "target-fmr",
	"FaceCalibration": "face-calibration", "FingerCalibration": "finger-calibration",
	"FingerQualityFloor": "finger-quality-floor", "FingerDPI": "finger-dpi",
	"MaxMessageBytes": "max-message-bytes", "MaxImagePixels": "max-image-pixels", "ShutdownGrace": "shutdown-grace",
	"MemoryBudget": "memory-budget",
	"Insecure":     "insecure", "TLSCert": "tls-cert", "TLSKey": "tls-key", "ClientCA": "client-ca", "TokensFile": "tokens",
	"RateLimit": "rate-limit", "RateBurst": "rate-burst", "MaxConcurrent": "max-concurrent",
	"Gates": "gates", "EncryptionKeyFile": "encryption-key-file", "PurgeInterval": "purge-interval",
	"MetricsListen": "metrics-listen", "Pprof": "pprof", "AuditRetention": "audit-retention",
	"KeepSamples": "keep-samples", "Cluster": "cluster", "Federation": "federation",
}

// optionError reports an *OptionError under the flag or variable that set
// the field.
func (c *cli) optionError(cmd *cobra.Command, err error) error {
	var oe *OptionError
	if !errors.As(err, &oe) {
		return err
	}
	flag, ok := optionFlags[oe.Field]
	if !ok {
		return err
	}
	if oe.Field == "Pprof" {
		name := "--pprof"
		if c.fromEnv[flag] {
			name = EnvVar(flag)
		}
		return usageErr{fmt.Errorf("%s needs --metrics-listen", name)}
	}
	return usageErr{fmt.Errorf("%s: want %s", c.name(cmd, flag), oe.Want)}
}

func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageErr{err}
		}
		return nil
	}
}

// choice is a string flag with a fixed set of values.
type choice struct {
	val   string
	valid []string
}

func (c *choice) String() string { return c.val }
func (c *choice) Type() string   { return "string" }
func (c *choice) Set(v string) error {
	if !slices.Contains(c.valid, v) {
		return fmt.Errorf("want %s", strings.Join(c.valid, ", "))
	}
	c.val = v
	return nil
}

// detectorValue is the --detector flag.
type detectorValue struct{ d *face.Detector }

func (v detectorValue) String() string { return v.d.String() }
func (v detectorValue) Type() string   { return "string" }
func (v detectorValue) Set(s string) error {
	d, err := face.ParseDetector(s)
	if err != nil {
		return errors.New("want auto, hog or cnn")
	}
	*v.d = d
	return nil
}

// gateList collects --gate flags; in the environment, BORDERMATCH_GATE
// holds them space-separated.
type gateList []GateConfig

func (l *gateList) Type() string { return "gate" }

func (l *gateList) String() string { return strings.Join(l.GetSlice(), ",") }

func (l *gateList) Set(v string) error {
	g, err := ParseGateFlag(v)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(*l, func(o GateConfig) bool { return o.ID == g.ID }) {
		return fmt.Errorf("gate %s given twice", g.ID)
	}
	*l = append(*l, g)
	return nil
}

// Append, Replace and GetSlice make it a pflag.SliceValue.
func (l *gateList) Append(v string) error { return l.Set(v) }

func (l *gateList) Replace(vs []string) error {
	*l = nil
	for _, v := range vs {
		if err := l.Set(v); err != nil {
			return err
		}
	}
	return nil
}

func (l *gateList) GetSlice() []string {
	var s []string
	for _, g := range *l {
		s = append(s, g.ID+"="+g.Source)
	}
	return s
}

// newLogger makes the log: JSON, or console lines on a terminal (auto).
func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, usageErr{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	out := w
	if consoleLog(format, w) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// consoleLog reports whether the log is console lines rather than JSON:
// asked for, or auto on a terminal.
func consoleLog(format string, w io.Writer) bool {
	if format == "console" {
		return true
	}
	if f, ok := w.(*os.File); ok && format == "auto" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return true
		}
	}
	return false
}

// certsCmd issues a client certificate for a role from the local CA.
func (c *cli) certsCmd() *cobra.Command {
	var (
		data, role, name, out string
		days                  int
		hosts                 []string
		renew                 bool
	)
	cmd := &cobra.Command{
		Use:   "certs --role gate|officer|admin|partner|node --name NAME [--renew] [--host H,...] [--out DIR] [--data DIR] [--days N]",
		Short: "Issue a client certificate for a role, or a cluster node's certificate, from the local CA",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case role == "node" && len(hosts) == 0:
				return usageErr{fmt.Errorf("certs: a node certificate needs %s, the names or addresses its NATS server is reached at", c.name(cmd, "host"))}
			case role != "node" && !pki.ValidRole(role):
				return usageErr{fmt.Errorf("certs: %s: want gate, officer, admin, partner or node", c.name(cmd, "role"))}
			case name == "" || filepath.Base(name) != name || len(name) > 64:
				return usageErr{fmt.Errorf("certs: %s: want a plain name such as gate-07", c.name(cmd, "name"))}
			case days < 1:
				return usageErr{fmt.Errorf("certs: %s: want at least 1", c.name(cmd, "days"))}
			}
			return issueCert(c.stdout, data, role, name, out, days, hosts, renew)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&role, "role", "", "role of the certificate: gate, officer or admin; partner for this agency's calls to its partner agencies (README: Searching partner agencies); node for a cluster node's NATS certificate (server and client, for --host)")
	f.StringSliceVar(&hosts, "host", nil, "with --role node: the DNS names and IP addresses the node's NATS server is reached at")
	f.StringVar(&name, "name", "", "the client's name (the certificate's common name; audit records show it); a name the local CA issued before is refused")
	f.BoolVar(&renew, "renew", false, "issue a new certificate (new key) for a name issued before, with the same role")
	f.StringVar(&out, "out", ".", "`dir`ectory to write NAME.pem and NAME-key.pem into")
	f.StringVar(&data, "data", DefaultOptions().DataDir, "data `dir`ectory whose tls/ holds the local CA")
	f.IntVar(&days, "days", 365, "validity in days")
	documentEnv(f, nil)
	return cmd
}

// issueCert issues a certificate from the local CA in data and writes it
// to out. The CA's register of issued names is checked first, so that no
// two callers share a name in the audit trail, and the new certificate is
// registered before its files are written: a failure between the two
// leaves a registered name without files (renew it), never files for a
// name the register does not know.
func issueCert(stdout io.Writer, data, role, name, out string, days int, hosts []string, renew bool) error {
	dir := TLSDir(data)
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		return fmt.Errorf("certs: %w (matchd creates the local CA in %s on its first start)", err, dir)
	}
	reg, err := pki.OpenRegister(dir)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := reg.Check(name, role, renew); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	req := pki.Request{CommonName: name, Role: role, Validity: time.Duration(days) * 24 * time.Hour}
	if role == "node" {
		req.Role, req.Node, req.Hosts = "", true, hosts
	}
	cert, key, err := ca.Issue(req)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	certFile, keyFile := filepath.Join(out, name+".pem"), filepath.Join(out, name+"-key.pem")
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("certs: %s exists; not overwriting it", f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	e, err := pki.IssuedFrom(cert, role, renew)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := reg.Add(e); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := pki.WriteFileAtomic(keyFile, key, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(certFile, cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Issued a %s certificate for %q (key id %s), valid %d days:\n  %s\n  %s\nThe client also needs the CA certificate %s.\n",
		role, name, e.KeyID, days, certFile, keyFile, filepath.Join(dir, pki.CAFile))
	return nil
}

// rotateKeyCmd changes the master key of a stopped matchd's gallery:
// Badger's data keys are re-encrypted under the new key (store.RotateKey);
// no other file changes.
func (c *cli) rotateKeyCmd() *cobra.Command {
	var data, oldFile, newFile string
	cmd := &cobra.Command{
		Use:   "rotate-key --data DIR --old-key-file FILE --new-key-file FILE",
		Short: "Change the gallery's master key (matchd stopped)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if oldFile == "" || newFile == "" {
				return usageErr{errors.New("rotate-key needs --old-key-file and --new-key-file")}
			}
			oldKey, _, err := store.ReadKeyFile(oldFile)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name(cmd, "old-key-file"), err)
			}
			newKey, loose, err := store.ReadKeyFile(newFile)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name(cmd, "new-key-file"), err)
			}
			dir := filepath.Join(data, engine.GalleryDirName)
			if err := store.RotateKey(dir, oldKey, newKey); err != nil {
				return err
			}
			w := c.stdout
			fmt.Fprintf(w, "The master key of %s is now the one in %s. Start matchd with --encryption-key-file %s", dir, newFile, newFile)
			if def := filepath.Join(data, engine.KeyFileName); oldFile == def {
				fmt.Fprintf(w, " (or replace %s with it)", def)
			}
			fmt.Fprintln(w, ", then destroy the old key.")
			if loose {
				fmt.Fprintf(w, "WARNING: %s is readable by other users; chmod 600 it.\n", newFile)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&data, "data", DefaultOptions().DataDir, "matchd's data `dir`ectory")
	f.StringVar(&oldFile, "old-key-file", "", "the current master key `file`")
	f.StringVar(&newFile, "new-key-file", "", "the new master key `file` (hex; e.g. openssl rand -hex 32 > new.key)")
	documentEnv(f, nil)
	return cmd
}
