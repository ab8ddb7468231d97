package face

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/templates"
)

// TestExtractContextGivesUp: a caller that gives up while waiting for a
// worker (every one busy) gets its context's error at once, and a
// cancelled one never decodes.
func TestExtractContextGivesUp(t *testing.T) {
	ex := testExtractor(t)
	img := read(t, faces+"/idols/jimin/5.jpg")
	var busy []*worker
	for range ex.n {
		busy = append(busy, <-ex.pool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ex.ExtractContext(ctx, img, templates.ExtractOptions{})
	took := time.Since(start)
	for _, w := range busy {
		ex.pool <- w
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a worker past the deadline: %v", err)
	}
	if took > 2*time.Second {
		t.Errorf("gave up %v after a deadline of 100ms", took)
	}
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	if _, err := ex.ExtractContext(gone, img, templates.ExtractOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before it began: %v", err)
	}
	if _, err := ex.ExtractContext(context.Background(), img, templates.ExtractOptions{}); err != nil {
		t.Fatalf("after: %v", err)
	}
}
