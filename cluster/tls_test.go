package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/bordermatch/bordermatch/pki"
)

// nodeTLS writes a CA and a node certificate for 127.0.0.1 under dir, as
// `matchd certs --role node --host 127.0.0.1` issues them, and returns the
// files.
func nodeTLS(t *testing.T, ca *pki.CA, dir, name string) TLSFiles {
	t.Helper()
	cert, key, err := ca.Issue(pki.Request{CommonName: name, Node: true, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	for file, b := range map[string][]byte{f.CA: ca.PEM, f.Cert: cert, f.Key: key} {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestLogMutualTLS: three embedded servers whose clients and routes use
// mutual TLS with node certificates of one CA form a cluster and carry an
// R3 log; a client without a certificate, or with one of another CA, is
// refused.
func TestLogMutualTLS(t *testing.T) {
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 6)
	cfgs := make([]Config, 3)
	for i := range 3 {
		c := DefaultConfig()
		c.Node, c.Logger = fmt.Sprintf("n%d", i), testLogger(t)
		e := &Embedded{Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), StoreDir: t.TempDir()}
		for j := range 3 {
			if j != i {
				e.Routes = append(e.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+j]))
			}
		}
		c.Embedded = e
		c.TLS = nodeTLS(t, ca, dir, c.Node)
		cfgs[i] = c
	}
	servers := make([]*server.Server, 3)
	for i, c := range cfgs {
		s, err := StartEmbedded(c)
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		defer s.Shutdown()
	}
	nc, err := Connect(cfgs[0], servers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, nc, cfgs[0])
	if err != nil {
		t.Fatalf("R3 log over mutual TLS routes: %v", err)
	}
	seq, err := l.Append(ctx, ShardOf("A", DefaultShards), "req-A", enrolMsg(t, "A"))
	if err != nil || seq == 0 {
		t.Fatalf("append over TLS: %d %v", seq, err)
	}
	if !strings.HasPrefix(servers[0].ClientURL(), "nats://") {
		t.Logf("client URL %s", servers[0].ClientURL())
	}

	// No client certificate: refused at the handshake.
	url := fmt.Sprintf("tls://127.0.0.1:%d", ports[1])
	if c, err := nats.Connect(url, nats.RootCAs(cfgs[0].TLS.CA), nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client without a certificate was let in")
	}
	// A certificate of another CA: refused too.
	other, err := pki.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	stranger := nodeTLS(t, other, t.TempDir(), "stranger")
	if c, err := nats.Connect(url, nats.RootCAs(cfgs[0].TLS.CA), nats.ClientCert(stranger.Cert, stranger.Key),
		nats.MaxReconnects(0), nats.Timeout(2*time.Second)); err == nil {
		c.Close()
		t.Fatal("a client with another CA's certificate was let in")
	}
}
