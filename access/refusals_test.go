package access

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type jsonLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	m := map[string]any{}
	if err := json.Unmarshal(bytes.TrimSpace(p), &m); err != nil {
		return 0, err
	}
	j.lines = append(j.lines, m)
	return len(p), nil
}

func (j *jsonLines) with(msg string) []map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, m := range j.lines {
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestRefusalLogSummary: past its limits the refusal log counts instead of
// writing, and when the window ends (with no refusal after it) one line per
// caller and reason says how many were left out; past PerWindow callers,
// one line sums up the rest.
func TestRefusalLogSummary(t *testing.T) {
	var out jsonLines
	l := newRefusalLog(RefusalLogLimits{Window: 200 * time.Millisecond, PerCaller: 3, PerWindow: 6}, zerolog.New(&out))
	denied := status.Error(codes.PermissionDenied, "no")
	for range 50 {
		l.note("cert:a", Caller{Identity: "gate-1", KeyID: "00aa"}, "/m", ReasonPermissionDenied, denied)
	}
	for i := range 10 {
		l.note(fmt.Sprintf("peer:%d", i), Caller{Identity: "peer"}, "/m", ReasonUnauthenticated, denied)
	}
	refused := out.with("call refused")
	// 3 of gate-1's, then 3 peers' before the window's 6 are spent.
	if len(refused) != 6 || refused[0]["key_id"] != "00aa" || refused[2]["refused_in_window"] != 3.0 {
		t.Fatalf("%d lines of refusals %v, want 6", len(refused), refused)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(out.with("calls refused and not logged one by one")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sums := out.with("calls refused and not logged one by one")
	// gate-1 (47 left out) first, then the 7 peers not logged: 6 lines in
	// all, and one for the 1 peer past them.
	if len(sums) != 6 || sums[0]["identity"] != "gate-1" || sums[0]["not_logged"] != 47.0 || sums[0]["refused"] != 50.0 || sums[0]["key_id"] != "00aa" {
		t.Fatalf("summaries %v", sums)
	}
	if rest := out.with("more callers' refused calls not logged one by one"); len(rest) != 1 || rest[0]["callers"] != 2.0 || rest[0]["not_logged"] != 2.0 {
		t.Errorf("the summary of the rest: %v", rest)
	}
	// A new window logs afresh.
	l.note("cert:a", Caller{Identity: "gate-1"}, "/m", ReasonPermissionDenied, denied)
	if n := len(out.with("call refused")); n != 7 {
		t.Errorf("after the window: %d lines of refusals, want 7", n)
	}
}

// TestRefusalReasons: each refusal of the Guard carries its reason and its
// status code; other errors have none.
func TestRefusalReasons(t *testing.T) {
	inFlight := &inFlightError{status.New(codes.ResourceExhausted, "busy")}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unauthenticated, "x"), ReasonUnauthenticated},
		{status.Error(codes.PermissionDenied, "x"), ReasonPermissionDenied},
		{status.Error(codes.ResourceExhausted, "x"), ReasonRateLimit},
		{inFlight, ReasonInFlight},
	} {
		var got string
		g := New(Config{Refused: func(r string) { got = r }, Logger: zerolog.Nop()})
		err := g.refuse(WithCaller(t.Context(), Caller{}), "k", "/m", nil, tc.err, false)
		if r, ok := RefusalReason(err); !ok || r != tc.want || got != tc.want || status.Code(err) != status.Code(tc.err) {
			t.Errorf("%v: reason %q %v, counted %q, code %v; want %q", tc.err, r, ok, got, status.Code(err), tc.want)
		}
	}
	if _, ok := RefusalReason(errors.New("handler's")); ok {
		t.Error("a handler's error taken for a refusal")
	}
}
