package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startSolo starts one embedded JetStream server and opens the log on it.
func startSolo(t *testing.T, node string) (Config, *nats.Conn, jetstream.JetStream, *Log) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Logger = node, 1, testLogger(t)
	cfg.Embedded = &Embedded{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	s, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := Connect(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, nc, l.JetStream(), l
}
