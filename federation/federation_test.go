package federation

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/pki"
	"github.com/bordermatch/bordermatch/store"
)

// memKV is a KV in memory.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return append([]byte(nil), v...), ok, nil
}
func (k *memKV) Put(key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = append([]byte(nil), v...)
	return nil
}
func (k *memKV) PutIfAbsent(key string, v []byte) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.m[key]; ok {
		return false, nil
	}
	k.m[key] = append([]byte(nil), v...)
	return true, nil
}
func (k *memKV) Update(key string, fn func([]byte) ([]byte, error)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, err := fn(k.m[key])
	if err != nil {
		return err
	}
	k.m[key] = v
	return nil
}
func (k *memKV) Delete(key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}
func (k *memKV) Scan(prefix string, fn func(string, []byte) error) error {
	k.mu.Lock()
	var keys []string
	for key := range k.m {
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	k.mu.Unlock()
	for _, key := range keys {
		v, _, _ := k.Get(key)
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return nil
}

var _ KV = (*store.FederationKV)(nil)

func TestConfigValidate(t *testing.T) {
	good := `
agency: agency-a
release_deadline: 2s
partners:
  - name: agency-b
    address: 127.0.0.1:50052
    ca: b-ca.pem
    cert: agency-a.pem
    key: agency-a-key.pem
`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.ReleaseDeadline != 2*time.Second || c.HeadInterval != DefaultHeadInterval || len(c.Release) != 4 || c.MaxCandidates != DefaultMaxCandidates {
		t.Errorf("defaults: %+v", c)
	}
	if _, ok := c.Partner("agency-b"); !ok {
		t.Error("Partner(agency-b) not found")
	}
	for _, tc := range []struct{ from, to, want string }{
		{"agency: agency-a", "agency: ''", "agency"},
		{"release_deadline: 2s", "release_deadline: 0s", "release_deadline"},
		{"release_deadline: 2s", "release_deadline: 2s\nreference_ttl: 1s", "reference_ttl"},
		{"release_deadline: 2s", "release_deadline: 2s\nrelease: [name, shoe_size]", `unknown field "shoe_size"`},
		{"release_deadline: 2s", "release_deadline: 2s\nhead_interval: -1s", "head_interval"},
		{"release_deadline: 2s", "release_deadline: 2s\nmax_candidates: 50", "max_candidates"},
		{"release_deadline: 2s", "release_deadline: 2s\ncolour: blue", "colour"},
		{"name: agency-b", "name: agency-a", "this agency's own"},
		{"address: 127.0.0.1:50052", "address: nowhere", "address"},
		{"ca: b-ca.pem", "ca: ''", "ca"},
		{"key: agency-a-key.pem", "key: ''", "cert and key"},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if _, err := ParseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q → %q: %v, want an error naming %q", tc.from, tc.to, err, tc.want)
		}
	}
	twice := good + `  - name: agency-b
    address: 127.0.0.1:50053
    ca: b-ca.pem
    cert: a.pem
    key: a-key.pem
`
	if _, err := ParseConfig([]byte(twice)); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("a partner twice: %v", err)
	}
	// Relative file names are the config file's directory's.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fed.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = ReadConfig(filepath.Join(dir, "fed.yaml"))
	if err != nil || c.Partners[0].CA != filepath.Join(dir, "b-ca.pem") {
		t.Errorf("ReadConfig: %v %+v", err, c.Partners)
	}
}

func TestReferenceIDs(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewReferenceID(key, "agency-b", "req-1", "P1234")
		if err != nil {
			t.Fatal(err)
		}
		if !ValidReferenceID(id) || seen[id] {
			t.Fatalf("id %q: valid %v, seen %v", id, ValidReferenceID(id), seen[id])
		}
		if strings.Contains(id, "P1234") || strings.Contains(id, "agency") {
			t.Fatalf("id %q shows what it refers to", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "ref-", "P1234", "ref-" + strings.Repeat("1", 32), "ref-" + strings.Repeat("a", 31)} {
		if ValidReferenceID(bad) {
			t.Errorf("ValidReferenceID(%q)", bad)
		}
	}
	// The secret is made once and read back.
	f := filepath.Join(t.TempDir(), "sub", SecretFile)
	k1, err := LoadOrCreateSecret(f)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateSecret(f)
	if err != nil || string(k1) != string(k2) || len(k1) != 32 {
		t.Fatalf("secret read back: %x %x %v", k1, k2, err)
	}
	if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", st.Mode())
	}
}

