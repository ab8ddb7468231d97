package benchmarks

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/bordermatch/bordermatch/matcher"
)

// An index re-scoring through galleryRows (as SearchSpeed's does) returns what one holding its own f32 rows does.
func TestGalleryRowsSource(t *testing.T) {
	const n, p, d = 3000, 16, 128
	gallery, probes := speedVectors(7, n, p, d)
	own, src := matcher.NewIndex(d), matcher.NewIndexWithSource(d, galleryRows{gallery, d})
	for i := range n {
		e := matcher.Entry{SubjectID: fmt.Sprintf("g%08d", i), Vector: gallery[i*d : (i+1)*d]}
		if err := own.Add(e); err != nil {
			t.Fatal(err)
		}
		if err := src.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	for i := range p {
		a, err1 := own.Search(probes[i*d:(i+1)*d], matcher.SearchOptions{K: 10})
		b, err2 := src.Search(probes[i*d:(i+1)*d], matcher.SearchOptions{K: 10})
		if err1 != nil || err2 != nil || len(a) != 10 || !slices.EqualFunc(a, b, func(x, y matcher.Hit) bool {
			return x.SubjectID == y.SubjectID && x.Score == y.Score
		}) {
			t.Fatalf("probe %d: own rows %v (%v), source %v (%v)", i, a, err1, b, err2)
		}
	}
}

// The 1:N measurement indexes the default model's 192-d vectors as matchd
// does (no f32 rows in the index) and counts the index's heap, ids
// included: some 235 bytes a face, within the 300-byte bar.
func TestSearchSpeedBytesPerFace(t *testing.T) {
	opt := SearchSpeedOptions{Probes: 8, Batch: 8}
	opt.defaults()
	if opt.Dim != 192 {
		t.Fatalf("default dim %d, want the default face model's 192", opt.Dim)
	}
	res, err := searchSpeed(context.Background(), opt, 50_000, 1, ReadProbe{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !res.VectorSource || res.BytesPerTemplate < 192 || res.BytesPerTemplate > ScaleBarBytesPerFace || res.OwnRowsBytesPerTemplate != 768 {
		t.Errorf("source %v, %.0f bytes a face (want 192..%d), own rows +%.0f", res.VectorSource, res.BytesPerTemplate, ScaleBarBytesPerFace, res.OwnRowsBytesPerTemplate)
	}
	if res.Top10Agree != 1 {
		t.Errorf("top-10 agreement %v", res.Top10Agree)
	}
}
