package access

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"maps"
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/health/grpc_health_v1" // descriptors of the table's health entries
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1"      // and of its reflection entries
	_ "google.golang.org/grpc/reflection/grpc_reflection_v1alpha" //
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bordermatch/bordermatch/pki"
	_ "github.com/bordermatch/bordermatch/proto/bordermatch/v1" // registers the bordermatch.v1 descriptors
)

func TestParseTokens(t *testing.T) {
	sum := sha256.Sum256([]byte("officer-12-secret-token"))
	file := "# token identity role\n\n" +
		"gate-07-secret-token-abc  gate-07  gate\n" +
		"\tsha256:" + hex.EncodeToString(sum[:]) + "\tofficer-12\tofficer\n"
	tk, err := ParseTokens([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ tok, id, role string }{
		{"gate-07-secret-token-abc", "gate-07", "gate"},
		{"officer-12-secret-token", "officer-12", "officer"},
		{"gate-07-secret-token-abd", "", ""},
		{"", "", ""},
		{"sha256:" + hex.EncodeToString(sum[:]), "", ""}, // the hash is not the token
	} {
		id, role, ok := tk.Lookup(tc.tok)
		if id != tc.id || role != tc.role || ok != (tc.id != "") {
			t.Errorf("Lookup(%q) = %q %q %v, want %q %q", tc.tok, id, role, ok, tc.id, tc.role)
		}
	}
	for _, tc := range []struct{ file, err string }{
		{"short gate-1 gate", "shorter than 16"},
		{"aaaaaaaaaaaaaaaaaaaa gate-1", "found 2 fields"},
		{"aaaaaaaaaaaaaaaaaaaa gate-1 root", `unknown role "root"`},
		{"aaaaaaaaaaaaaaaaaaaa agency-b partner", `unknown role "partner"`},
		{"sha256:abcd gate-1 gate", "64 hex"},
		{"aaaaaaaaaaaaaaaaaaaa a gate\naaaaaaaaaaaaaaaaaaaa b admin", "line 2: same token as line 1"},
		{"# nothing\n", "no tokens"},
	} {
		if _, err := ParseTokens([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseTokens(%q): %v, want %q", tc.file, err, tc.err)
		}
	}
}

// descriptorMethods returns the full method name of every RPC, unary or
// streaming, of every service in the generated descriptors of package
// bordermatch.v1: a new RPC, or a new service, is found without anyone
// listing it here.
func descriptorMethods(t *testing.T) map[string]protoreflect.MethodDescriptor {
	t.Helper()
	out := map[string]protoreflect.MethodDescriptor{}
	protoregistry.GlobalFiles.RangeFilesByPackage("bordermatch.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				out["/"+string(sd.FullName())+"/"+string(md.Name())] = md
			}
		}
		return true
	})
	// The four services matchd serves must be among them (the pb import
	// registered their files).
	for _, svc := range []string{"Matcher", "Gates", "Admin", "Audit"} {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("bordermatch.v1." + svc)); err != nil {
			t.Fatalf("service bordermatch.v1.%s is not in the registry: %v", svc, err)
		}
	}
	return out
}

