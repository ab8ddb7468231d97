package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/internal/synthetic"
	"github.com/bordermatch/bordermatch/store"
	"github.com/rs/zerolog"
)

// TestSearchUnknownWatchlist: in a cluster, the lists known to any
// partition count. A list only one partition has is searched there (the
// other does not refuse it); a list none has is NotFound naming the lists
// of all; the templates searched are those of the lists named.
func TestSearchUnknownWatchlist(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Node, cfg.StreamReplicas, cfg.Partitions = "lists", 1, 2
	cfg.Logger = zerolog.Nop()
	cfg.Embedded = &Embedded{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}
	srv, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	subs := syntheticSubjects(40)
	var byPart [2][]store.Subject
	only := -1 // the one subject on "rare"; its partition alone has the list
	for i, s := range subs {
		p := partitionOf(s.ID, 2)
		s.Watchlists = []string{"common-" + string(rune('a'+p))}
		if only < 0 && p == 1 {
			only, s.Watchlists = i, []string{"rare"}
		}
		byPart[p] = append(byPart[p], s)
	}
	for p := range 2 {
		eng := openEngine(t, byPart[p])
		nc, err := Connect(cfg, srv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		pc := cfg
		pc.Partition = p
		r, err := Serve(nc, pc, eng, 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := Connect(cfg, srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	coord := &Coordinator{NC: nc, Partitions: 2, Epoch: 3, Timeout: 5 * time.Second}
	ctx := context.Background()
	search := func(lists ...string) (Result, error) {
		return coord.Identify(ctx, SearchRequest{Template: probeOf(t, only), Query: engine.Query{TopK: 5, Watchlists: lists}})
	}

	res, err := search("rare")
	if err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectID != synthetic.ID(only) || res.Searched != 1 {
		t.Fatalf("rare (partition 1's only): %+v, %d searched, %v; want %s of 1 searched", res.Candidates, res.Searched, err, synthetic.ID(only))
	}
	if res, err = search("common-a", "rare"); err != nil || res.Searched != int64(len(byPart[0])+1) {
		t.Fatalf("common-a, rare: %d searched, %v; want %d", res.Searched, err, len(byPart[0])+1)
	}
	for _, lists := range [][]string{{"rar"}, {"rare", "rar"}} {
		res, err := search(lists...)
		var ue *engine.UnknownWatchlistsError
		if !errors.Is(err, engine.ErrNotFound) || !errors.As(err, &ue) {
			t.Fatalf("%v: %d candidates, %v; want not found", lists, len(res.Candidates), err)
		}
		if strings.Join(ue.Unknown, ",") != "rar" || strings.Join(ue.Known, ",") != "common-a,common-b,rare" {
			t.Fatalf("%v: unknown %v, known %v", lists, ue.Unknown, ue.Known)
		}
	}
}
