package watchlist

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bordermatch/bordermatch/pki"
)

// TestErrorsBlameTheRightThing runs the CLI against a real matchd: a
// refused parameter is a usage error that names the parameter, not the
// photo; a subject that exists is not blamed on the photo; a search photo of several faces says so, with how many, and
// points at --largest-face rather than at enrolment (issue 18).
func TestErrorsBlameTheRightThing(t *testing.T) {
	m := startMatchd(t)
	photo := amyPhoto()

	_, errs, code := runCLI(t, append(m.conn(), "search", "--photo", photo, "--top", "500")...)
	if code != ExitUsage || !strings.Contains(errs, "top_k 500") || strings.Contains(errs, "1.png") {
		t.Errorf("search --top 500: exit %d %q, want exit %d naming top_k and not the photo", code, errs, ExitUsage)
	}
	_, errs, code = runCLI(t, append(m.conn(), "add", "--id", "amy", "--photo", photo, "--list", "no such list")...)
	if code != ExitUsage || !strings.Contains(errs, `"no such list"`) || strings.Contains(errs, "1.png") {
		t.Errorf("add --list 'no such list': exit %d %q, want exit %d naming the list and not the photo", code, errs, ExitUsage)
	}
	// A subject that exists is not the photo's fault either.
	if out, errs, code := runCLI(t, append(m.conn(), "add", "--id", "amy", "--photo", photo, "--list", "sample")...); code != 0 {
		t.Fatalf("add amy: exit %d %q %q", code, out, errs)
	}
	_, errs, code = runCLI(t, append(m.conn(), "add", "--id", "amy", "--photo", photo, "--list", "sample")...)
	if code != ExitBadInput || !strings.Contains(errs, "amy") || !strings.Contains(errs, "exists") || strings.Contains(errs, "1.png") {
		t.Errorf("add amy again: exit %d %q, want exit %d saying amy exists, not naming the photo", code, errs, ExitBadInput)
	}
	// The photo's own faults still name it, exit 4.
	white := filepath.Join(testdata, "faces", "reference", "white.png")
	if _, errs, code = runCLI(t, append(m.conn(), "search", "--photo", white)...); code != ExitBadInput || !strings.Contains(errs, "white.png") || !strings.Contains(errs, "no face") {
		t.Errorf("search with no face: exit %d %q", code, errs)
	}

	group := filepath.Join(testdata, "faces", "reference", "faces.jpg") // 6 comparable faces
	_, errs, code = runCLI(t, append(m.conn(), "search", "--photo", group)...)
	if code != ExitBadInput || !strings.Contains(errs, "faces.jpg: probe") || !strings.Contains(errs, "several faces") ||
		!strings.Contains(errs, "6 faces") || !strings.Contains(errs, "--largest-face") || strings.Contains(errs, "enrol") {
		t.Errorf("search with a group photo: exit %d %q", code, errs)
	}
	_, errs, code = runCLI(t, append(m.conn(), "add", "--id", "group", "--photo", group)...)
	if code != ExitBadInput || !strings.Contains(errs, "faces.jpg") || !strings.Contains(errs, "6 faces") ||
		!strings.Contains(errs, "enrolment needs a photo of one face") || strings.Contains(errs, "--largest-face") {
		t.Errorf("add with a group photo: exit %d %q", code, errs)
	}
}

// TestServerDefaultPort: --server with a host alone dials matchd's port
// (gRPC's own default would be 443).
func TestServerDefaultPort(t *testing.T) {
	m := startMatchd(t)
	host, port, err := net.SplitHostPort(m.addr)
	if err != nil {
		t.Fatal(err)
	}
	saved := defaultPort
	defaultPort = port // the test's matchd stands in for one on 50051
	t.Cleanup(func() { defaultPort = saved })
	out, errs, code := runCLI(t, "--server", host, "--data", m.data, "--timeout", "20s", "lists")
	if code != 0 || !strings.Contains(out, "No watchlists.") {
		t.Errorf("--server %s: exit %d %q %q", host, code, out, errs)
	}
	for in, want := range map[string]string{
		"localhost": "localhost:" + port, "10.0.0.7:6000": "10.0.0.7:6000", "[::1]": "[::1]:" + port, "::1": "[::1]:" + port,
		"[::1]:7": "[::1]:7", "dns:///matchd.example:443": "dns:///matchd.example:443", "unix:///run/matchd.sock": "unix:///run/matchd.sock",
	} {
		if got := withDefaultPort(in); got != want {
			t.Errorf("withDefaultPort(%q) = %q, want %q", in, got, want)
		}
	}
	if saved != "50051" {
		t.Errorf("defaultPort %q, want matchd's 50051", saved)
	}
}

// TestTLSAdviceNamesData: the CLI run with another --data than matchd's
// (so another local CA) is told to give --data matchd's directory.
func TestTLSAdviceNamesData(t *testing.T) {
	m := startMatchd(t)
	other := t.TempDir()
	if _, err := pki.EnsureLocal(filepath.Join(other, "tls"), []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	_, errs, code := runCLI(t, "--server", m.addr, "--data", other, "--timeout", "10s", "lists")
	if code != ExitUnavailable || !strings.Contains(errs, "--data") || !strings.Contains(errs, filepath.Join(other, "tls")) {
		t.Errorf("another --data: exit %d %q, want exit %d pointing at --data", code, errs, ExitUnavailable)
	}
	// A --data without the CA, with a token for a certificate: --data too.
	_, errs, code = runCLI(t, "--server", m.addr, "--data", t.TempDir(), "--token", "a-token-of-16-chars-or-more", "--timeout", "10s", "lists")
	if code != ExitUsage || !strings.Contains(errs, "ca.pem") || !strings.Contains(errs, "--data") {
		t.Errorf("--data without a CA: exit %d %q", code, errs)
	}
	// Its own CA and certificate given as files: the advice is about them.
	dir := filepath.Join(other, "tls")
	_, errs, code = runCLI(t, "--server", m.addr, "--ca", filepath.Join(dir, pki.CAFile), "--cert", filepath.Join(dir, pki.AdminFile),
		"--key", filepath.Join(dir, pki.AdminKeyFile), "--timeout", "10s", "lists")
	if code != ExitUnavailable || !strings.Contains(errs, "--ca") || strings.Contains(errs, "--data") {
		t.Errorf("another --ca: exit %d %q", code, errs)
	}
}

// TestFederationNotConfigured: a federation command against a matchd started
// without --federation says so and how to start it, rather than gRPC's
// "unknown service bordermatch.v1.Federation" (issue 18: met walking the
// README).
func TestFederationNotConfigured(t *testing.T) {
	m := startMatchd(t)
	for _, args := range [][]string{
		{"federation", "pending"},
		{"search", "--partner", "agency-b", "--photo", amyPhoto()},
	} {
		_, errs, code := runCLI(t, append(m.conn(), args...)...)
		if code != ExitFailure || !strings.Contains(errs, "--federation") || strings.Contains(errs, "unknown service") {
			t.Errorf("%s: exit %d %q, want exit %d saying matchd runs without --federation", strings.Join(args, " "), code, errs, ExitFailure)
		}
	}
}