// TestTableCoversDescriptors: every method of every bordermatch.v1 service
// in the generated descriptors, unary and streaming, has an entry in the
// role table, and admin may call it; every gRPC entry of the table names a
// method that exists (in bordermatch.v1 or the health and reflection
// services matchd registers).
func TestTableCoversDescriptors(t *testing.T) {
	methods := descriptorMethods(t)
	var streaming int
	for full, md := range methods {
		if md.IsStreamingClient() || md.IsStreamingServer() {
			streaming++
		}
		if _, ok := Methods[full]; !ok {
			t.Errorf("%s is not in the role table", full)
		}
		if PartnerMethods[full] {
			// A partner agency's calls: partners only.
			if Allowed(Methods, full, Admin) || Allowed(Methods, full, Officer) || !Allowed(Methods, full, Partner) {
				t.Errorf("%s: want partners only, table has %v", full, Methods[full])
			}
		} else if !Allowed(Methods, full, Admin) {
			t.Errorf("admin may not call %s", full)
		}
		if Allowed(Methods, full, Partner) != PartnerMethods[full] {
			t.Errorf("partner may call %s: %v, want %v", full, Allowed(Methods, full, Partner), PartnerMethods[full])
		}
	}
	if len(methods) < 14 || streaming < 3 {
		t.Errorf("found %d methods, %d streaming, in the descriptors: want the 14 of Matcher, Gates, Admin and Audit, 3 of them streaming", len(methods), streaming)
	}
	for full := range PartnerMethods {
		if _, ok := methods[full]; !ok {
			t.Errorf("PartnerMethods names %s, which is not in the descriptors", full)
		}
	}
	for full := range Methods {
		if Allowed(Methods, full, Partner) && !PartnerMethods[full] && !Allowed(Methods, full, "") {
			t.Errorf("the partner role may call %s, which is not one of PartnerMethods", full)
		}
		if full == Pprof {
			continue // an HTTP path of the metrics listener, not a gRPC method
		}
		svc, name, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/")
		if !ok || !strings.HasPrefix(full, "/") {
			t.Errorf("role table entry %q is not a gRPC full method name", full)
			continue
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		sd, isSvc := d.(protoreflect.ServiceDescriptor)
		if err != nil || !isSvc {
			t.Errorf("role table entry %s: no service %s in the descriptors (%v)", full, svc, err)
			continue
		}
		if sd.Methods().ByName(protoreflect.Name(name)) == nil {
			t.Errorf("role table entry %s: service %s has no method %s", full, svc, name)
		}
	}
}

// TestNotInTableDenied: a method missing from the role table is denied to
// every role, and by the Guard to an admin, unary or streaming; so taking
// any descriptor method out of the table shuts it.
func TestNotInTableDenied(t *testing.T) {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	for full, md := range descriptorMethods(t) {
		table := maps.Clone(Methods)
		delete(table, full)
		for _, role := range []string{Gate, Officer, Admin, Partner, ""} {
			if Allowed(table, full, role) {
				t.Errorf("%s out of the table: role %q allowed", full, role)
			}
		}
		if PartnerMethods[full] {
			continue // an admin may not call it anyway; TestPartnerCertificates
		}
		// Insecure: the caller is an admin, so only the table refuses.
		g := New(Config{Insecure: true, Methods: table, Logger: zerolog.Nop()})
		var err error
		called := false
		if md.IsStreamingClient() || md.IsStreamingServer() {
			err = g.Stream()(nil, fakeStream{ctx}, &grpc.StreamServerInfo{FullMethod: full}, func(any, grpc.ServerStream) error { called = true; return nil })
		} else {
			_, err = g.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: full}, func(context.Context, any) (any, error) { called = true; return nil, nil })
		}
		if called || status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "not in the role table") {
			t.Errorf("%s out of the table: called %v, %v", full, called, err)
		}
		// With the table as it is, the same admin gets through.
		g = New(Config{Insecure: true, Logger: zerolog.Nop()})
		if md.IsStreamingClient() || md.IsStreamingServer() {
			err = g.Stream()(nil, fakeStream{ctx}, &grpc.StreamServerInfo{FullMethod: full}, func(any, grpc.ServerStream) error { return nil })
		} else {
			_, err = g.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: full}, func(context.Context, any) (any, error) { return nil, nil })
		}
		if err != nil {
			t.Errorf("%s in the table, insecure admin: %v", full, err)
		}
	}
}

type fakeStream struct{ ctx context.Context }

func (s fakeStream) Context() context.Context   { return s.ctx }
func (fakeStream) SetHeader(metadata.MD) error  { return nil }
func (fakeStream) SendHeader(metadata.MD) error { return nil }
func (fakeStream) SetTrailer(metadata.MD)       {}
func (fakeStream) SendMsg(any) error            { return nil }
func (fakeStream) RecvMsg(any) error            { return nil }

