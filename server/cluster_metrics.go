package server

// A cluster node's metrics: how far its replica is behind the log, how much
// of the gallery its coordinated searches covered, and its NATS connection.

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

var (
	applyLagDesc = prometheus.NewDesc("bordermatch_cluster_apply_lag_messages",
		"Log messages of this node's shards not yet applied to its gallery (the stream's last sequence of each shard minus the applied one, summed).", nil, nil)
	appliedDesc = prometheus.NewDesc("bordermatch_cluster_applied_messages_total",
		"Log messages this node's replica applied, skipped as already applied, refused or found malformed since it started.", []string{"outcome"}, nil)
	natsDesc = prometheus.NewDesc("bordermatch_cluster_nats_connected",
		"1 while the node's NATS connection is connected, 0 otherwise (reconnecting, closed).", nil, nil)
	epochDesc = prometheus.NewDesc("bordermatch_cluster_shard_map_epoch",
		"Epoch of the shard map this node answers with.", nil, nil)
)

// clusterCollector reads a node's state at scrape time.
type clusterCollector struct{ n *clusterNode }

func (clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- applyLagDesc
	ch <- appliedDesc
	ch <- natsDesc
	ch <- epochDesc
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	connected := 0.0
	if n.nc != nil && n.nc.Status() == nats.CONNECTED {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(natsDesc, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(epochDesc, prometheus.GaugeValue, float64(n.epoch()))
	if n.rep == nil {
		return
	}
	st := n.rep.Stats()
	for outcome, v := range map[string]uint64{"applied": st.Applied, "skipped": st.Skipped, "refused": st.Refused, "malformed": st.Malformed} {
		ch <- prometheus.MustNewConstMetric(appliedDesc, prometheus.CounterValue, float64(v), outcome)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if lag, err := n.rep.Lag(ctx); err == nil {
		var sum uint64
		for _, l := range lag {
			sum += l
		}
		ch <- prometheus.MustNewConstMetric(applyLagDesc, prometheus.GaugeValue, float64(sum))
	}
}

// clusterMetrics are the coverage counters of coordinated searches.
type clusterMetrics struct {
	once     sync.Once
	coverage prometheus.Histogram
	searches *prometheus.CounterVec
}

// registerCluster adds a node's metrics.
func (m *Metrics) registerCluster(n *clusterNode) {
	if m == nil {
		return
	}
	m.cluster.once.Do(func() {
		m.cluster.coverage = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bordermatch_cluster_search_coverage_ratio",
			Help:    "Share of partitions that answered each identification this node coordinated (1: the whole gallery).",
			Buckets: []float64{0, 0.25, 0.5, 0.75, 0.99, 1},
		})
		m.cluster.searches = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bordermatch_cluster_searches_total",
			Help: "Identifications this node coordinated, by outcome: complete, partial (allowed), unavailable (a partition missing), error.",
		}, []string{"outcome"})
		m.reg.MustRegister(m.cluster.coverage, m.cluster.searches, clusterCollector{n})
	})
}

// observeCoverage records one coordinated identification.
func (m *Metrics) observeCoverage(answered, total int, err error) {
	if m == nil || m.cluster.coverage == nil || total == 0 {
		return
	}
	outcome := "complete"
	switch {
	case err != nil && codeOf(err) == codes.Unavailable:
		outcome = "unavailable"
	case err != nil:
		outcome = "error"
		m.cluster.searches.WithLabelValues(outcome).Inc()
		return
	case answered < total:
		outcome = "partial"
	}
	m.cluster.coverage.Observe(float64(answered) / float64(total))
	m.cluster.searches.WithLabelValues(outcome).Inc()
}
