// Package cluster is the groundwork of a sharded, replicated matchd (issue
// 15): the replicated enrolment log on NATS JetStream. It holds the node's
// cluster configuration, an in-process JetStream server for three-node
// deployments and tests (StartEmbedded), the message envelope that carries an
// enrolment or a deletion (Encode, Decode), the fixed subject → shard mapping
// (ShardOf), and the log itself (Log): durable appends acknowledged after a
// quorum fsync and in-order delivery of a partition's shards to an apply
// function; and the scatter-gather identification across partitions
// (search.go: Serve, Coordinator), which calls the engine; and a new
// replica's bootstrap from a peer's backup (bootstrap.go: ServeBackups,
// Bootstrap, NeedsBootstrap). It does not import
// the server; matchd wires them together.
package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// Configuration defaults and limits.
const (
	// DefaultShards is the number of logical shards. Subjects map to shards
	// by ShardOf, which must never change for a deployed cluster.
	DefaultShards = 256
	// MaxShards bounds Shards (a shard is one stream subject).
	MaxShards = 65536
	// DefaultStreamReplicas is the JetStream stream's replication factor.
	DefaultStreamReplicas = 3
	// MaxStreamReplicas is JetStream's own limit.
	MaxStreamReplicas = 5
	// DefaultClusterName names the embedded servers' route cluster.
	DefaultClusterName = "bordermatch"
	// DefaultReadyTimeout bounds the wait for JetStream's meta leader.
	DefaultReadyTimeout = 30 * time.Second
)

// Config is one matchd node's place in the cluster and how it reaches NATS.
type Config struct {
	// Node names this node; it is also the embedded server's name, so it
	// must be unique in the cluster. Letters, digits, '-', '_' and '.'.
	Node string `yaml:"node"`
	// Partition is the partition this node serves, 0 ≤ Partition < Partitions.
	Partition int `yaml:"partition"`
	// Replica is this node's replica index within its partition.
	Replica int `yaml:"replica"`
	// Partitions is the number of partitions the shards are spread over.
	Partitions int `yaml:"partitions"`
	// Shards is the number of logical shards (default 256, fixed forever).
	Shards int `yaml:"shards"`
	// Servers are NATS URLs (nats://host:4222, tls://…) of an external
	// JetStream cluster. Exactly one of Servers and Embedded is set.
	Servers []string `yaml:"servers,omitempty"`
	// Embedded runs a JetStream server inside this process.
	Embedded *Embedded `yaml:"embedded,omitempty"`
	// StreamReplicas is the enrolment stream's replication factor (default 3).
	StreamReplicas int `yaml:"stream_replicas"`
	// ReadyTimeout bounds Open's wait for JetStream to elect a meta leader.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// TLS, when set, secures client connections and routes (mutual TLS).
	TLS TLSFiles `yaml:"tls,omitempty"`
	// Logger receives the embedded server's log and skipped messages.
	Logger zerolog.Logger `yaml:"-"`
}

// Embedded configures an in-process JetStream server.
type Embedded struct {
	// Listen is the client listen address, host:port (port 0: any free port).
	Listen string `yaml:"listen"`
	// ClusterListen is the route listen address, host:port; empty for a
	// single server.
	ClusterListen string `yaml:"cluster_listen,omitempty"`
	// ClusterName names the route cluster (default "bordermatch").
	ClusterName string `yaml:"cluster_name,omitempty"`
	// Routes are the other servers' route addresses, nats-route://host:port.
	Routes []string `yaml:"routes,omitempty"`
	// StoreDir holds JetStream's file storage.
	StoreDir string `yaml:"store_dir"`
}

// TLSFiles are PEM file paths, from the same PKI as gRPC (pki/).
type TLSFiles struct {
	CA   string `yaml:"ca,omitempty"`
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
}

// Enabled reports whether any TLS file is set.
func (t TLSFiles) Enabled() bool { return t.CA != "" || t.Cert != "" || t.Key != "" }