// TestTable: what each role may call, and anything else is denied.
func TestTable(t *testing.T) {
	for _, tc := range []struct {
		method, role string
		want         bool
	}{
		{"/bordermatch.v1.Matcher/Identify", Gate, true},
		{"/bordermatch.v1.Matcher/Identify", Officer, true},
		{"/bordermatch.v1.Matcher/Enroll", Gate, false},
		{"/bordermatch.v1.Matcher/Enroll", Officer, false},
		{"/bordermatch.v1.Matcher/DeleteSubject", Officer, false},
		{"/bordermatch.v1.Matcher/GetSubject", Gate, false},
		{"/bordermatch.v1.Gates/CaptureAndIdentify", Officer, false},
		{"/bordermatch.v1.Gates/IdentifyFrames", Gate, true},
		{"/bordermatch.v1.Admin/Backup", Officer, false},
		{"/bordermatch.v1.Admin/Restore", Gate, false},
		{"/bordermatch.v1.Audit/List", Officer, false},
		{"/bordermatch.v1.Matcher/Identify", "", false},
		{"/grpc.health.v1.Health/Check", "", true},
		{"/bordermatch.v1.Matcher/NewThing", Admin, false},
		{"/grpc.channelz.v1.Channelz/GetServers", Admin, false},
		{"/bordermatch.v1.Federation/ReferenceSearch", Partner, true},
		{"/bordermatch.v1.Federation/ReferenceSearch", Admin, false},
		{"/bordermatch.v1.Federation/ReviewReference", Partner, false},
		{"/bordermatch.v1.Federation/ReviewReference", Officer, true},
		{"/bordermatch.v1.Federation/VerifyWitness", Officer, false},
		{"/bordermatch.v1.Matcher/Identify", Partner, false},
		{"/bordermatch.v1.Matcher/Enroll", Partner, false},
		{"/bordermatch.v1.Admin/Backup", Partner, false},
		{"/bordermatch.v1.Audit/List", Partner, false},
	} {
		if got := Allowed(Methods, tc.method, tc.role); got != tc.want {
			t.Errorf("Allowed(%s, %q) = %v", tc.method, tc.role, got)
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("gate-07-secret-token-abc gate-07 gate\n"))
	f.Add([]byte("# c\nsha256:" + strings.Repeat("ab", 32) + " o officer\n"))
	f.Add([]byte("x y z\n\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := ParseTokens(b)
		if err != nil {
			return
		}
		if tk.Len() == 0 {
			t.Fatal("parsed a file with no tokens")
		}
		for _, e := range tk.entries {
			if e.identity == "" || (e.role != Gate && e.role != Officer && e.role != Admin) {
				t.Fatalf("entry %+v", e)
			}
		}
		// Every plain token in an accepted file looks up to its own line.
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "sha256:") {
				if id, role, ok := tk.Lookup(f[0]); !ok || id != f[1] || role != f[2] {
					t.Fatalf("token %q looks up to %q %q %v", f[0], id, role, ok)
				}
			}
		}
	})
}

// TestPartnerCertificates: a certificate of a partner agency's CA is role
// partner with that partner's name, whatever role it claims, and may call
// only the partner RPCs; this agency's own certificate claiming the partner
// role has no rights here.
func TestPartnerCertificates(t *testing.T) {
	own, err := pki.NewCA("agency A")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.NewCA("agency B")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *pki.CA, cn, role string) []*x509.Certificate {
		t.Helper()
		certPEM, _, err := ca.Issue(pki.Request{CommonName: cn, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c, ca.Cert}
	}
	g := New(Config{Partners: []PartnerCA{{Name: "agency-b", CA: foreign.Cert}}, Logger: zerolog.Nop()})
	for _, tc := range []struct {
		chain                    []*x509.Certificate
		identity, role, partner  string
		mayIdentify, maySearchUs bool
	}{
		{issue(foreign, "b-matchd", "partner"), "agency-b/b-matchd", Partner, "agency-b", false, true},
		{issue(foreign, "b-root", "admin"), "agency-b/b-root", Partner, "agency-b", false, true},
		{issue(own, "a-matchd", "partner"), "a-matchd", "", "", false, false},
		{issue(own, "officer-1", "officer"), "officer-1", Officer, "", true, false},
	} {
		ctx := peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{tc.chain}}},
		})
		c, err := g.authenticate(ctx)
		if err != nil || c.Identity != tc.identity || c.Role != tc.role || c.Partner != tc.partner {
			t.Errorf("%s: %+v %v, want %q %q %q", tc.chain[0].Subject.CommonName, c, err, tc.identity, tc.role, tc.partner)
		}
		for method, want := range map[string]bool{
			"/bordermatch.v1.Matcher/Identify":           tc.mayIdentify,
			"/bordermatch.v1.Federation/ReferenceSearch": tc.maySearchUs,
			"/bordermatch.v1.Admin/Backup":               false,
		} {
			_, err := g.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return nil, nil })
			if (err == nil) != want || (err != nil && status.Code(err) != codes.PermissionDenied) {
				t.Errorf("%s calling %s: %v, want allowed %v", c.Identity, method, err, want)
			}
		}
	}
}
