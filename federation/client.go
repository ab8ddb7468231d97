package federation

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// Client calls partners' Federation services with this agency's partner
// certificates, one connection per partner, made at the first call.
type Client struct {
	mu       sync.Mutex
	partners map[string]Loaded
	conns    map[string]*grpc.ClientConn
}

// NewClient returns a client of partners.
func NewClient(partners []Loaded) *Client {
	c := &Client{partners: map[string]Loaded{}, conns: map[string]*grpc.ClientConn{}}
	for _, p := range partners {
		c.partners[p.Name] = p
	}
	return c
}

// Names returns the partners' names.
func (c *Client) Names() []string {
	var out []string
	for n := range c.partners {
		out = append(out, n)
	}
	return out
}

// Partner returns the Federation client of partner name, and its
// configuration.
func (c *Client) Partner(name string) (pb.FederationClient, Loaded, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.partners[name]
	if !ok {
		return nil, p, fmt.Errorf("%w: %q is not configured (matchd --federation)", ErrUnknownPartner, name)
	}
	conn := c.conns[name]
	if conn == nil {
		roots := x509.NewCertPool()
		roots.AddCert(p.CACert)
		cfg := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{p.Client}, ServerName: p.ServerName, MinVersion: tls.VersionTLS12}
		var err error
		conn, err = grpc.NewClient(p.Address, grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
		if err != nil {
			return nil, p, fmt.Errorf("federation: partner %s at %s: %w", name, p.Address, err)
		}
		c.conns[name] = conn
	}
	return pb.NewFederationClient(conn), p, nil
}

// Close closes the connections.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, conn := range c.conns {
		conn.Close()
		delete(c.conns, n)
	}
}
