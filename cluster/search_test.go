package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/internal/synthetic"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// searchCluster is one embedded NATS server, 2 partitions × 2 replicas of
// real engines on Badger directories, and an engine over the whole gallery.
type searchCluster struct {
	srv    *server.Server
	cfg    Config
	coord  *Coordinator
	resp   [2][2]*Responder // [partition][replica]
	conns  [2][2]*nats.Conn
	engs   [2][2]*engine.Engine
	whole  *engine.Engine
	n      int
	parts  int
	closed [2][2]bool
}

// partitionOf is the test's partition map: shard modulo partitions.
func partitionOf(id string, parts int) int { return ShardOf(id, DefaultShards) % parts }

func syntheticSubjects(n int) []store.Subject {
	subs := make([]store.Subject, n)
	for i := range subs {
		v := make([]float32, templates.FaceDim)
		synthetic.Vector(i, v)
		subs[i] = store.Subject{ID: synthetic.ID(i), Name: "S" + strconv.Itoa(i), Templates: []templates.Template{{
			Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}}}
	}
	return subs
}

func openEngine(t testing.TB, subs []store.Subject) *engine.Engine {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for lo := 0; lo < len(subs); lo += 50_000 {
		if err := st.Import(subs[lo:min(lo+50_000, len(subs))]); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func startSearchCluster(t testing.TB, n int) *searchCluster {
	t.Helper()
	c := &searchCluster{n: n, parts: 2}
	c.cfg = DefaultConfig()
	c.cfg.Node, c.cfg.StreamReplicas, c.cfg.Partitions = "search", 1, 2
	c.cfg.Logger = zerolog.Nop()
	c.cfg.Embedded = &Embedded{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	srv, err := StartEmbedded(c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	c.srv = srv
	all := syntheticSubjects(n)
	var byPart [2][]store.Subject
	for _, s := range all {
		p := partitionOf(s.ID, 2)
		byPart[p] = append(byPart[p], s)
	}
	for p := range 2 {
		if len(byPart[p]) == 0 {
			t.Fatalf("partition %d holds no subject", p)
		}
		for r := range 2 {
			c.engs[p][r] = openEngine(t, byPart[p])
			nc, err := Connect(c.cfg, srv)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			cfg := c.cfg
			cfg.Partition, cfg.Replica = p, r
			resp, err := Serve(nc, cfg, c.engs[p][r], 7)
			if err != nil {
				t.Fatal(err)
			}
			c.conns[p][r], c.resp[p][r] = nc, resp
		}
	}
	c.whole = openEngine(t, all)
	nc, err := Connect(c.cfg, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// Subscriptions are in place once each responder's connection has
	// flushed.
	for p := range 2 {
		for r := range 2 {
			if err := c.conns[p][r].Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.coord = &Coordinator{NC: nc, Partitions: 2, Epoch: 7, Timeout: 2 * time.Second}
	return c
}

// stop takes replica r of partition p down.
func (c *searchCluster) stop(t testing.TB, p, r int) {
	t.Helper()
	if err := c.resp[p][r].Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.conns[p][r].Flush(); err != nil {
		t.Fatal(err)
	}
	c.closed[p][r] = true
}

// probeOf is subject i's vector plus noise, encoded.
func probeOf(t testing.TB, i int) []byte {
	v := make([]float32, templates.FaceDim)
	synthetic.Vector(i, v)
	r := rand.New(rand.NewPCG(uint64(i), 99))
	for j := range v {
		v[j] += 0.3 * float32(r.NormFloat64())
	}
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: v}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

func TestSearchMergesPartitions(t *testing.T) {
	c := startSearchCluster(t, 200)
	ctx := context.Background()
	anyScore := ptr(float32(-1)) // every candidate passes: compare whole top-10 lists
	for i := range c.n {
		probe := probeOf(t, i)
		res, err := c.coord.Identify(ctx, SearchRequest{Template: probe, Query: engine.Query{TopK: 10, Threshold: anyScore}})
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		if res.Coverage != (Coverage{2, 2}) || res.Partial || len(res.Missing) > 0 {
			t.Fatalf("probe %d: coverage %+v partial %v missing %v", i, res.Coverage, res.Partial, res.Missing)
		}
		if res.Searched != int64(c.n) {
			t.Fatalf("probe %d: searched %d, want %d", i, res.Searched, c.n)
		}
		if len(res.Candidates) == 0 || res.Candidates[0].SubjectID != synthetic.ID(i) {
			t.Fatalf("probe %d: rank 1 is %+v", i, res.Candidates[:min(1, len(res.Candidates))])
		}
		one, err := c.whole.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}},
			Query: engine.Query{TopK: 10, Threshold: anyScore}})
		if err != nil {
			t.Fatal(err)
		}
		if len(one.Candidates) != len(res.Candidates) {
			t.Fatalf("probe %d: %d merged candidates, one engine gives %d", i, len(res.Candidates), len(one.Candidates))
		}
		for k, w := range one.Candidates {
			g := res.Candidates[k]
			if g.Rank != k+1 || g.SubjectID != w.SubjectID || g.Score != w.Score || g.FaceFMR != w.FaceFMR || g.Name != w.Name {
				t.Fatalf("probe %d rank %d: merged %s %v (fmr %g), one engine %s %v (fmr %g)", i, k+1,
					g.SubjectID, g.Score, g.FaceFMR, w.SubjectID, w.Score, w.FaceFMR)
			}
		}
		// The default threshold is re-applied: the genuine passes, the
		// rest of the random gallery does not.
		res, err = c.coord.Identify(ctx, SearchRequest{Template: probe, Query: engine.Query{TopK: 10}})
		if err != nil {
			t.Fatal(err)
		}
		one, err = c.whole.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}}, Query: engine.Query{TopK: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Candidates) != len(one.Candidates) {
			t.Fatalf("probe %d at the default threshold: %d merged, one engine %d", i, len(res.Candidates), len(one.Candidates))
		}
	}
}

func TestSearchFailover(t *testing.T) {
	c := startSearchCluster(t, 200)
	ctx := context.Background()
	probe := probeOf(t, 3)
	want := synthetic.ID(3)
	ask := func(partial bool) (Result, error) {
		return c.coord.Identify(ctx, SearchRequest{Template: probe, Query: engine.Query{TopK: 5, Threshold: ptr(float32(-1))}, AllowPartial: partial})
	}
	// One replica of each partition down: the other answers.
	c.stop(t, 0, 0)
	c.stop(t, 1, 1)
	for range 20 {
		res, err := ask(false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Coverage != (Coverage{2, 2}) || res.Candidates[0].SubjectID != want {
			t.Fatalf("coverage %+v, rank 1 %s", res.Coverage, res.Candidates[0].SubjectID)
		}
	}
	// Both replicas of the probe's partition down.
	p := partitionOf(want, 2)
	for r := range 2 {
		if !c.closed[p][r] {
			c.stop(t, p, r)
		}
	}
	c.coord.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := ask(false)
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("partition %d down: %v, want unavailable", p, err)
	}
	t.Logf("partition down after %v: %v", time.Since(start).Round(time.Millisecond), err)
	res, err := ask(true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Partial || res.Coverage != (Coverage{1, 2}) || len(res.Missing) != 1 || res.Missing[0] != p {
		t.Fatalf("partial: %+v", res)
	}
	for _, cd := range res.Candidates {
		if partitionOf(cd.SubjectID, 2) == p {
			t.Fatalf("candidate %s of the missing partition %d", cd.SubjectID, p)
		}
	}
	// Every partition down: no responders, at once.
	for q := range 2 {
		for r := range 2 {
			if !c.closed[q][r] {
				c.stop(t, q, r)
			}
		}
	}
	c.coord.Timeout = 10 * time.Second
	start = time.Now()
	if _, err := ask(false); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("all down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("all down: waited %v for the deadline", d)
	}
	res, err = ask(true)
	if err != nil || res.Coverage != (Coverage{0, 2}) || len(res.Candidates) != 0 || len(res.Missing) != 2 {
		t.Fatalf("all down, partial: %+v, %v", res, err)
	}
}

func TestSearchStaleEpoch(t *testing.T) {
	c := startSearchCluster(t, 50)
	ctx := context.Background()
	req := SearchRequest{Template: probeOf(t, 1)}
	c.coord.Epoch = 6
	_, err := c.coord.Identify(ctx, req)
	if !errors.Is(err, ErrStaleEpoch) || !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("stale epoch: %v", err)
	}
	t.Log(err)
	// One partition moves on: the other's answer alone is not enough.
	c.coord.Epoch = 7
	for r := range 2 {
		c.resp[1][r].SetEpoch(8)
	}
	if _, err := c.coord.Identify(ctx, req); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("partition 1 at epoch 8: %v", err)
	}
	res, err := c.coord.Identify(ctx, SearchRequest{Template: req.Template, AllowPartial: true})
	if err != nil || !res.Partial || len(res.Missing) != 1 || res.Missing[0] != 1 {
		t.Fatalf("partial with partition 1 stale: %+v, %v", res, err)
	}
	for r := range 2 {
		c.resp[1][r].SetEpoch(7)
	}
	if _, err := c.coord.Identify(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func TestSearchBadRequests(t *testing.T) {
	c := startSearchCluster(t, 20)
	ctx := context.Background()
	// Refused by the coordinator before anything is sent.
	if _, err := c.coord.Identify(ctx, SearchRequest{Template: []byte("junk")}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("junk template: %v", err)
	}
	if _, err := c.coord.Identify(ctx, SearchRequest{Template: probeOf(t, 1), Query: engine.Query{TopK: 1000}}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("top_k 1000: %v", err)
	}
	// Garbage and other versions straight on the subject: error replies.
	for _, body := range [][]byte{[]byte("{"), []byte(`{"v":2,"epoch":7}`), []byte(`{"v":1,"epoch":7,"template":"AAAA"}`), nil} {
		inbox := c.coord.NC.NewRespInbox()
		sub, err := c.coord.NC.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		for p := range 2 {
			if err := c.coord.NC.PublishRequest(PartitionSearchSubject(p), inbox, body); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			m, err := sub.NextMsg(2 * time.Second)
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			var rep searchReply
			if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error == "" || rep.Kind != engine.ErrInvalid.Error() {
				t.Fatalf("%q: reply %s (%v)", body, m.Data, err)
			}
		}
		sub.Unsubscribe()
	}
	// The responders still answer.
	res, err := c.coord.Identify(ctx, SearchRequest{Template: probeOf(t, 4), Query: engine.Query{Threshold: ptr(float32(-1))}})
	if err != nil || res.Candidates[0].SubjectID != synthetic.ID(4) {
		t.Fatalf("after junk: %+v, %v", res, err)
	}
}

// TestSearchOverhead measures what the coordinator adds to the slower
// partition's own search, on a gallery of BORDERMATCH_SEARCH_N faces
// (default 20,000; 100,000 for the figure).
func TestSearchOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	n := 20_000
	if s := os.Getenv("BORDERMATCH_SEARCH_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	c := startSearchCluster(t, n)
	t.Logf("%d faces loaded into 5 engines in %v", n, time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	const probes = 100
	var merged, slower time.Duration
	for i := range probes {
		probe := probeOf(t, i*7919%n)
		var worst time.Duration
		for p := range 2 {
			t0 := time.Now()
			if _, err := c.engs[p][0].Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: probe}}, Query: engine.Query{TopK: 10}}); err != nil {
				t.Fatal(err)
			}
			worst = max(worst, time.Since(t0))
		}
		t0 := time.Now()
		if _, err := c.coord.Identify(ctx, SearchRequest{Template: probe, Query: engine.Query{TopK: 10}}); err != nil {
			t.Fatal(err)
		}
		merged += time.Since(t0)
		slower += worst
	}
	t.Logf("%d faces, %d probes: merged %v/probe, slower partition alone %v/probe, coordinator overhead %v/probe",
		n, probes, merged/probes, slower/probes, (merged-slower)/probes)
}
