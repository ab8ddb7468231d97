package server

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/pki"
)

// runMatchd runs Main's command line with env as the whole environment.
func runMatchd(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = runMain(args, &out, &errb, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return out.String(), errb.String(), code
}

// TestMatchdHelpListsEnv: "matchd --help" (and each subcommand's) lists
// every flag with its environment variable, BORDERMATCH_ and the flag's
// name in upper snake case, and its default.
func TestMatchdHelpListsEnv(t *testing.T) {
	line := regexp.MustCompile(`^\s+--([a-z0-9-]+)`)
	for _, cmd := range [][]string{{"--help"}, {"certs", "--help"}, {"rotate-key", "--help"}, {"salvage", "--help"}} {
		out, errs, code := runMatchd(nil, cmd...)
		if code != ExitOK {
			t.Fatalf("matchd %s: exit %d %s", strings.Join(cmd, " "), code, errs)
		}
		flags := 0
		for _, l := range strings.Split(out, "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil || m[1] == "help" {
				continue
			}
			flags++
			if !strings.Contains(l, "[$"+EnvVar(m[1])+"]") || !strings.Contains(l, "(default ") {
				t.Errorf("matchd %s: the line of --%s lacks $%s or its default: %q", strings.Join(cmd, " "), m[1], EnvVar(m[1]), l)
			}
		}
		if flags < 3 {
			t.Errorf("matchd %s: %d flags in the help:\n%s", strings.Join(cmd, " "), flags, out)
		}
	}
	// The variables matchd has always read follow the rule.
	for flag, env := range map[string]string{
		"listen": "BORDERMATCH_LISTEN", "data": "BORDERMATCH_DATA", "models": "BORDERMATCH_MODELS",
		"log-level": "BORDERMATCH_LOG_LEVEL", "log-format": "BORDERMATCH_LOG_FORMAT", "threshold": "BORDERMATCH_THRESHOLD",
		"detector": "BORDERMATCH_DETECTOR", "target-fmr": "BORDERMATCH_TARGET_FMR",
		"face-model": "BORDERMATCH_FACE_MODEL", "more-face-models": "BORDERMATCH_MORE_FACE_MODELS",
		"face-calibration": "BORDERMATCH_FACE_CALIBRATION", "finger-calibration": "BORDERMATCH_FINGER_CALIBRATION",
		"finger-quality-floor": "BORDERMATCH_FINGER_QUALITY_FLOOR", "finger-dpi": "BORDERMATCH_FINGER_DPI",
		"gates": "BORDERMATCH_GATES", "encryption-key-file": engine.EncryptionKeyFileEnv, "purge-interval": "BORDERMATCH_PURGE_INTERVAL",
		"metrics-listen": "BORDERMATCH_METRICS_LISTEN", "tls-cert": "BORDERMATCH_TLS_CERT", "tls-key": "BORDERMATCH_TLS_KEY",
		"client-ca": "BORDERMATCH_CLIENT_CA", "tokens": "BORDERMATCH_TOKENS",
	} {
		if EnvVar(flag) != env {
			t.Errorf("--%s reads %s, not %s", flag, EnvVar(flag), env)
		}
	}
}

