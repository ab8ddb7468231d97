package watchlist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bordermatch/bordermatch/pki"
)

// connFlags are the connection security settings.
type connFlags struct {
	data, ca, cert, key, token string
	insecure                   bool
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
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("give --cert and --key together")
	}
	if cert == "" && token == "" {
		cert, key = filepath.Join(dir, pki.AdminFile), filepath.Join(dir, pki.AdminKeyFile)
		if _, err := os.Stat(cert); err != nil {
			return nil, fmt.Errorf("no credentials: %s is missing (matchd creates it on first start in its --data directory; or give --cert/--key, or a token in BORDERMATCH_TOKEN)", cert)
		}
	}
	cfg, err := pki.ClientConfig(ca, cert, key)
	if err != nil {
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

func tlsTrouble(msg string) bool {
	for _, w := range []string{"handshake", "certificate", "x509", "tls:", "server preface"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