func TestLedgerStates(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l := NewLedger(newMemKV(), []byte("k"), 24*time.Hour, 48*time.Minute)
	l.SetClock(func() time.Time { return now })
	refs, err := l.Issue("agency-b", "req-1", "case 7", []Hit{{SubjectID: "S1", Name: "Jane", Score: 0.8, Rank: 1, Modality: "face"}, {SubjectID: "S2", Score: 0.5, Rank: 2, Modality: "face"}})
	if err != nil || len(refs) != 2 || refs[0].State != StatePending || refs[0].ID == refs[1].ID {
		t.Fatalf("Issue: %+v %v", refs, err)
	}
	again, _ := l.Issue("agency-b", "req-2", "", []Hit{{SubjectID: "S1"}})
	if again[0].ID == refs[0].ID {
		t.Fatal("the same subject got the same reference in two requests")
	}
	if n, _ := l.Pending(); n != 3 {
		t.Fatalf("pending %d", n)
	}
	// Another partner, or no such reference: not found, alike.
	for _, tc := range []struct{ partner, id string }{{"agency-c", refs[0].ID}, {"agency-b", "ref-" + strings.Repeat("a", 32)}, {"agency-b", "S1"}} {
		if _, err := l.RequestData(tc.partner, tc.id); !errors.Is(err, ErrUnknownReference) {
			t.Errorf("RequestData(%s, %s): %v", tc.partner, tc.id, err)
		}
	}
	// Pending: the first request starts the deadline.
	r, err := l.RequestData("agency-b", refs[0].ID)
	if !errors.Is(err, ErrPendingReview) || !r.Deadline.Equal(now.Add(48*time.Minute)) {
		t.Fatalf("pending: %+v %v", r, err)
	}
	now = now.Add(10 * time.Minute)
	if r, _ = l.RequestData("agency-b", refs[0].ID); !r.DataRequested.Equal(now.Add(-10 * time.Minute)) {
		t.Fatalf("a second request moved the deadline: %+v", r)
	}
	// Confirm, then release; a second review is refused.
	r, err = l.Review(refs[0].ID, "officer-1", true, "same person")
	if err != nil || r.State != StateConfirmed || r.ReviewedBy != "officer-1" {
		t.Fatalf("confirm: %+v %v", r, err)
	}
	if _, err := l.Review(refs[0].ID, "officer-2", false, ""); !errors.Is(err, ErrReviewed) {
		t.Fatalf("second review: %v", err)
	}
	r, err = l.RequestData("agency-b", refs[0].ID)
	if err != nil || r.Released.IsZero() || r.Releases != 1 || r.SubjectID != "S1" {
		t.Fatalf("release: %+v %v", r, err)
	}
	// Reject.
	if _, err := l.Review(refs[1].ID, "officer-1", false, "not him"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RequestData("agency-b", refs[1].ID); !errors.Is(err, ErrRejected) {
		t.Fatalf("rejected: %v", err)
	}
	// The deadline: missed once, then not again.
	if _, err := l.RequestData("agency-b", again[0].ID); !errors.Is(err, ErrPendingReview) {
		t.Fatal(err)
	}
	if missed, _, _ := l.Sweep(); len(missed) != 0 {
		t.Fatalf("missed before the deadline: %+v", missed)
	}
	now = now.Add(49 * time.Minute)
	missed, _, err := l.Sweep()
	if err != nil || len(missed) != 1 || missed[0].ID != again[0].ID || !missed[0].DeadlineMissed {
		t.Fatalf("sweep: %+v %v", missed, err)
	}
	if missed, _, _ := l.Sweep(); len(missed) != 0 {
		t.Fatalf("missed twice: %+v", missed)
	}
	// Expiry: the reviewed ones go; the one with a request awaiting review
	// stays until reviewed. References received go after the TTL too.
	if err := l.RecordReceived([]Received{{ID: refs[0].ID, Partner: "agency-c", Created: now}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour)
	_, expired, err := l.Sweep()
	if err != nil || expired != 2 {
		t.Fatalf("expired %d %v", expired, err)
	}
	if _, err := l.Get(refs[0].ID); !errors.Is(err, ErrUnknownReference) {
		t.Fatalf("expired reference still there: %v", err)
	}
	if all, _ := l.List(true); len(all) != 1 || all[0].ID != again[0].ID {
		t.Fatalf("left: %+v", all)
	}
	if _, err := l.Received(refs[0].ID); !errors.Is(err, ErrUnknownReference) {
		t.Fatalf("a received reference past the TTL: %v", err)
	}
}

func TestLedgerOnStore(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLedger(st.Federation(), []byte("k"), time.Hour, time.Hour)
	refs, err := l.Issue("agency-b", "req-1", "", []Hit{{SubjectID: "S1", Score: 0.9, Rank: 1, Modality: "face"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Review(refs[0].ID, "o", true, ""); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l = NewLedger(st.Federation(), []byte("k"), time.Hour, time.Hour)
	if r, err := l.RequestData("agency-b", refs[0].ID); err != nil || r.SubjectID != "S1" {
		t.Fatalf("after reopening: %+v %v", r, err)
	}
	// Concurrent requests for one reference: every one answered, counted.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.RequestData("agency-b", refs[0].ID); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if r, _ := l.Get(refs[0].ID); r.Releases != 21 {
		t.Fatalf("releases %d, want 21", r.Releases)
	}
}

func TestSignedHeads(t *testing.T) {
	caA, _ := pki.NewCA("agency A")
	caB, _ := pki.NewCA("agency B")
	certPEM, keyPEM, err := caA.Issue(pki.Request{CommonName: "agency-a", Role: "partner"})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.Repeat("ab", 32)
	h, err := SignHead("agency-a", 42, hash, time.Now(), pair)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyHead(h, caA.Cert, time.Now()); err != nil {
		t.Fatalf("VerifyHead: %v", err)
	}
	if err := VerifyHead(h, caB.Cert, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another agency's CA: %v", err)
	}
	forged := h
	forged.Seq = 43
	if err := VerifyHead(forged, caA.Cert, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed seq: %v", err)
	}
	forged = h
	forged.Hash = strings.Repeat("cd", 32)
	if err := VerifyHead(forged, caA.Cert, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed hash: %v", err)
	}
	// An officer certificate of the same CA is not a partner's.
	oc, ok, _ := caA.Issue(pki.Request{CommonName: "o", Role: "officer"})
	op, _ := tls.X509KeyPair(oc, ok)
	oh, _ := SignHead("agency-a", 42, hash, time.Now(), op)
	if err := VerifyHead(oh, caA.Cert, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("officer-signed head: %v", err)
	}

	l := NewLedger(newMemKV(), []byte("k"), time.Hour, time.Hour)
	if n, err := l.KeepHead("agency-a", h); err != nil || n != 1 {
		t.Fatalf("KeepHead: %d %v", n, err)
	}
	if n, err := l.KeepHead("agency-a", h); err != nil || n != 1 {
		t.Fatalf("the same head again: %d %v", n, err)
	}
	other := h
	other.Hash = strings.Repeat("cd", 32)
	if _, err := l.KeepHead("agency-a", other); !errors.Is(err, ErrHeadConflict) {
		t.Fatalf("a conflicting head: %v", err)
	}
	hs, _ := l.Heads("agency-a", 0)
	if len(hs) != 1 || hs[0].Hash != hash {
		t.Fatalf("heads held: %+v", hs)
	}
	if hs, _ := l.Heads("agency-c", 0); len(hs) != 0 {
		t.Fatalf("another partner's heads: %+v", hs)
	}
	for seq := uint64(43); seq < 60; seq++ {
		h2, _ := SignHead("agency-a", seq, hash, time.Now(), pair)
		if _, err := l.KeepHead("agency-a", h2); err != nil {
			t.Fatal(err)
		}
	}
	if hs, _ := l.Heads("agency-a", 5); len(hs) != 5 || hs[0].Seq != 55 || hs[4].Seq != 59 {
		t.Fatalf("the latest 5 heads: %d, from %d", len(hs), hs[0].Seq)
	}
}

func TestLoadPartners(t *testing.T) {
	dir := t.TempDir()
	own, _ := pki.NewCA("agency A")
	b, _ := pki.NewCA("agency B")
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cert, key, _ := own.Issue(pki.Request{CommonName: "agency-a", Role: "partner"})
	write("agency-a.pem", cert)
	write("agency-a-key.pem", key)
	write("b-ca.pem", b.PEM)
	ownFile := write("own-ca.pem", own.PEM)
	cfg := DefaultConfig()
	cfg.Agency = "agency-a"
	p := Partner{Name: "agency-b", Address: "127.0.0.1:1", CA: filepath.Join(dir, "b-ca.pem"), Cert: filepath.Join(dir, "agency-a.pem"), Key: filepath.Join(dir, "agency-a-key.pem")}
	cfg.Partners = []Partner{p}
	loaded, err := cfg.Load()
	if err != nil || len(loaded) != 1 || loaded[0].CACert.Subject.CommonName != "agency B" {
		t.Fatalf("Load: %v", err)
	}
	if err := CheckNotOwn(loaded, ownFile); err != nil {
		t.Fatalf("CheckNotOwn: %v", err)
	}
	// Our own CA as a partner's: refused.
	p2 := p
	p2.Name, p2.CA = "agency-x", ownFile
	cfg.Partners = []Partner{p2}
	loaded, err = cfg.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckNotOwn(loaded, ownFile); err == nil || !strings.Contains(err.Error(), "own client CA") {
		t.Errorf("own CA as a partner's: %v", err)
	}
	// Two partners, one CA: refused.
	p3 := p
	p3.Name = "agency-c"
	cfg.Partners = []Partner{p, p3}
	if _, err := cfg.Load(); err == nil || !strings.Contains(err.Error(), "same CA") {
		t.Errorf("two partners with one CA: %v", err)
	}
	// A file that is not a CA certificate.
	p.CA = filepath.Join(dir, "agency-a.pem")
	cfg.Partners = []Partner{p}
	if _, err := cfg.Load(); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf as the CA: %v", err)
	}
}
