package watchlist

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/server"
)

// testdata is the repository's test photos and sample watchlist.
const testdata = "../testdata"

func modelsDir() string {
	if d := os.Getenv("BORDERMATCH_MODELS"); d != "" {
		return d
	}
	return "../models"
}

// matchd is a real matchd (server.Serve: a Badger gallery on disk, the
// default face model, the audit trail) serving TLS on a loopback port with
// the local CA it creates in data/tls, as `matchd --data DATA` does.
type matchd struct {
	addr, data string
}

// conn are the flags that reach it as admin: its data directory's CA and
// admin certificate.
func (m matchd) conn() []string {
	return []string{"--server", m.addr, "--data", m.data, "--timeout", "60s"}
}

func startMatchd(t *testing.T) matchd {
	t.Helper()
	opt := server.DefaultOptions()
	opt.Listen, opt.DataDir, opt.ModelsDir = "127.0.0.1:0", t.TempDir(), modelsDir()
	opt.Logger, opt.ShutdownGrace, opt.RateLimit = zerolog.Nop(), 0, 0
	ready := make(chan net.Addr, 1)
	opt.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, opt) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("matchd: %v", err)
		}
	})
	select {
	case a := <-ready:
		return matchd{addr: a.String(), data: opt.DataDir}
	case err := <-done:
		t.Fatalf("matchd did not start (models in %s? set BORDERMATCH_MODELS): %v", opt.ModelsDir, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("matchd did not start within 2 minutes")
	}
	return matchd{}
}

func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, to, b)
}

// amyPhoto is a photo of one face from the sample watchlist.
func amyPhoto() string { return filepath.Join(testdata, "watchlist", "amy", "1.png") }
