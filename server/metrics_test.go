package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// TestMetricsPerServer: two servers in one process have metrics of their
// own: each /metrics shows its own gallery's sizes, its own calls, scans
// and capture states, and nothing of the other's.
func TestMetricsPerServer(t *testing.T) {
	a, b := startAdminServer(t), startAdminServer(t)
	// a: one subject with two faces; b: three subjects with one each.
	if err := enrolRandom(t, a.matcher, "a1", 1, 2); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"b1", "b2", "b3"} {
		if err := enrolRandom(t, b.matcher, id, uint64(10+i), 1); err != nil {
			t.Fatal(err)
		}
	}
	identifyTop(t, a.matcher, randomFace(100))
	a.metrics.SetCaptureState("gate-1", "ok")
	b.metrics.SetCaptureState("gate-2", "offline")

	scrape := func(s *adminServer) string {
		t.Helper()
		m, err := startMetrics(metricsConfig{Addr: "127.0.0.1:0", Metrics: s.metrics, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		defer m.close()
		resp, err := http.Get("http://" + m.addr.String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	enroll := `bordermatch_rpc_duration_seconds_count{code="OK",rpc="/bordermatch.v1.Matcher/Enroll"} `
	identify := `bordermatch_rpc_duration_seconds_count{code="OK",rpc="/bordermatch.v1.Matcher/Identify"} `
	for _, tc := range []struct {
		name      string
		body      string
		want, not []string
	}{
		{"a", scrape(a), []string{
			"bordermatch_gallery_face_templates 2\n",
			"bordermatch_gallery_finger_templates 0\n",
			"bordermatch_gallery_subjects 1\n",
			enroll + "1\n",
			identify + "1\n",
			"bordermatch_face_search_batch_probes_count 1\n",
			`bordermatch_capture_source_state{source="gate-1",state="ok"} 1`,
		}, []string{"gate-2"}},
		{"b", scrape(b), []string{
			"bordermatch_gallery_face_templates 3\n",
			"bordermatch_gallery_subjects 3\n",
			enroll + "3\n",
			"bordermatch_face_search_batch_probes_count 0\n",
			`bordermatch_capture_source_state{source="gate-2",state="offline"} 1`,
		}, []string{"gate-1", identify}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.body, w) {
				t.Errorf("server %s: /metrics lacks %q", tc.name, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(tc.body, n) {
				t.Errorf("server %s: /metrics shows the other server's %q", tc.name, n)
			}
		}
	}
	// A deletion shows in its own server only.
	if _, err := b.matcher.DeleteSubject(context.Background(), &pb.DeleteSubjectRequest{SubjectId: "b1"}); err != nil {
		t.Fatal(err)
	}
	if body := scrape(b); !strings.Contains(body, "bordermatch_gallery_subjects 2\n") {
		t.Errorf("server b after a deletion: subjects not 2")
	}
	if body := scrape(a); !strings.Contains(body, "bordermatch_gallery_subjects 1\n") {
		t.Errorf("server a after b's deletion: subjects not 1")
	}
}

// TestMetricsNil: a nil *Metrics records nothing and does not panic, for
// servers built without one (NewGRPCServer's tests).
func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.SetCaptureState("x", "ok")
	m.ObserveSearchBatch(3)
	unary, stream := m.Interceptors()
	if _, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if stream == nil {
		t.Fatal("no stream interceptor")
	}
}
