package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// otherTpl is a face template of a second algorithm, which a templates-only
// engine indexes apart from the default one's.
func otherTpl(t testing.TB, seed int) []byte {
	t.Helper()
	v := make([]float32, 64)
	for i := range v {
		v[i] = float32((seed*31+i*17)%101)/101 - 0.5
	}
	b, err := templates.Template{Modality: templates.ModalityFace, Algorithm: templates.Algorithm{ID: "other-net", Version: 1}, Vector: v}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listsGallery enrols two subjects on interpol, one on local (another
// algorithm's template only), one on no list.
func listsGallery(t *testing.T) *engine.Engine {
	t.Helper()
	e, st := replica(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	for _, r := range []engine.EnrollRequest{
		{SubjectID: "p1", Watchlists: []string{"interpol"}, Samples: []engine.Sample{{Template: logTpl(t, 1)}}},
		{SubjectID: "p2", Watchlists: []string{"interpol"}, Samples: []engine.Sample{{Template: logTpl(t, 2)}}},
		{SubjectID: "l1", Watchlists: []string{"local"}, Samples: []engine.Sample{{Template: otherTpl(t, 3)}}},
		{SubjectID: "n1", Samples: []engine.Sample{{Template: logTpl(t, 4)}}},
	} {
		if _, err := e.Enroll(ctx, r); err != nil {
			t.Fatalf("enrol %s: %v", r.SubjectID, err)
		}
	}
	return e
}

func identifyOn(e *engine.Engine, tpl []byte, lists ...string) (engine.IdentifyResult, error) {
	return e.Identify(context.Background(), engine.IdentifyRequest{
		Probe: engine.Probe{Sample: &engine.Sample{Template: tpl}}, Query: engine.Query{Watchlists: lists}})
}

// TestIdentifyUnknownWatchlist: a search naming a list nobody is on (a
// typo) is NotFound naming it and the lists that exist, not "no hit".
func TestIdentifyUnknownWatchlist(t *testing.T) {
	e := listsGallery(t)
	for _, lists := range [][]string{{"interpl"}, {"interpol", "interpl"}} {
		res, err := identifyOn(e, logTpl(t, 1), lists...)
		if !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("%v: got %d candidates (%d searched), err %v; want not found", lists, len(res.Candidates), res.Searched, err)
		}
		var ue *engine.UnknownWatchlistsError
		if !errors.As(err, &ue) || strings.Join(ue.Unknown, ",") != "interpl" || strings.Join(ue.Known, ",") != "interpol,local" {
			t.Fatalf("%v: %#v", lists, ue)
		}
		for _, want := range []string{`"interpl"`, `"interpol"`, `"local"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %q does not name %s", lists, err, want)
			}
		}
	}
}

// TestIdentifyWatchlistSearched: no list is every subject; a list counts
// its own templates only; a list that exists but holds nothing the probe
// is compared with is no error.
func TestIdentifyWatchlistSearched(t *testing.T) {
	e := listsGallery(t)
	res, err := identifyOn(e, logTpl(t, 1))
	if err != nil || len(res.Candidates) == 0 || res.Candidates[0].SubjectID != "p1" || res.Searched != 3 {
		t.Fatalf("all lists: %+v, %v; want p1 first of 3 searched", res.Candidates, err)
	}
	res, err = identifyOn(e, logTpl(t, 4), "interpol")
	if err != nil || res.Searched != 2 {
		t.Fatalf("interpol: %d searched, %v; want its 2 templates", res.Searched, err)
	}
	for _, c := range res.Candidates {
		if c.SubjectID == "n1" {
			t.Errorf("interpol search found n1, who is on no list")
		}
	}
	res, err = identifyOn(e, logTpl(t, 1), "local")
	if err != nil || len(res.Candidates) != 0 || res.Searched != 0 {
		t.Fatalf("local (no template of the probe's algorithm): %+v, %d searched, %v; want nothing, no error", res.Candidates, res.Searched, err)
	}
	res, err = identifyOn(e, otherTpl(t, 3), "local", "interpol")
	if err != nil || len(res.Candidates) != 1 || res.Candidates[0].SubjectID != "l1" || res.Searched != 1 {
		t.Fatalf("other algorithm on local, interpol: %+v, %d searched, %v", res.Candidates, res.Searched, err)
	}
	// A cluster partition searches a list it does not know as empty.
	res, err = e.Identify(context.Background(), engine.IdentifyRequest{Partition: true,
		Probe: engine.Probe{Sample: &engine.Sample{Template: logTpl(t, 1)}}, Query: engine.Query{Watchlists: []string{"interpl"}}})
	if err != nil || len(res.Candidates) != 0 || res.Searched != 0 {
		t.Fatalf("partition, unknown list: %+v, %d searched, %v", res.Candidates, res.Searched, err)
	}
	// Its last member gone, a list no longer exists.
	if _, err := e.Delete(context.Background(), "l1"); err != nil {
		t.Fatal(err)
	}
	if _, err := identifyOn(e, otherTpl(t, 3), "local"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("local after its last member left: %v; want not found", err)
	}
}

// TestListUnknownWatchlist: listing a list nobody is on is NotFound; no
// list lists everyone.
func TestListUnknownWatchlist(t *testing.T) {
	e := listsGallery(t)
	ctx := context.Background()
	subs, _, err := e.List(ctx, store.ListOptions{Watchlist: "nosuch"})
	var ue *engine.UnknownWatchlistsError
	if !errors.Is(err, engine.ErrNotFound) || !errors.As(err, &ue) || !strings.Contains(err.Error(), `"interpol"`) {
		t.Fatalf("nosuch: %d subjects, %v; want not found naming interpol", len(subs), err)
	}
	if subs, _, err = e.List(ctx, store.ListOptions{Watchlist: "local"}); err != nil || len(subs) != 1 {
		t.Fatalf("local: %d subjects, %v", len(subs), err)
	}
	if subs, _, err = e.List(ctx, store.ListOptions{}); err != nil || len(subs) != 4 {
		t.Fatalf("everyone: %d subjects, %v", len(subs), err)
	}
}
