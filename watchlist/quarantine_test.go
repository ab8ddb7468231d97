package watchlist

import (
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/access"
	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// quarantineServer serves a templates-only engine over a Badger gallery
// holding a healthy subject and one with a zero face (as an older version
// stored it), over loopback gRPC without TLS.
func quarantineServer(t *testing.T) string {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	face := func(v float32) templates.Template {
		vec := make([]float32, templates.FaceDim)
		for i := range vec {
			vec[i] = v
		}
		return templates.Template{Modality: templates.ModalityFace, Algorithm: templates.FaceAlgorithm, Vector: vec}
	}
	for id, tpl := range map[string]templates.Template{"healthy": face(0.1), "broken": face(0)} {
		if _, err := st.Create(store.Subject{ID: id, Templates: []templates.Template{tpl}}); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := engine.New(engine.Config{Store: st, Faces: engine.NoFaces{}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := server.NewGRPCServer(server.NewService(eng), server.GRPCOptions{Logger: zerolog.Nop(), Access: &access.Config{Insecure: true}})
	pb.RegisterAdminServer(gs, server.NewAdmin(eng))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(func() { gs.Stop(); eng.Close(); st.Close() })
	return lis.Addr().String()
}

func TestQuarantineListRemove(t *testing.T) {
	conn := []string{"--insecure", "--server", quarantineServer(t), "--timeout", "10s"}
	out, errs, code := runCLI(t, append(conn, "quarantine", "list")...)
	if code != 0 || !strings.Contains(out, "broken") || !strings.Contains(out, "all zeros") || strings.Contains(out, "healthy") {
		t.Fatalf("quarantine list: exit %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, append(conn, "quarantine", "remove", "healthy")...)
	if code == 0 || !strings.Contains(errs, "healthy") || !strings.Contains(errs, "not quarantined") {
		t.Errorf("removing a healthy subject: exit %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, append(conn, "quarantine", "remove")...)
	if code == 0 || !strings.Contains(errs, "subject ID") {
		t.Errorf("remove without an id: exit %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, append(conn, "quarantine", "remove", "broken")...)
	if code != 0 || !strings.Contains(out, "broken") {
		t.Fatalf("quarantine remove: exit %d %q %q", code, out, errs)
	}
	out, errs, code = runCLI(t, append(conn, "--json", "quarantine", "list")...)
	if code != 0 || !strings.Contains(out, `"quarantined": []`) {
		t.Errorf("quarantine list after removal: exit %d %q %q", code, out, errs)
	}
}
