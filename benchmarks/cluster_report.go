package benchmarks

// bmbench cluster's report: report.json, report.md and the table printed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bordermatch/bordermatch/cluster"
)

// Write writes report.json and report.md into dir, creating it.
func (r ClusterReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), r.Markdown(), 0o644)
}

// Table is the short summary printed to stdout.
func (r ClusterReport) Table() []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	ov, tp, en := r.Overhead, r.Throughput, r.Enrol
	p("%-44s %s\n", "bmbench cluster", r.Version)
	p("%-44s %d faces, %d-d %s, %d partitions %v\n", "gallery", r.Faces, r.Dim, r.Algorithm, r.Partitions, r.PartitionFaces)
	p("%-44s p50 %.3f ms  p95 %.3f ms  (bar p50 <= %.0f ms: %s)\n", "coordinator overhead (merged − slowest partition, same call)", ov.OverheadInCallP50, ov.OverheadInCallP95, ov.BarP50, metText(ov.BarMet))
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "overhead vs slowest partition searched alone", ov.OverheadP50, ov.OverheadP95)
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "overhead vs partitions searched together", ov.OverheadConcurrentP50, ov.OverheadConcurrentP95)
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "merged identify through NATS", ov.MergedP50, ov.MergedP95)
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "slowest partition alone", ov.SlowestP50, ov.SlowestP95)
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "partitions together, in process", ov.ConcurrentP50, ov.ConcurrentP95)
	p("%-44s p50 %.3f ms  p95 %.3f ms\n", "single engine alone", ov.SingleEngineP50, ov.SingleEngineP95)
	p("%-44s %.1f/s  p50 %.2f ms  p99 %.2f ms\n", fmt.Sprintf("cluster throughput (%d callers)", tp.Concurrency), tp.Cluster.PerSec, tp.Cluster.P50, tp.Cluster.P99)
	p("%-44s %.1f/s  p50 %.2f ms  p99 %.2f ms\n", fmt.Sprintf("single engine throughput (%d callers)", tp.Concurrency), tp.Single.PerSec, tp.Single.P50, tp.Single.P99)
	p("%-44s %.2f\n", "cluster / single engine", tp.Ratio)
	p("%-44s %.1f/s  ack p50 %.2f ms  p99 %.2f ms  (%d acknowledged, %d errors)\n",
		fmt.Sprintf("durable enrolments (R%d, %d clients)", en.StreamReplicas, en.Clients), en.PerSec, en.AckP50, en.AckP99, en.Acknowledged, en.Errors)
	p("%-44s %.1f/s  (%d applied in %.2f s)\n", "replica apply", en.AppliedPerSec, en.Applied, en.ApplySeconds)
	return b.Bytes()
}

