package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bordermatch/bordermatch/pki"
	"github.com/bordermatch/bordermatch/server"
)

type accessOpts struct {
	insecure                    *bool
	cert, key, clientCA, tokens *string
	rate                        *float64
	burst, concurrent           *int
}

func accessFlags(fs *flag.FlagSet) accessOpts {
	return accessOpts{
		insecure:   fs.Bool("insecure", false, "serve plaintext gRPC with no client authentication (every caller is admin unless --tokens); development only"),
		cert:       fs.String("tls-cert", env("BORDERMATCH_TLS_CERT", ""), "server certificate `file` (PEM); default: the local CA's in <data>/tls"),
		key:        fs.String("tls-key", env("BORDERMATCH_TLS_KEY", ""), "server key `file` (PEM)"),
		clientCA:   fs.String("client-ca", env("BORDERMATCH_CLIENT_CA", ""), "CA certificate `file` that client certificates must chain to"),
		tokens:     fs.String("tokens", env("BORDERMATCH_TOKENS", ""), "bearer token `file`: TOKEN IDENTITY ROLE per line (client certificates become optional)"),
		rate:       fs.Float64("rate-limit", 50, "calls per second each caller may make, sustained (0: no limit)"),
		burst:      fs.Int("rate-burst", 100, "calls a caller may make at once above --rate-limit"),
		concurrent: fs.Int("max-concurrent", 16, "calls each caller may have in flight (0: no limit)"),
	}
}

// certs issues a client certificate for a role from the local CA.
func certs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("matchd certs", flag.ContinueOnError)
	var (
		data = fs.String("data", env("BORDERMATCH_DATA", "./data"), "data `dir`ectory whose tls/ holds the local CA")
		role = fs.String("role", "", "role of the certificate: gate, officer or admin")
		name = fs.String("name", "", "the client's name (the certificate's common name; audit records show it)")
		out  = fs.String("out", ".", "`dir`ectory to write NAME.pem and NAME-key.pem into")
		days = fs.Int("days", 365, "validity in days")
	)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: matchd certs --role gate|officer|admin --name NAME [--out DIR] [--data DIR] [--days N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("certs: unexpected argument %q", fs.Arg(0))
	case !pki.ValidRole(*role):
		return fmt.Errorf("certs: --role %q: want gate, officer or admin", *role)
	case *name == "" || filepath.Base(*name) != *name || len(*name) > 64:
		return fmt.Errorf("certs: --name %q: want a plain name such as gate-07", *name)
	case *days < 1:
		return fmt.Errorf("certs: --days %d: want at least 1", *days)
	}
	dir := server.TLSDir(*data)
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.CAKeyFile))
	if err != nil {
		return fmt.Errorf("certs: %w (matchd creates the local CA in %s on its first start)", err, dir)
	}
	cert, key, err := ca.Issue(pki.Request{CommonName: *name, Role: *role, Validity: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	certFile, keyFile := filepath.Join(*out, *name+".pem"), filepath.Join(*out, *name+"-key.pem")
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("certs: %s exists; not overwriting it", f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(keyFile, key, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(certFile, cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Issued a %s certificate for %q, valid %d days:\n  %s\n  %s\nThe client also needs the CA certificate %s.\n",
		*role, *name, *days, certFile, keyFile, filepath.Join(dir, pki.CAFile))
	return nil
}
