package watchlist

import (
	"strings"
	"testing"
)

// TestSearchStatesTheRule: the search table states the server's own rule
// and each candidate's decision FMR, not a decision text of its own that
// could disagree with the answer (issue 18: one consistent decision).
func TestSearchStatesTheRule(t *testing.T) {
	m := startMatchd(t)
	photo := amyPhoto()
	if out, errs, code := runCLI(t, append(m.conn(), "add", "--id", "amy", "--photo", photo, "--list", "sample")...); code != 0 {
		t.Fatalf("add amy: exit %d %q %q", code, out, errs)
	}
	out, errs, code := runCLI(t, append(m.conn(), "search", "--photo", photo)...)
	if code != 0 {
		t.Fatalf("search: exit %d %q %q", code, out, errs)
	}
	if !strings.Contains(out, "passing face cosine >= threshold") || !strings.Contains(out, "FMR") {
		t.Errorf("search output does not state the server's rule and the candidates' FMR:\n%s", out)
	}
	out, _, _ = runCLI(t, append(m.conn(), "search", "--photo", photo, "--list", "sample", "--json")...)
	if !strings.Contains(out, `"rule"`) || !strings.Contains(out, `"decision_fmr"`) {
		t.Errorf("search --json lacks the rule or the decision FMR:\n%s", out)
	}
}
