package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// maxPayload is the embedded server's max_payload: a whole envelope plus
// the NATS headers (Nats-Msg-Id and JetStream's own).
const maxPayload = MaxMessageSize + 64<<10

// StartEmbedded starts the in-process JetStream server cfg.Embedded
// describes: file storage under StoreDir, fsync on every write (SyncAlways:
// an acknowledgement means the write is on disk on a quorum; NATS's default
// 2-minute sync loses acknowledged writes on power loss, Jepsen 2025), routes
// to the other servers of a three-node setup, mutual TLS for clients and
// routes when cfg.TLS is set. It returns once the server accepts
// connections; JetStream itself is ready only when a meta leader is elected,
// which needs a quorum of the servers — Open waits for that.
func StartEmbedded(cfg Config) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := cfg.Embedded
	if e == nil {
		return nil, errors.New("cluster: embedded: not configured")
	}
	host, port, err := splitHostPort(e.Listen)
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded.listen: %w", err)
	}
	opts := &server.Options{
		ServerName:   cfg.Node,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     e.StoreDir,
		SyncAlways:   true,
		MaxPayload:   maxPayload,
		NoSigs:       true,
		PingInterval: 10 * time.Second,
	}
	if e.ClusterListen != "" {
		ch, cp, err := splitHostPort(e.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster: embedded.cluster_listen: %w", err)
		}
		if cp == 0 {
			cp = server.RANDOM_PORT
		}
		name := e.ClusterName
		if name == "" {
			name = DefaultClusterName
		}
		opts.Cluster = server.ClusterOpts{Name: name, Host: ch, Port: cp}
		if len(e.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(e.Routes, ","))
		}
	}
	if cfg.TLS.Enabled() {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, CaFile: cfg.TLS.CA, Verify: true,
		})
		if err != nil {
			return nil, fmt.Errorf("cluster: tls: %w", err)
		}
		opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = tc, true, 2
		if e.ClusterListen != "" {
			rc, err := server.GenTLSConfig(&server.TLSConfigOpts{
				CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key, CaFile: cfg.TLS.CA, Verify: true,
			})
			if err != nil {
				return nil, fmt.Errorf("cluster: tls: %w", err)
			}
			// A route is dialled too: the dialling side verifies its
			// peer against the same CA (GenTLSConfig sets only ClientCAs).
			rc.RootCAs = rc.ClientCAs
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = rc, 2
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded server: %w", err)
	}
	s.SetLoggerV2(natsLogger{cfg.Logger.With().Str("nats", cfg.Node).Logger()}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("cluster: embedded server %s not accepting connections after 10s", cfg.Node)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	return h, n, nil
}

// Connect opens the node's NATS connection: to the embedded server s when
// cfg.Embedded is set, else to cfg.Servers; with the TLS files when set, and
// reconnecting forever (the log's callers bound their own waits).
func Connect(cfg Config, s *server.Server) (*nats.Conn, error) {
	url := strings.Join(cfg.Servers, ",")
	if cfg.Embedded != nil {
		if s == nil {
			return nil, errors.New("cluster: connect: embedded configured but no server given")
		}
		url = s.ClientURL()
	}
	opts := []nats.Option{
		nats.Name("matchd " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
	}
	if cfg.TLS.Enabled() {
		opts = append(opts, nats.RootCAs(cfg.TLS.CA), nats.ClientCert(cfg.TLS.Cert, cfg.TLS.Key))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	return nc, nil
}

// natsLogger sends the embedded server's log to zerolog; notices are Debug
// (a server is chatty at start), warnings and errors keep their level.
type natsLogger struct{ log zerolog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf("fatal: "+format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
