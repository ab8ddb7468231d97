package watchlist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bordermatch/bordermatch/pki"
)

// defaultPort is matchd's port when --server names a host alone; a
// variable so that tests can point it at a server of their own.
var defaultPort = "50051"

// withDefaultPort adds defaultPort to a host without one. gRPC would
// otherwise dial port 443, where no matchd listens. Targets with a scheme
// (dns:///, unix:) are left to gRPC.
func withDefaultPort(addr string) string {
	if addr == "" || strings.Contains(addr, "://") || strings.HasPrefix(addr, "unix:") {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	host := addr
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1] // [::1]
	} else if strings.Count(host, ":") == 1 {
		return addr // host: with an empty or bad port, for gRPC to refuse by name
	}
	return net.JoinHostPort(host, defaultPort)
}

// connFlags are the connection security settings.
type connFlags struct {
	data, ca, cert, key, token string
	insecure                   bool
	// fromData is the tls/ directory of --data when the CA or the client
	// certificate was taken from it, for the advice on a failed handshake.
	fromData string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (c *connFlags) register(pf *pflag.FlagSet) {
	pf.StringVar(&c.data, "data", envOr("BORDERMATCH_DATA", "./data"), "matchd's data directory, whose tls/ holds the local CA and admin certificate used by default (env BORDERMATCH_DATA)")
	pf.StringVar(&c.ca, "ca", os.Getenv("BORDERMATCH_CA"), "CA certificate that signed matchd's certificate (env BORDERMATCH_CA; default <data>/tls/ca.pem)")
	pf.StringVar(&c.cert, "cert", os.Getenv("BORDERMATCH_CERT"), "client certificate (env BORDERMATCH_CERT; default <data>/tls/admin.pem unless --token)")
	pf.StringVar(&c.key, "key", os.Getenv("BORDERMATCH_KEY"), "client certificate's key (env BORDERMATCH_KEY)")
	pf.StringVar(&c.token, "token", "", "bearer token (prefer the environment variable BORDERMATCH_TOKEN: a flag shows in the process list)")
	pf.BoolVar(&c.insecure, "insecure", false, "plaintext, for a matchd run with --insecure")
}

// dialOptions returns the transport and call credentials.
func (c *connFlags) dialOptions() ([]grpc.DialOption, error) {
	token := c.token
	if token == "" {
		token = os.Getenv("BORDERMATCH_TOKEN")
	}
	var opts []grpc.DialOption
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token, secure: !c.insecure}))
	}
	if c.insecure {
		if c.ca != "" || c.cert != "" {
			return nil, errors.New("--insecure with --ca or --cert: choose one")
		}
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials())), nil
	}
	dir := filepath.Join(c.data, "tls")
	ca, cert, key := c.ca, c.cert, c.key
	if ca == "" {
		ca = filepath.Join(dir, pki.CAFile)
		c.fromData = dir
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("give --cert and --key together")
	}
	if cert == "" && token == "" {
		cert, key = filepath.Join(dir, pki.AdminFile), filepath.Join(dir, pki.AdminKeyFile)
		c.fromData = dir
		if _, err := os.Stat(cert); err != nil {
			return nil, fmt.Errorf("no credentials: %s is missing (matchd creates it on first start in its --data directory; or give --cert/--key, or a token in BORDERMATCH_TOKEN)", cert)
		}
	}
	cfg, err := pki.ClientConfig(ca, cert, key)
	if err != nil {
		if c.fromData != "" {
			return nil, fmt.Errorf("%w (give --data the data directory matchd runs with, or --ca)", err)
		}
		return nil, err
	}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg))), nil
}

// bearer sends "authorization: Bearer TOKEN" with every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// advice says which setting to change after a failed handshake (msg).
func (c *connFlags) advice(msg string) string {
	switch {
	case c.insecure:
		return "it may serve TLS: leave out --insecure"
	case strings.Contains(msg, "does not look like a TLS handshake"):
		return "it does not speak TLS: --insecure for a matchd run with --insecure"
	case c.fromData != "":
		// The usual mistake: the CLI runs elsewhere than matchd's data
		// directory, so ./data/tls holds another CA, or none of matchd's.
		return fmt.Sprintf("the CA or admin certificate in %s is not this matchd's: give --data the data directory matchd runs with, or --ca, --cert and --key", c.fromData)
	}
	return "check --ca, --cert, --key, or --insecure for a server run with --insecure"
}

func tlsTrouble(msg string) bool {
	for _, w := range []string{"handshake", "certificate", "x509", "tls:", "server preface"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