// TestMatchdBadValues: a bad value is reported under the flag or the
// variable that gave it, with exit code 2, and a flag on the command line
// wins over the environment. (All refused before anything is opened.)
func TestMatchdBadValues(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--detector", "magic"}, `"--detector"`},
		{map[string]string{"BORDERMATCH_DETECTOR": "magic"}, nil, `BORDERMATCH_DETECTOR="magic": want auto, hog or cnn`},
		{nil, []string{"--more-face-models", "dlib,mobilefacenet-192"}, `--more-face-models "[dlib,mobilefacenet-192]": want models other than the default one, mobilefacenet-192`},
		{map[string]string{"BORDERMATCH_MORE_FACE_MODELS": "dlib, dlib"}, nil, `BORDERMATCH_MORE_FACE_MODELS="dlib, dlib": want each model once`},
		{map[string]string{"BORDERMATCH_FACE_MODEL": "dlib", "BORDERMATCH_MORE_FACE_MODELS": "dlib"}, nil, `want models other than the default one, dlib`},
		{map[string]string{"BORDERMATCH_FINGER_DPI": "20"}, nil, `BORDERMATCH_FINGER_DPI="20": want 250..2000`},
		{map[string]string{"BORDERMATCH_FINGER_DPI": "20"}, []string{"--finger-dpi", "30"}, `--finger-dpi "30": want 250..2000`},
		{map[string]string{"BORDERMATCH_FINGER_DPI": "many"}, nil, `BORDERMATCH_FINGER_DPI="many"`},
		{nil, []string{"--finger-dpi", "many"}, `"--finger-dpi"`},
		{nil, []string{"--finger-quality-floor", "-1"}, `--finger-quality-floor "-1": want 0 (no floor) to 100`},
		{map[string]string{"BORDERMATCH_PURGE_INTERVAL": "-1m"}, nil, `BORDERMATCH_PURGE_INTERVAL="-1m": want a duration`},
		{map[string]string{"BORDERMATCH_TARGET_FMR": "2"}, nil, `BORDERMATCH_TARGET_FMR="2": want a rate between 0 and 1`},
		{map[string]string{"BORDERMATCH_THRESHOLD": "0.9"}, []string{"--target-fmr", "0.01"}, "not both"},
		{map[string]string{"BORDERMATCH_PPROF": "yes please"}, nil, `BORDERMATCH_PPROF="yes please"`},
		{map[string]string{"BORDERMATCH_PPROF": "true"}, nil, "BORDERMATCH_PPROF needs --metrics-listen"},
		{map[string]string{"BORDERMATCH_LOG_LEVEL": "loud"}, nil, `BORDERMATCH_LOG_LEVEL="loud": want debug, info, warn, error`},
		{map[string]string{"BORDERMATCH_GATE": "3=a 3=b"}, nil, "gate 3 given twice"},
		{map[string]string{"BORDERMATCH_RATE_BURST": "0"}, nil, `BORDERMATCH_RATE_BURST="0": want at least 1`},
		{nil, []string{"--nope"}, "unknown flag: --nope"},
		{nil, []string{"serve"}, `unknown command "serve"`},
		{map[string]string{"BORDERMATCH_DAYS": "0"}, []string{"certs", "--role", "gate", "--name", "g"}, `BORDERMATCH_DAYS="0": want at least 1`},
		{nil, []string{"certs", "--role", "pilot", "--name", "g"}, `--role "pilot": want gate, officer, admin, partner or node`},
		{nil, []string{"certs", "--role", "node", "--name", "n"}, `a node certificate needs --host`},
		{nil, []string{"salvage", "--data", "d"}, "salvage needs --out"},
	} {
		_, errs, code := runMatchd(tc.env, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("matchd %v with %v: exit %d %q, want exit 2 naming %q", tc.args, tc.env, code, errs, tc.want)
		}
	}
}