// DefaultConfig returns a one-partition configuration with the defaults; the
// caller sets Node and either Servers or Embedded.
func DefaultConfig() Config {
	return Config{
		Partitions:     1,
		Shards:         DefaultShards,
		StreamReplicas: DefaultStreamReplicas,
		ReadyTimeout:   DefaultReadyTimeout,
	}
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the configuration; the error names the first wrong field.
func (c *Config) Validate() error {
	switch {
	case !nodeName.MatchString(c.Node):
		return fmt.Errorf("cluster: node %q: want 1..64 letters, digits, '-', '_', '.'", c.Node)
	case c.Shards < 1 || c.Shards > MaxShards:
		return fmt.Errorf("cluster: shards %d: want 1..%d", c.Shards, MaxShards)
	case c.Partitions < 1 || c.Partitions > c.Shards:
		return fmt.Errorf("cluster: partitions %d: want 1..shards (%d)", c.Partitions, c.Shards)
	case c.Partition < 0 || c.Partition >= c.Partitions:
		return fmt.Errorf("cluster: partition %d: want 0..%d", c.Partition, c.Partitions-1)
	case c.Replica < 0:
		return fmt.Errorf("cluster: replica %d: want ≥ 0", c.Replica)
	case c.StreamReplicas < 1 || c.StreamReplicas > MaxStreamReplicas:
		return fmt.Errorf("cluster: stream_replicas %d: want 1..%d", c.StreamReplicas, MaxStreamReplicas)
	case c.ReadyTimeout <= 0:
		return fmt.Errorf("cluster: ready_timeout %v: want > 0", c.ReadyTimeout)
	case len(c.Servers) == 0 && c.Embedded == nil:
		return errors.New("cluster: servers: want NATS URLs, or embedded")
	case len(c.Servers) > 0 && c.Embedded != nil:
		return errors.New("cluster: servers: set servers or embedded, not both")
	}
	for i, s := range c.Servers {
		if s == "" {
			return fmt.Errorf("cluster: servers[%d]: empty URL", i)
		}
	}
	if e := c.Embedded; e != nil {
		if err := checkHostPort(e.Listen); err != nil {
			return fmt.Errorf("cluster: embedded.listen %q: %v", e.Listen, err)
		}
		if e.StoreDir == "" {
			return errors.New("cluster: embedded.store_dir: want a directory")
		}
		if len(e.Routes) > 0 && e.ClusterListen == "" {
			return errors.New("cluster: embedded.cluster_listen: routes need a route listen address")
		}
		if e.ClusterListen != "" {
			if err := checkHostPort(e.ClusterListen); err != nil {
				return fmt.Errorf("cluster: embedded.cluster_listen %q: %v", e.ClusterListen, err)
			}
		}
		for i, r := range e.Routes {
			if r == "" {
				return fmt.Errorf("cluster: embedded.routes[%d]: empty", i)
			}
		}
		if n := len(e.Routes) + 1; c.StreamReplicas > n {
			return fmt.Errorf("cluster: stream_replicas %d: the embedded cluster has only %d servers (routes + 1)", c.StreamReplicas, n)
		}
	}
	t := c.TLS
	if (t.Cert == "") != (t.Key == "") {
		return errors.New("cluster: tls.key: cert and key go together")
	}
	if t.Enabled() && t.CA == "" {
		return errors.New("cluster: tls.ca: mutual TLS needs the CA")
	}
	if t.Enabled() && t.Cert == "" {
		return errors.New("cluster: tls.cert: mutual TLS needs a certificate and key")
	}
	return nil
}

func checkHostPort(s string) error {
	if s == "" {
		return errors.New("want host:port")
	}
	_, _, err := net.SplitHostPort(s)
	return err
}

// ReadConfig reads a cluster configuration file (YAML; JSON is YAML too)
// over DefaultConfig and validates it. Unknown keys are refused, so that a
// misspelt setting is not silently ignored.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cluster config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	c := DefaultConfig()
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("cluster config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("cluster config %s: %w", path, err)
	}
	return c, nil
}
