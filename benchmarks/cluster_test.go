package benchmarks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterCommand runs bmbench cluster at a tiny size through the command
// line and checks that report.json and report.md hold sane figures.
func TestClusterCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three engines and four NATS servers")
	}
	out := filepath.Join(t.TempDir(), "report")
	stdout := bmbench(t, ExitOK, "cluster", "--faces", "20000", "--probes", "50", "--duration", "1s",
		"--concurrency", "16", "--out", out, "--tmp", t.TempDir())
	t.Log(stdout)
	for _, want := range []string{"coordinator overhead", "cluster throughput", "durable enrolments", "replica apply", "report.md"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	var r ClusterReport
	readJSON(t, filepath.Join(out, "report.json"), &r)
	if r.Tool != "bmbench" || r.Command != "cluster" || r.Version == "" || r.Faces != 20000 || r.Partitions != 2 || r.Dim != DefaultSearchDim {
		t.Errorf("header: %+v", r)
	}
	if len(r.PartitionFaces) != 2 || r.PartitionFaces[0]+r.PartitionFaces[1] != 20000 || r.PartitionFaces[0] == 0 || r.PartitionFaces[1] == 0 {
		t.Errorf("partition faces %v", r.PartitionFaces)
	}
	ov := r.Overhead
	if ov.Probes != 50 || ov.MergedP50 <= 0 || ov.SlowestP50 <= 0 || ov.SingleEngineP50 <= 0 || ov.MergedP95 < ov.MergedP50 {
		t.Errorf("overhead latencies: %+v", ov)
	}
	// The overhead is merged − slowest: it is computed, and no larger than
	// the merged latency itself.
	if ov.OverheadP50 == 0 || ov.OverheadP50 > ov.MergedP95 || ov.OverheadP95 < ov.OverheadP50 {
		t.Errorf("overhead: %+v", ov)
	}
	// The partitions report their own search time: the in-call overhead
	// is positive and below the merged latency.
	if ov.OverheadInCallP50 <= 0 || ov.OverheadInCallP50 >= ov.MergedP50 || ov.OverheadInCallP95 < ov.OverheadInCallP50 {
		t.Errorf("overhead over the partitions' own searches: %+v", ov)
	}
	if ov.ConcurrentP50 <= 0 || ov.OverheadConcurrentP50 == 0 || ov.OverheadConcurrentP95 < ov.OverheadConcurrentP50 {
		t.Errorf("overhead over the partitions searched together: %+v", ov)
	}
	if !ov.CoverageComplete || ov.Rank1Agree != 1 || ov.MatesFoundRank1 != 1 {
		t.Errorf("search results: coverage %v, rank-1 agreement %v, mates found %v", ov.CoverageComplete, ov.Rank1Agree, ov.MatesFoundRank1)
	}
	tp := r.Throughput
	if tp.Cluster.PerSec <= 0 || tp.Single.PerSec <= 0 || tp.Cluster.Errors != 0 || tp.Single.Errors != 0 ||
		tp.Cluster.P50 <= 0 || tp.Cluster.P99 < tp.Cluster.P50 || tp.Single.P99 < tp.Single.P50 || tp.Ratio <= 0 {
		t.Errorf("throughput: %+v", tp)
	}
	en := r.Enrol
	if en.Acknowledged == 0 || en.PerSec <= 0 || en.AckP50 <= 0 || en.AckP99 < en.AckP50 || en.Errors != 0 {
		t.Errorf("enrolments: %+v", en)
	}
	if uint64(en.Acknowledged) != en.StreamLastSeq || en.Applied != uint64(en.Acknowledged) || en.Refused != 0 || en.Malformed != 0 ||
		en.ReplicaIndexed != en.Acknowledged || en.AppliedPerSec <= 0 {
		t.Errorf("acknowledged %d, stream %d, applied %d (refused %d, malformed %d), indexed %d",
			en.Acknowledged, en.StreamLastSeq, en.Applied, en.Refused, en.Malformed, en.ReplicaIndexed)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# bmbench cluster", "## Coordinator overhead", "## Throughput", "## Durable enrolments", r.Version} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
