package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Node = "n1"
		c.Servers = []string{"nats://127.0.0.1:4222"}
		return c
	}
	emb := func(c *Config) {
		c.Servers = nil
		c.Embedded = &Embedded{Listen: "127.0.0.1:0", ClusterListen: "127.0.0.1:6222", StoreDir: "/tmp/js",
			Routes: []string{"nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"}}
	}
	good := base()
	if err := good.Validate(); err != nil {
		t.Fatalf("default + node + servers: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"embedded R3", emb, ""},
		{"no node", func(c *Config) { c.Node = "" }, "node"},
		{"node with space", func(c *Config) { c.Node = "a b" }, "node"},
		{"shards 0", func(c *Config) { c.Shards = 0 }, "shards"},
		{"partitions 0", func(c *Config) { c.Partitions = 0 }, "partitions"},
		{"partitions > shards", func(c *Config) { c.Shards = 4; c.Partitions = 5 }, "partitions"},
		{"partition out of range", func(c *Config) { c.Partitions = 2; c.Partition = 2 }, "partition 2"},
		{"replica < 0", func(c *Config) { c.Replica = -1 }, "replica"},
		{"stream replicas 0", func(c *Config) { c.StreamReplicas = 0 }, "stream_replicas"},
		{"stream replicas 7", func(c *Config) { c.StreamReplicas = 7 }, "stream_replicas"},
		{"ready timeout", func(c *Config) { c.ReadyTimeout = 0 }, "ready_timeout"},
		{"neither", func(c *Config) { c.Servers = nil }, "servers"},
		{"both", func(c *Config) { emb(c); c.Servers = []string{"nats://x"} }, "servers"},
		{"empty server", func(c *Config) { c.Servers = []string{""} }, "servers[0]"},
		{"embedded listen", func(c *Config) { emb(c); c.Embedded.Listen = "nope" }, "embedded.listen"},
		{"embedded store", func(c *Config) { emb(c); c.Embedded.StoreDir = "" }, "embedded.store_dir"},
		{"routes without listen", func(c *Config) { emb(c); c.Embedded.ClusterListen = "" }, "embedded.cluster_listen"},
		{"R3 on one server", func(c *Config) { emb(c); c.Embedded.Routes = nil; c.Embedded.ClusterListen = "" }, "stream_replicas"},
		{"cert without key", func(c *Config) { c.TLS = TLSFiles{CA: "ca.pem", Cert: "c.pem"} }, "tls.key"},
		{"no CA", func(c *Config) { c.TLS = TLSFiles{Cert: "c.pem", Key: "k.pem"} }, "tls.ca"},
		{"CA only", func(c *Config) { c.TLS = TLSFiles{CA: "ca.pem"} }, "tls.cert"},
		{"full TLS", func(c *Config) { c.TLS = TLSFiles{CA: "ca.pem", Cert: "c.pem", Key: "k.pem"} }, ""},
	} {
		c := base()
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.field)
		}
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.yaml")
	os.WriteFile(p, []byte(`node: n2
partition: 1
replica: 0
partitions: 2
embedded:
  listen: 127.0.0.1:4222
  cluster_listen: 127.0.0.1:6222
  routes: [nats-route://10.0.0.1:6222, nats-route://10.0.0.2:6222]
  store_dir: /var/lib/bordermatch/nats
`), 0o600)
	c, err := ReadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "n2" || c.Partition != 1 || c.Shards != DefaultShards || c.StreamReplicas != 3 || len(c.Embedded.Routes) != 2 {
		t.Fatalf("read %+v", c)
	}
	os.WriteFile(p, []byte("node: n2\nservers: [nats://x]\nshard: 12\n"), 0o600)
	if _, err := ReadConfig(p); err == nil || !strings.Contains(err.Error(), "shard") {
		t.Fatalf("misspelt key: %v", err)
	}
}
