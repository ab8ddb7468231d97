package main

// Two agencies, each a real matchd with its own data directory and local
// CA, searching each other hit/no-hit (README "Searching partner agencies
// (hit/no-hit)"), set up exactly as the README says: partner certificates
// from each agency's own CA, CA certificates exchanged, federation.yaml
// files naming each other.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/pki"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates/an2k"
)

// agency is one side of the test.
type agency struct {
	name, data, fedDir, fedFile, metrics string
	d                                    *daemon
}

func matchdCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "matchd"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("matchd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// grpcAs dials addr with a client certificate, trusting caFile.
func grpcAs(t *testing.T, addr, caFile, cert, key string) *grpc.ClientConn {
	t.Helper()
	cfg, err := pki.ClientConfig(caFile, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// onlyAllowedFields fails for any field set in m, at any depth, that is not
// in allowed (full names), and for any string holding one of secrets.
func onlyAllowedFields(t *testing.T, m protoreflect.Message, allowed map[protoreflect.FullName]bool, secrets []string) {
	t.Helper()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !allowed[fd.FullName()] {
			t.Errorf("the first answer carries %s = %v", fd.FullName(), v)
		}
		check := func(v protoreflect.Value) {
			switch {
			case fd.Kind() == protoreflect.MessageKind:
				onlyAllowedFields(t, v.Message(), allowed, secrets)
			case fd.Kind() == protoreflect.StringKind:
				for _, s := range secrets {
					if strings.Contains(strings.ToLower(v.String()), strings.ToLower(s)) {
						t.Errorf("%s = %q gives away %q", fd.FullName(), v.String(), s)
					}
				}
			case fd.Kind() == protoreflect.BytesKind:
				t.Errorf("%s: bytes in the first answer", fd.FullName())
			}
		}
		if fd.IsList() {
			for i := range v.List().Len() {
				check(v.List().Get(i))
			}
		} else {
			check(v)
		}
		return true
	})
	if len(m.GetUnknown()) > 0 {
		t.Errorf("%s carries unknown fields", m.Descriptor().FullName())
	}
}

// auditDecisions lists an agency's audit records as decision → details.
func auditDecisions(t *testing.T, a *agency) map[string][]string {
	t.Helper()
	out := mustCLI(t, a.d.addr, "audit", "--json")
	var recs struct {
		Records []struct {
			Decision, Detail, Identity, Role string
		}
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	got := map[string][]string{}
	for _, r := range recs.Records {
		got[r.Decision] = append(got[r.Decision], r.Identity+" "+r.Role+": "+r.Detail)
	}
	return got
}

func metricValue(t *testing.T, a *agency, line string) (string, bool) {
	t.Helper()
	cfg, err := pki.ClientConfig(filepath.Join(a.data, "tls", "ca.pem"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Get("https://" + a.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, line+" "); ok {
			return rest, true
		}
	}
	return "", false
}

func TestFederation(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	a := &agency{name: "agency-a", data: filepath.Join(dir, "a-data"), fedDir: filepath.Join(dir, "a-fed")}
	b := &agency{name: "agency-b", data: filepath.Join(dir, "b-data"), fedDir: filepath.Join(dir, "b-fed")}
	other := map[*agency]*agency{a: b, b: a}

	// Both agencies run matchd, which makes its local CA at the first
	// start; B's gallery holds the subject.
	for _, ag := range []*agency{a, b} {
		ag.d = startMatchd(t, ag.data)
	}
	mustCLI(t, b.d.addr, "add", "--id", "T-0417", "--name", "Chou Tzu-yu", "--photo", filepath.Join(root, "testdata", "watchlist", "tzuyu", "1.jpg"),
		"--list", "interpol-red", "--meta", "date_of_birth=1999-06-14", "--meta", "nationality=TWN")
	mustCLI(t, b.d.addr, "add", "--id", "P-0001", "--name", "Penny", "--photo", filepath.Join(root, "testdata", "watchlist", "penny", "1.png"), "--list", "sis")

	// README, step 1: each agency issues its own partner certificate from
	// its own CA. Step 2: they exchange CA certificates (public). Step 3:
	// federation.yaml names the partner, its address, its CA and our
	// certificate.
	for _, ag := range []*agency{a, b} {
		if err := os.MkdirAll(ag.fedDir, 0o700); err != nil {
			t.Fatal(err)
		}
		matchdCmd(t, "certs", "--data", ag.data, "--role", "partner", "--name", ag.name, "--out", ag.fedDir)
	}
	for _, ag := range []*agency{a, b} {
		p := other[ag]
		copyFile(t, filepath.Join(p.data, "tls", "ca.pem"), filepath.Join(ag.fedDir, p.name+"-ca.pem"))
	}
	for _, ag := range []*agency{a, b} {
		ag.d.stop(t)
	}
	a.d.addr, b.d.addr = freeAddr(t), freeAddr(t)
	b.metrics = freeAddr(t)
	for _, ag := range []*agency{a, b} {
		p := other[ag]
		extra := ""
		if ag == b {
			// B answers partners' requests for data within 3 s, not 48 h,
			// so that the test sees a deadline missed.
			extra = "release_deadline: 3s\nsweep_interval: 200ms\n"
		}
		cfg := fmt.Sprintf(`agency: %s
%spartners:
  - name: %s
    address: %s
    ca: %s-ca.pem
    cert: %s.pem
    key: %s-key.pem
`, ag.name, extra, p.name, p.d.addr, p.name, ag.name, ag.name)
		ag.fedFile = filepath.Join(ag.fedDir, "federation.yaml")
		if err := os.WriteFile(ag.fedFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startAt := func(ag *agency) {
		addr := ag.d.addr
		args := []string{"--federation", ag.fedFile}
		if ag.metrics != "" {
			args = append(args, "--metrics-listen", ag.metrics)
		}
		ag.d = startMatchdAt(t, addr, ag.data, args...)
	}
	startAt(a)
	startAt(b)
	t.Logf("two agencies up: %v", time.Since(start))

	probe := filepath.Join(root, "testdata", "faces", "idols", "tzuyu", "2.jpg")
	secrets := []string{"T-0417", "Chou", "Tzu-yu", "1999-06-14", "TWN", "interpol", "P-0001", "Penny"}

	// The first answer, as B gives it to A's matchd (A's partner
	// certificate, B's CA): references and scores only, field by field.
	bAsA := grpcAs(t, b.d.addr, filepath.Join(a.fedDir, "agency-b-ca.pem"), filepath.Join(a.fedDir, "agency-a.pem"), filepath.Join(a.fedDir, "agency-a-key.pem"))
	photo, err := os.ReadFile(probe)
	if err != nil {
		t.Fatal(err)
	}
	fc := pb.NewFederationClient(bAsA)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	search := func() *pb.ReferenceSearchResponse {
		t.Helper()
		resp, err := fc.ReferenceSearch(ctx, &pb.ReferenceSearchRequest{RequestId: "a-req-1", Purpose: "test", Face: &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: photo}}})
		if err != nil {
			t.Fatalf("ReferenceSearch: %v", err)
		}
		return resp
	}
	first := search()
	if !first.GetHit() || len(first.GetReferences()) != 1 || first.GetReferences()[0].GetRank() != 1 || first.GetReferences()[0].GetScore() <= 0 ||
		first.GetReferences()[0].GetModality() != "face" || first.GetRequestId() != "a-req-1" {
		t.Fatalf("first answer: %v", first)
	}
	allowed := map[protoreflect.FullName]bool{}
	for _, f := range []string{"ReferenceSearchResponse.request_id", "ReferenceSearchResponse.hit", "ReferenceSearchResponse.references",
		"Reference.reference_id", "Reference.score", "Reference.rank", "Reference.modality"} {
		allowed[protoreflect.FullName("bordermatch.v1."+f)] = true
	}
	onlyAllowedFields(t, first.ProtoReflect(), allowed, secrets)
	// The message type itself has no other field to fill.
	for _, md := range []protoreflect.MessageDescriptor{first.ProtoReflect().Descriptor(), (&pb.Reference{}).ProtoReflect().Descriptor()} {
		for i := range md.Fields().Len() {
			if fd := md.Fields().Get(i); !allowed[fd.FullName()] {
				t.Errorf("%s has a field %s", md.FullName(), fd.FullName())
			}
		}
	}
	// The same subject, the same request id again: another reference.
	second := search()
	if second.GetReferences()[0].GetReferenceId() == first.GetReferences()[0].GetReferenceId() {
		t.Fatalf("the same subject got the same reference twice: %s", first.GetReferences()[0].GetReferenceId())
	}
	// Someone B does not hold: no hit, no reference.
	stranger, err := os.ReadFile(filepath.Join(root, "testdata", "faces", "idols", "jimin", "4.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	nohit, err := fc.ReferenceSearch(ctx, &pb.ReferenceSearchRequest{RequestId: "a-req-3", Face: &pb.Sample{Kind: &pb.Sample_FaceImage{FaceImage: stranger}}})
	if err != nil || nohit.GetHit() || len(nohit.GetReferences()) != 0 || nohit.GetRequestId() != "a-req-3" {
		t.Errorf("no-hit search: %v %v", nohit, err)
	}
	// A Prüm-style search arrives as an ANSI/NIST-ITL transaction (INT-I
	// CPS, here with the face only): the same answer, references only.
	pr, err := an2k.LoadProfile("int-i")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := an2k.NewTransaction(pr, "CPS", an2k.Header{Originator: "AGENCYA", Destination: "AGENCYB"})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := pr.Type2(map[string]string{"reference": "case-2026-117"})
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(t2)
	if _, err := tx.AddFace(photo, 1); err != nil {
		t.Fatal(err)
	}
	cps, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	byNIST, err := fc.ReferenceSearch(ctx, &pb.ReferenceSearchRequest{RequestId: "a-req-4", NistTransaction: cps})
	if err != nil || !byNIST.GetHit() || len(byNIST.GetReferences()) == 0 {
		t.Fatalf("search by an ANSI/NIST transaction: %v %v", byNIST, err)
	}
	onlyAllowedFields(t, byNIST.ProtoReflect(), allowed, secrets)
	cpsPath := filepath.Join(t.TempDir(), "cps.an2")
	if err := os.WriteFile(cpsPath, cps, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.ReferenceSearch(ctx, &pb.ReferenceSearchRequest{RequestId: "a-req-5", NistTransaction: cps[:len(cps)/2]}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a truncated transaction: %v", err)
	}

	// A partner certificate is refused every other call: every method of
	// every bordermatch.v1 service but the four partner RPCs, read from
	// the descriptors, and reflection.
	methods := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("bordermatch.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				full := "/" + string(sd.FullName()) + "/" + string(md.Name())
				if access.PartnerMethods[full] {
					continue
				}
				methods++
				var err error
				if md.IsStreamingClient() || md.IsStreamingServer() {
					var st grpc.ClientStream
					st, err = bAsA.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, full)
					if err == nil {
						_ = st.SendMsg(&emptypb.Empty{})
						_ = st.CloseSend()
						err = st.RecvMsg(&emptypb.Empty{})
					}
				} else {
					err = bAsA.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
				}
				if status.Code(err) != codes.PermissionDenied {
					t.Errorf("partner certificate calling %s: %v, want PermissionDenied", full, err)
				}
			}
		}
		return true
	})
	if methods < 20 {
		t.Errorf("only %d methods tried", methods)
	}
	refl, err := grpc_reflection_v1.NewServerReflectionClient(bAsA).ServerReflectionInfo(ctx)
	if err == nil {
		_ = refl.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}})
		_, err = refl.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("partner certificate calling reflection: %v", err)
	}
	// A's CA may issue itself an admin certificate: at B it is a partner
	// all the same. And A's partner certificate is nothing at A itself.
	matchdCmd(t, "certs", "--data", a.data, "--role", "admin", "--name", "a-admin", "--out", a.fedDir)
	bAsAAdmin := grpcAs(t, b.d.addr, filepath.Join(a.fedDir, "agency-b-ca.pem"), filepath.Join(a.fedDir, "a-admin.pem"), filepath.Join(a.fedDir, "a-admin-key.pem"))
	if _, err := pb.NewMatcherClient(bAsAAdmin).ListSubjects(ctx, &pb.ListSubjectsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("an admin certificate of A's CA at B: %v, want PermissionDenied", err)
	}
	aAsPartner := grpcAs(t, a.d.addr, filepath.Join(a.data, "tls", "ca.pem"), filepath.Join(a.fedDir, "agency-a.pem"), filepath.Join(a.fedDir, "agency-a-key.pem"))
	if _, err := pb.NewFederationClient(aAsPartner).ReferenceSearch(ctx, &pb.ReferenceSearchRequest{RequestId: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("A's own partner certificate at A: %v, want PermissionDenied", err)
	}

	// The officers' way: A searches B.
	type refsJSON struct {
		Partner    string `json:"partner"`
		Hit        bool   `json:"hit"`
		References []struct {
			ReferenceID string  `json:"reference_id"`
			Score       float64 `json:"score"`
			Rank        int     `json:"rank"`
		} `json:"references"`
	}
	searchB := func() string {
		t.Helper()
		out := mustCLI(t, a.d.addr, "search", "--partner", "agency-b", "--photo", probe, "--purpose", "case 2026/117", "--json")
		var r refsJSON
		if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Hit || len(r.References) != 1 || r.Partner != "agency-b" {
			t.Fatalf("search --partner: %v\n%s", err, out)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("search --partner shows %q:\n%s", s, out)
			}
		}
		return r.References[0].ReferenceID
	}
	refConfirm, refReject, refLate := searchB(), searchB(), searchB()
	if out := mustCLI(t, a.d.addr, "search", "--partner", "agency-b", "--nist", cpsPath); !strings.Contains(out, "HIT at agency-b") {
		t.Errorf("search --partner --nist: %s", out)
	}
	out := mustCLI(t, a.d.addr, "search", "--partner", "agency-b", "--photo", probe)
	if !strings.Contains(out, "HIT at agency-b") || !strings.Contains(out, "REFERENCE") {
		t.Errorf("search --partner table:\n%s", out)
	}
	// B's officer sees them, with the subject.
	out = mustCLI(t, b.d.addr, "federation", "pending", "--json")
	for _, ref := range []string{refConfirm, refReject, refLate} {
		if !strings.Contains(out, ref) {
			t.Errorf("pending lacks %s:\n%s", ref, out)
		}
	}
	if !strings.Contains(out, `"subject_id": "T-0417"`) || !strings.Contains(out, `"partner": "agency-a"`) {
		t.Errorf("pending:\n%s", out)
	}
	mustCLI(t, b.d.addr, "federation", "confirm", refConfirm, "--note", "same person")
	mustCLI(t, b.d.addr, "federation", "reject", refReject, "--note", "not the same person")
	if _, errs, code := cli(t, b.d.addr, "federation", "confirm", refReject); code != 4 || !strings.Contains(errs, "reviewed already") {
		t.Errorf("a second review: exit %d %s", code, errs)
	}

	// Confirmed: A gets the core data.
	out = mustCLI(t, a.d.addr, "federation", "request-data", refConfirm, "--json")
	var cd struct {
		Partner, Name, Nationality string
		DateOfBirth                string   `json:"date_of_birth"`
		Reasons                    []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(out), &cd); err != nil || cd.Name != "Chou Tzu-yu" || cd.DateOfBirth != "1999-06-14" ||
		cd.Nationality != "TWN" || len(cd.Reasons) != 1 || cd.Reasons[0] != "interpol-red" || cd.Partner != "agency-b" {
		t.Fatalf("request-data: %v\n%s", err, out)
	}
	// Rejected: refused. Another agency's reference id: not found.
	if _, errs, code := cli(t, a.d.addr, "federation", "request-data", refReject); code != 6 || !strings.Contains(errs, "rejected") {
		t.Errorf("request-data of a rejected reference: exit %d %s", code, errs)
	}
	if _, err := fc.RequestCoreData(ctx, &pb.CoreDataRequest{ReferenceId: "ref-" + strings.Repeat("a", 32)}); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown reference: %v", err)
	}
	// Pending: awaits review, and B misses its 3-second deadline.
	if _, errs, code := cli(t, a.d.addr, "federation", "request-data", refLate); code != 4 || !strings.Contains(errs, "awaits review") {
		t.Errorf("request-data of a pending reference: exit %d %s", code, errs)
	}
	missed := `bordermatch_federation_deadlines_missed_total{partner="agency-a"}`
	deadline := time.Now().Add(15 * time.Second)
	for {
		if v, ok := metricValue(t, b, missed); ok && v == "1" {
			break
		}
		if time.Now().After(deadline) {
			v, _ := metricValue(t, b, missed)
			t.Fatalf("%s = %q after the deadline", missed, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, _ := metricValue(t, b, `bordermatch_federation_releases_total{partner="agency-a"}`); v != "1" {
		t.Errorf("releases metric %q", v)
	}
	if v, _ := metricValue(t, b, `bordermatch_federation_searches_total{direction="inbound",outcome="hit",partner="agency-a"}`); v != "8" {
		t.Errorf("inbound searches metric %q, want 8", v)
	}
	if v, _ := metricValue(t, b, `bordermatch_federation_searches_total{direction="inbound",outcome="no-hit",partner="agency-a"}`); v != "1" {
		t.Errorf("inbound no-hit searches metric %q, want 1", v)
	}
	if v, _ := metricValue(t, b, "bordermatch_federation_pending_reviews"); v != "6" {
		t.Errorf("pending reviews metric %q, want 6", v)
	}
	out = mustCLI(t, b.d.addr, "federation", "pending")
	if !strings.Contains(out, refLate) || !strings.Contains(out, "MISSED") {
		t.Errorf("pending after the deadline:\n%s", out)
	}

	// Every step in both audit trails.
	for ag, want := range map[*agency][]string{
		a: {audit.FederationSearchSent, audit.FederationDataReceived, audit.FederationHeadSent},
		b: {audit.FederationSearchAnswered, audit.FederationConfirmed, audit.FederationRejected, audit.FederationReleased,
			audit.FederationWithheld, audit.FederationDeadlineMissed},
	} {
		got := auditDecisions(t, ag)
		for _, d := range want {
			if len(got[d]) == 0 {
				t.Errorf("%s's audit trail has no %s record", ag.name, d)
			}
		}
	}
	got := auditDecisions(t, b)
	if s := strings.Join(got[audit.FederationSearchAnswered], "\n"); !strings.Contains(s, "agency-a/agency-a partner") || !strings.Contains(s, "case 2026/117") {
		t.Errorf("B's search records name the partner and the purpose:\n%s", s)
	}
	if s := strings.Join(got["denied"], "\n"); !strings.Contains(s, "agency-a/a-admin partner") {
		t.Errorf("B's trail lacks the refusal of A's admin certificate:\n%s", s)
	}

	// B's ledger survives a restart: the reviews, the deadline missed, the
	// release.
	b.d.stop(t)
	startAt(b)
	out = mustCLI(t, b.d.addr, "federation", "pending", "--all", "--json")
	for _, want := range []string{refConfirm, refReject, refLate, `"state": "confirmed"`, `"state": "rejected"`, `"deadline_missed": true`, `"released": "`} {
		if !strings.Contains(out, want) {
			t.Errorf("pending --all after B's restart lacks %s:\n%s", want, out)
		}
	}
	out = mustCLI(t, a.d.addr, "federation", "request-data", refConfirm)
	if !strings.Contains(out, "Chou Tzu-yu") {
		t.Errorf("request-data after B's restart:\n%s", out)
	}

	// The witness: A's head at B, then A's chain rewritten whole.
	out = mustCLI(t, a.d.addr, "federation", "send-heads", "agency-b")
	if !strings.Contains(out, "agency-b: head") {
		t.Errorf("send-heads: %s", out)
	}
	if got := auditDecisions(t, b); len(got[audit.FederationHeadReceived]) == 0 {
		t.Errorf("B's audit trail has no %s record", audit.FederationHeadReceived)
	}
	out = mustCLI(t, a.d.addr, "audit", "verify", "--witness", "agency-b")
	if !strings.Contains(out, "Witness agency-b") || !strings.Contains(out, "all agree") {
		t.Errorf("audit verify --witness:\n%s", out)
	}
	a.d.stop(t)
	rewriteChain(t, a.data)
	startAt(a)
	out = mustCLI(t, a.d.addr, "audit", "verify")
	if !strings.Contains(out, "Audit chain intact") {
		t.Fatalf("the rewritten chain does not verify on its own:\n%s", out)
	}
	_, errs, code := cli(t, a.d.addr, "audit", "verify", "--witness", "agency-b")
	if code != 1 || !strings.Contains(errs, "DIFFERS from what agency-b witnessed") || !strings.Contains(errs, "rewritten") {
		t.Errorf("audit verify --witness after the rewrite: exit %d\n%s", code, errs)
	}
	t.Logf("done in %v", time.Since(start))
}

// rewriteChain rewrites a stopped matchd's audit trail as someone with
// the database and its key could: the first record's identity changed, and
// every record after it relinked, the head too, so that the chain verifies.
func rewriteChain(t *testing.T, data string) {
	t.Helper()
	opts, _, err := engine.GalleryOptions(data, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.DB().Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("a/r/")})
		var keys, vals [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			keys, vals = append(keys, it.Item().KeyCopy(nil)), append(vals, v)
		}
		it.Close()
		if len(vals) < 5 {
			return errors.New("too few records to rewrite")
		}
		prev := strings.Repeat("0", 64)
		var last [32]byte
		for i, v := range vals {
			var r audit.Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if i == 0 {
				r.Identity = "someone-else"
			}
			r.Prev = prev
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := txn.Set(keys[i], b); err != nil {
				return err
			}
			last = sha256.Sum256(b)
			prev = hex.EncodeToString(last[:])
			if i == len(vals)-1 {
				head := append(append([]byte(nil), keys[i][len("a/r/"):]...), last[:]...)
				if err := txn.Set([]byte("a/head"), head); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rewriting the chain: %v", err)
	}
}