// TestMatchdFlagOverEnv: the command line wins over the environment, which
// wins over the default (certs, which runs to the end without a server).
func TestMatchdFlagOverEnv(t *testing.T) {
	data := t.TempDir()
	if _, err := pki.EnsureLocal(TLSDir(data), []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	env := map[string]string{"BORDERMATCH_DATA": data, "BORDERMATCH_OUT": out, "BORDERMATCH_NAME": "from-env", "BORDERMATCH_ROLE": "gate"}
	if _, errs, code := runMatchd(env, "certs", "--name", "from-flag"); code != ExitOK {
		t.Fatalf("certs: exit %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "from-flag.pem")); err != nil {
		t.Errorf("the flag's name was not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "from-env.pem")); err == nil {
		t.Error("the environment's name was used over the flag's")
	}
	env["BORDERMATCH_NAME"] = "env-only"
	if _, errs, code := runMatchd(env, "certs"); code != ExitOK {
		t.Fatalf("certs: exit %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(out, "env-only.pem")); err != nil {
		t.Errorf("the environment's name was not used: %v", err)
	}
}

// TestMatchdOptionFlags: every Options field a person sets has a flag, so
// that Validate's errors name one.
func TestMatchdOptionFlags(t *testing.T) {
	root := (&cli{lookupEnv: func(string) (string, bool) { return "", false }}).root()
	notFlags := map[string]bool{"Logger": true, "Ready": true, "FaceThresholdFromFMR": true, "MoreFaces": true}
	typ := reflect.TypeFor[Options]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if notFlags[name] {
			continue
		}
		flag, ok := optionFlags[name]
		if !ok {
			t.Errorf("Options.%s has no flag in optionFlags", name)
			continue
		}
		if root.Flags().Lookup(flag) == nil {
			t.Errorf("Options.%s: no flag --%s", name, flag)
		}
	}
}

// TestOptionsValidate: the defaults are valid, and each unusable field is
// named.
func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("DefaultOptions: %v", err)
	}
	for field, set := range map[string]func(*Options){
		"Listen":             func(o *Options) { o.Listen = "" },
		"DataDir":            func(o *Options) { o.DataDir = "" },
		"ModelsDir":          func(o *Options) { o.ModelsDir = "" },
		"Detector":           func(o *Options) { o.Detector = 7 },
		"FaceModel":          func(o *Options) { o.FaceModel = "" },
		"MoreFaceModels":     func(o *Options) { o.MoreFaceModels = []string{"dlib", ""} },
		"Threshold":          func(o *Options) { o.Threshold = float32(math.NaN()) },
		"TargetFMR":          func(o *Options) { o.TargetFMR = 0 },
		"FingerQualityFloor": func(o *Options) { o.FingerQualityFloor = -1 },
		"FingerDPI":          func(o *Options) { o.FingerDPI = 0 },
		"MaxMessageBytes":    func(o *Options) { o.MaxMessageBytes = 0 },
		"MaxImagePixels":     func(o *Options) { o.MaxImagePixels = -1 },
		"ShutdownGrace":      func(o *Options) { o.ShutdownGrace = -1 },
		"RateLimit":          func(o *Options) { o.RateLimit = math.Inf(1) },
		"RateBurst":          func(o *Options) { o.RateBurst = 0 },
		"MaxConcurrent":      func(o *Options) { o.MaxConcurrent = -1 },
		"PurgeInterval":      func(o *Options) { o.PurgeInterval = -1 },
		"AuditRetention":     func(o *Options) { o.AuditRetention = -1 },
		"Pprof":              func(o *Options) { o.Pprof = true },
	} {
		o := DefaultOptions()
		set(&o)
		var oe *OptionError
		if err := o.Validate(); !errors.As(err, &oe) || oe.Field != field {
			t.Errorf("bad %s: %v", field, err)
		}
	}
	// 0 is a valid floor (none), and so are no rate limit and no grace.
	o := DefaultOptions()
	o.FingerQualityFloor, o.RateLimit, o.RateBurst, o.ShutdownGrace = 0, 0, 0, 0
	if err := o.Validate(); err != nil {
		t.Errorf("no floor, no limit, no grace: %v", err)
	}
}

// TestMatchdCertsRefusesIssuedName: a name the local CA issued is not
// issued again, whatever the role or the letters' case (a gate named
// local-admin would be audited as the admin), unless renewed with its role;
// the register beside the CA lists every certificate with its key id.
func TestMatchdCertsRefusesIssuedName(t *testing.T) {
	data := t.TempDir()
	if _, err := pki.EnsureLocal(TLSDir(data), []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	certs := func(args ...string) (string, string, int) {
		return runMatchd(nil, append([]string{"certs", "--data", data, "--out", t.TempDir()}, args...)...)
	}
	if _, errs, code := certs("--role", "gate", "--name", "gate-07"); code != ExitOK {
		t.Fatalf("a new name: exit %d %s", code, errs)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "gate", "--name", "local-admin"}, `"local-admin" was issued on`},
		{[]string{"--role", "admin", "--name", "Local-Admin"}, `"local-admin" was issued on`},
		{[]string{"--role", "gate", "--name", "gate-07"}, `"gate-07" was issued on`},
		{[]string{"--role", "officer", "--name", "matchd"}, `"matchd" was issued on`},
		{[]string{"--role", "officer", "--name", "gate-07", "--renew"}, `"gate-07" is a gate certificate; a renewal keeps the role`},
		{[]string{"--role", "gate", "--name", "gate-08", "--renew"}, `"gate-08" is not in the register`},
	} {
		out, errs, code := certs(tc.args...)
		if code != ExitFailure || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("certs %v: exit %d, stdout %q, stderr %q; want exit 1 naming %q", tc.args, code, out, errs, tc.want)
		}
	}
	out, errs, code := certs("--role", "gate", "--name", "gate-07", "--renew")
	if code != ExitOK {
		t.Fatalf("renewing gate-07: exit %d %s", code, errs)
	}
	reg, err := pki.OpenRegister(TLSDir(data))
	if err != nil {
		t.Fatal(err)
	}
	last, ok := reg.Lookup("gate-07")
	if !ok || !last.Renewal || last.Role != "gate" || !strings.Contains(out, "key id "+last.KeyID) {
		t.Errorf("register's gate-07 after the renewal: %+v (ok %v); certs said %q", last, ok, out)
	}
	if adm, ok := reg.Lookup("local-admin"); !ok || adm.Role != "admin" || len(adm.KeyID) != 16 {
		t.Errorf("register's local-admin: %+v (ok %v)", adm, ok)
	}
}
