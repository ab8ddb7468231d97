package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/store"
)

type auditOut struct {
	Records []struct {
		Seq      uint64 `json:"seq"`
		Identity string `json:"identity"`
		Role     string `json:"role"`
		RPC      string `json:"rpc"`
		Decision string `json:"decision"`
		Hits     []struct {
			SubjectID string   `json:"subject_id"`
			Score     *float64 `json:"score"`
		} `json:"hits"`
	} `json:"records"`
}

func auditJSON(t *testing.T, addr string, args ...string) auditOut {
	t.Helper()
	out := mustCLI(t, addr, append([]string{"audit", "--json"}, args...)...)
	var res auditOut
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	return res
}

// TestAccessEndToEnd: matchd makes its local CA on first start and the CLI
// uses it by default; matchd certs issues a gate certificate, which may
// search but not enrol; the audit trail shows both, survives a restart, and
// audit verify finds a record edited on disk.
func TestAccessEndToEnd(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data)
	mustCLI(t, d.addr, "add", "--id", "sheldon", "--name", "Sheldon Cooper", "--photo", photo("bbt/sheldon/1.png"), "--list", "wanted")

	certs := t.TempDir()
	out, err := exec.Command(filepath.Join(binDir, "matchd"), "certs", "--data", data, "--role", "gate", "--name", "gate-07", "--out", certs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "gate-07.pem") {
		t.Fatalf("matchd certs: %v\n%s", err, out)
	}
	// A cluster node's NATS certificate from the same CA: server and
	// client authentication, for the hosts given.
	out, err = exec.Command(filepath.Join(binDir, "matchd"), "certs", "--data", data, "--role", "node", "--name", "node-a",
		"--host", "127.0.0.1,nats-a.example", "--out", certs).CombinedOutput()
	if err != nil {
		t.Fatalf("matchd certs --role node: %v\n%s", err, out)
	}
	nodePEM, err := os.ReadFile(filepath.Join(certs, "node-a.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(nodePEM)
	nodeCert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(nodeCert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(nodeCert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) ||
		!slices.Contains(nodeCert.DNSNames, "nats-a.example") || len(nodeCert.IPAddresses) != 1 {
		t.Fatalf("node certificate: usages %v, names %v, addresses %v", nodeCert.ExtKeyUsage, nodeCert.DNSNames, nodeCert.IPAddresses)
	}
	gate := []string{"--cert", filepath.Join(certs, "gate-07.pem"), "--key", filepath.Join(certs, "gate-07-key.pem")}
	_, errs, code := cli(t, d.addr, append(gate, "add", "--id", "x", "--photo", photo("bbt/sheldon/1.png"))...)
	if code != 6 || !strings.Contains(errs, "gate-07") || !strings.Contains(errs, "may not call") {
		t.Fatalf("gate enrol: exit %d %q, want 6 and a refusal naming the caller", code, errs)
	}
	if out := mustCLI(t, d.addr, append(gate, "search", "--photo", photo("bbt/sheldon/3.png"))...); !strings.Contains(out, "sheldon") {
		t.Fatalf("gate search: %s", out)
	}
	_, errs, code = cli(t, d.addr, append(gate, "audit")...)
	if code != 6 {
		t.Fatalf("gate reading the audit trail: exit %d %q", code, errs)
	}

	res := auditJSON(t, d.addr)
	// The enrolment, the refusal, the search, and the refused audit read.
	if len(res.Records) != 4 || res.Records[3].Identity != "gate-07" || res.Records[3].Decision != "denied" {
		t.Fatalf("audit: %+v, want 4 records", res)
	}
	for i, want := range []struct{ identity, rpc, decision, hit string }{
		{"local-admin", "Enroll", "enrolled", "sheldon"},
		{"gate-07", "Enroll", "denied", ""},
		{"gate-07", "Identify", "hit", "sheldon"},
	} {
		r := res.Records[i]
		if r.Seq != uint64(i+1) || r.Identity != want.identity || !strings.HasSuffix(r.RPC, "/"+want.rpc) || r.Decision != want.decision ||
			(want.hit != "" && (len(r.Hits) == 0 || r.Hits[0].SubjectID != want.hit)) {
			t.Errorf("record %d: %+v, want %+v", i+1, r, want)
		}
	}
	// A hit's score, at or above the default model's threshold.
	if r := res.Records[2]; r.Hits[0].Score == nil || *r.Hits[0].Score < float64(engine.DefaultThresholds["mobilefacenet-192/v1"]) {
		t.Fatalf("the search's record lacks the score: %+v", r)
	}
	table := mustCLI(t, d.addr, "audit", "--subject", "sheldon", "--since", "1h")
	// The table shows the hit's score as the record holds it.
	hit := fmt.Sprintf("sheldon %.3f", *res.Records[2].Hits[0].Score)
	if !strings.Contains(table, "gate-07") || !strings.Contains(table, hit) || !strings.Contains(table, "2 record(s)") {
		t.Errorf("audit --subject sheldon:\n%s", table)
	}
	if out := mustCLI(t, d.addr, "audit", "verify"); !strings.Contains(out, "intact: 4 record(s)") {
		t.Errorf("audit verify: %s", out)
	}

	// The chain continues across a restart.
	d.stop(t)
	if !strings.Contains(d.log.String(), "created a local CA") {
		t.Errorf("matchd did not log that it made a CA:\n%s", d.log)
	}
	d = startMatchd(t, data)
	if strings.Contains(d.log.String(), "created a local CA") {
		t.Error("matchd made a new CA on restart")
	}
	mustCLI(t, d.addr, "search", "--photo", photo("bbt/sheldon/3.png"))
	res = auditJSON(t, d.addr)
	if n := len(res.Records); n != 5 || res.Records[4].Seq != 5 || res.Records[4].Decision != "hit" || res.Records[4].Identity != "local-admin" {
		t.Fatalf("after restart: %+v", res)
	}
	mustCLI(t, d.addr, "audit", "verify")
	d.stop(t)

	// Edit record 3 on disk: verify fails and names it.
	// The gallery is encrypted: open it as matchd does, with its key.
	opt, _, err := engine.GalleryOptions(data, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	db := st.DB()
	key := binary.BigEndian.AppendUint64([]byte("a/r/"), 3)
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		b, _ := item.ValueCopy(nil)
		return txn.Set(key, bytes.Replace(b, []byte("gate-07"), []byte("gate-08"), 1))
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	d = startMatchd(t, data)
	_, errs, code = cli(t, d.addr, "audit", "verify")
	if code != 1 || !strings.Contains(errs, "record 3") {
		t.Fatalf("audit verify after an edit: exit %d %q, want 1 naming record 3", code, errs)
	}
	d.stop(t)
}

// TestInsecureFlag: plaintext only when both sides ask for it.
func TestInsecureFlag(t *testing.T) {
	tlsData := t.TempDir()
	d := startMatchd(t, tlsData)
	if _, errs, code := cli(t, d.addr, "--insecure", "lists", "--timeout", "5s"); code != 5 {
		t.Errorf("--insecure client to a TLS server: exit %d %q, want 5", code, errs)
	}
	d.stop(t)

	d = startMatchd(t, t.TempDir(), "--insecure")
	if out := mustCLI(t, d.addr, "--insecure", "lists"); !strings.Contains(out, "No watchlists") {
		t.Errorf("--insecure lists: %s", out)
	}
	if _, errs, code := cli(t, d.addr, "--data", tlsData, "lists", "--timeout", "5s"); code != 5 || !strings.Contains(errs, "secure connection") {
		t.Errorf("TLS client to an --insecure server: exit %d %q, want 5", code, errs)
	}
	d.stop(t)
	if !strings.Contains(d.log.String(), "--insecure") {
		t.Errorf("matchd did not warn about --insecure:\n%s", d.log)
	}
}

// TestAuditSurvivesKill: SIGKILL while audited calls are being written
// leaves a chain that verifies, with every acknowledged record in it.
func TestAuditSurvivesKill(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data)
	tlsDir := filepath.Join(data, "tls")
	cfg, err := pki.ClientConfig(filepath.Join(tlsDir, pki.CAFile), filepath.Join(tlsDir, pki.AdminFile), filepath.Join(tlsDir, pki.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(d.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewMatcherClient(conn)
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				// Each refused deletion of an unknown subject is an audited call.
				_, err := c.DeleteSubject(context.Background(), &pb.DeleteSubjectRequest{SubjectId: fmt.Sprintf("nobody-%d-%d", w, i)})
				if status.Code(err) != codes.NotFound {
					return
				}
				acked.Add(1)
			}
		}()
	}
	for acked.Load() < 50 {
		time.Sleep(10 * time.Millisecond)
	}
	d.cmd.Process.Kill()
	<-d.done
	wg.Wait()

	d = startMatchd(t, data)
	out := mustCLI(t, d.addr, "audit", "verify", "--json")
	var res struct {
		OK      bool  `json:"ok"`
		Records int64 `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err, out)
	}
	if !res.OK || res.Records < acked.Load() {
		t.Fatalf("after SIGKILL: %s; %d calls were acknowledged", out, acked.Load())
	}
	t.Logf("%d calls acknowledged before SIGKILL, %d records in an intact chain", acked.Load(), res.Records)
	d.stop(t)
}

// TestMetricsListener: matchd's metrics listener serves TLS with the local
// CA's server certificate; /readyz is 503 while the models and the index
// load and 200 once gRPC serves; pprof answers the admin certificate only,
// and the audit trail records the refusals and the grant.
func TestMetricsListener(t *testing.T) {
	data := t.TempDir()
	tlsDir := filepath.Join(data, "tls")
	// The CA exists before the first start, as an agency's would, so the
	// probe below can trust it from the first moment.
	if _, err := pki.EnsureLocal(tlsDir, pki.LocalHosts("127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	client := func(cert, key string) *http.Client {
		cfg, err := pki.ClientConfig(filepath.Join(tlsDir, pki.CAFile), cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	anon := client("", "")
	metrics := freeAddr(t)
	base := "https://" + metrics

	// Probe /readyz from before the start until it says ready.
	type probe struct {
		codes []int
		grpc  error // dialling the gRPC port right after the first 200
	}
	probed := make(chan probe, 1)
	stop := make(chan struct{})
	defer close(stop)
	var grpcAddr atomic.Value
	go func() {
		var p probe
		for {
			select {
			case <-stop:
				probed <- p
				return
			default:
			}
			resp, err := anon.Get(base + "/readyz")
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			resp.Body.Close()
			if len(p.codes) == 0 || p.codes[len(p.codes)-1] != resp.StatusCode {
				p.codes = append(p.codes, resp.StatusCode)
			}
			if resp.StatusCode == http.StatusOK {
				for grpcAddr.Load() == nil {
					time.Sleep(time.Millisecond)
				}
				c, err := net.DialTimeout("tcp", grpcAddr.Load().(string), time.Second)
				if err == nil {
					c.Close()
				}
				p.grpc = err
				probed <- p
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	d := startMatchd(t, data, "--metrics-listen", metrics, "--pprof")
	grpcAddr.Store(d.addr)
	var p probe
	select {
	case p = <-probed:
	case <-time.After(30 * time.Second):
		t.Fatalf("/readyz never answered 200\n%s", d.log)
	}
	if len(p.codes) != 2 || p.codes[0] != http.StatusServiceUnavailable || p.codes[1] != http.StatusOK || p.grpc != nil {
		t.Fatalf("/readyz answered %v during the start, gRPC dial after ready: %v; want [503 200] and a dial", p.codes, p.grpc)
	}

	if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics answered over plaintext")
		}
		resp.Body.Close()
	}
	get := func(c *http.Client, path string) int {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := get(anon, "/metrics"); code != http.StatusOK {
		t.Errorf("/metrics without a client certificate: %d", code)
	}
	certs := t.TempDir()
	if out, err := exec.Command(filepath.Join(binDir, "matchd"), "certs", "--data", data, "--role", "officer", "--name", "officer-3", "--out", certs).CombinedOutput(); err != nil {
		t.Fatalf("matchd certs: %v\n%s", err, out)
	}
	officer := client(filepath.Join(certs, "officer-3.pem"), filepath.Join(certs, "officer-3-key.pem"))
	admin := client(filepath.Join(tlsDir, pki.AdminFile), filepath.Join(tlsDir, pki.AdminKeyFile))
	for _, tc := range []struct {
		name string
		c    *http.Client
		want int
	}{{"no certificate", anon, http.StatusUnauthorized}, {"officer", officer, http.StatusForbidden}, {"admin", admin, http.StatusOK}} {
		if code := get(tc.c, "/debug/pprof/heap"); code != tc.want {
			t.Errorf("pprof as %s: %d, want %d", tc.name, code, tc.want)
		}
	}
	res := auditJSON(t, d.addr)
	var got []string
	for _, r := range res.Records {
		if r.RPC == server.PprofMethod {
			got = append(got, r.Identity+" "+r.Decision)
		}
	}
	if len(got) != 3 || !strings.HasSuffix(got[0], " unauthenticated") || got[1] != "officer-3 denied" || got[2] != "local-admin ok" {
		t.Errorf("pprof audit records: %q", got)
	}
	mustCLI(t, d.addr, "audit", "verify")

	// The server's own metrics: its gallery, its calls and its face scans.
	mustCLI(t, d.addr, "add", "--id", "jimin", "--photo", photo("idols/jimin/4.jpg"))
	mustCLI(t, d.addr, "search", "--photo", photo("idols/jimin/4.jpg"))
	resp, err := anon.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"bordermatch_gallery_face_templates 1\n",
		"bordermatch_gallery_subjects 1\n",
		`bordermatch_rpc_duration_seconds_count{code="OK",rpc="/bordermatch.v1.Matcher/Enroll"} 1` + "\n",
		"bordermatch_face_search_batch_probes_count 1\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	d.stop(t)
}