func metText(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Markdown is report.md.
func (r ClusterReport) Markdown() []byte {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	ov, tp, en := r.Overhead, r.Throughput, r.Enrol
	p("# bmbench cluster: face, %d faces over %d partitions\n\n", r.Faces, r.Partitions)
	p("| | |\n|---|---|\n")
	p("| data | synthetic gallery (internal/synthetic), %d faces of %d-d %s, one each |\n", r.Faces, r.Dim, r.Algorithm)
	p("| partitions | %d, by ShardOf(id, %d) %% %d: %v faces |\n", r.Partitions, r.Shards, r.Partitions, r.PartitionFaces)
	p("| engines | %s |\n", r.Engines)
	p("| transport | in-process embedded NATS servers on loopback |\n")
	p("| build | %.1f s; Go heap %.0f MB with every engine loaded |\n", r.BuildSeconds, r.HeapMB)
	p("| CPUs | %d (engines, NATS servers and callers share them) |\n", r.CPUs)
	p("| date | %s |\n| bmbench | %s |\n\n", r.Date.Format(time.RFC3339), r.Version)

	p("## Coordinator overhead\n\n")
	p("%d probes (a gallery face plus noise), top-%d, one at a time. For each: every partition engine's own Identify, in process, then every partition engine's Identify started together (in process, no NATS), then the merged Identify through the Coordinator (NATS request to every partition's queue group, replies merged), then the single engine. The coordinator overhead is the merged latency − the slowest search a partition reported for that same call (each responder times its engine's Identify): what the coordinator adds — NATS both ways, JSON, the merge — under the contention the call really had. On one machine the partitions of a merged search scan at once and share the CPUs each had to itself alone (a search is split over the cores from %d rows), so merged − the slowest partition searched *alone* also counts that sharing; merged − the partitions searched together in process (no NATS) is a third view of the coordinator's own cost.\n\n", ov.Probes, ov.TopK, 16<<10)
	p("| | p50 | p95 |\n|---|---|---|\n")
	p("| coordinator overhead (merged − slowest partition's own search in that call) | %.3f ms | %.3f ms |\n", ov.OverheadInCallP50, ov.OverheadInCallP95)
	p("| merged − slowest partition searched alone | %.3f ms | %.3f ms |\n", ov.OverheadP50, ov.OverheadP95)
	p("| coordinator overhead (merged − partitions searched together) | %.3f ms | %.3f ms |\n", ov.OverheadConcurrentP50, ov.OverheadConcurrentP95)
	p("| merged Identify through NATS | %.3f ms | %.3f ms |\n", ov.MergedP50, ov.MergedP95)
	p("| slowest partition alone | %.3f ms | %.3f ms |\n", ov.SlowestP50, ov.SlowestP95)
	p("| partitions searched together, in process | %.3f ms | %.3f ms |\n", ov.ConcurrentP50, ov.ConcurrentP95)
	p("| single engine, whole gallery | %.3f ms | %.3f ms |\n\n", ov.SingleEngineP50, ov.SingleEngineP95)
	p("Bar: coordinator overhead (merged − the slowest partition's own search in that call) p50 ≤ %.0f ms: **%s** (p50 %.3f ms). Merged − the slowest partition searched alone: p50 %.3f ms (mean %.3f ms), which includes the partitions' sharing of this machine's CPUs. Merged rank 1 equals the single engine's for %.1f%% of probes; the probe's mate is rank 1 for %.1f%%; every partition answered every probe: %v.\n\n",
		ov.BarP50, metText(ov.BarMet), ov.OverheadInCallP50, ov.OverheadP50, ov.OverheadMean, 100*ov.Rank1Agree, 100*ov.MatesFoundRank1, ov.CoverageComplete)

	p("## Throughput\n\n")
	p("%d concurrent callers for %.0f s each, going round the probes.\n\n", tp.Concurrency, tp.Seconds)
	p("| | identifications/s | p50 | p99 | errors |\n|---|---|---|---|---|\n")
	p("| cluster (Coordinator, %d partitions) | %.1f | %.2f ms | %.2f ms | %d |\n", r.Partitions, tp.Cluster.PerSec, tp.Cluster.P50, tp.Cluster.P99, tp.Cluster.Errors)
	p("| single engine | %.1f | %.2f ms | %.2f ms | %d |\n\n", tp.Single.PerSec, tp.Single.P50, tp.Single.P99, tp.Single.Errors)
	p("Cluster / single engine: %.2f. On one machine the partitions share its %d CPUs, so the cluster does the single engine's scan plus the messaging; partitions on their own machines would each scan 1/%d of the gallery.\n\n", tp.Ratio, r.CPUs, r.Partitions)

	p("## Durable enrolments\n\n")
	p("%d embedded JetStream servers in a route cluster, file storage with SyncAlways (fsync before every acknowledgement), stream %s with R%d. %d clients (a NATS connection each) append enrolments through cluster.EnrollThroughLog for %.0f s, each a fresh %d-d template (%d bytes encoded) under a unique subject and request id.\n\n",
		en.Servers, cluster.StreamName, en.StreamReplicas, en.Clients, en.Seconds, r.Dim, en.TemplateBytes)
	p("| | |\n|---|---|\n")
	p("| acknowledged | %d (%d errors); stream last sequence %d |\n", en.Acknowledged, en.Errors, en.StreamLastSeq)
	p("| acknowledged enrolments/s | %.1f |\n", en.PerSec)
	p("| ack latency | p50 %.2f ms, p99 %.2f ms |\n", en.AckP50, en.AckP99)
	p("| one replica applying them | %d applied (%d refused, %d malformed) in %.2f s: %.1f/s |\n", en.Applied, en.Refused, en.Malformed, en.ApplySeconds, en.AppliedPerSec)
	p("| replica's engine | %d subjects indexed |\n\n", en.ReplicaIndexed)
	p("The replica (cluster.NewReplica + Run, every shard, into a fresh engine on Badger) starts after the appends stop and is timed until it has handled the stream's last sequence.\n")
	return b.Bytes()
}
