package main

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
	"github.com/bordermatch/bordermatch/server"
	"github.com/bordermatch/bordermatch/store"
	"github.com/bordermatch/bordermatch/templates"
)

// TestReconcileUnauditedEnrolment: a subject in the gallery whose
// enrolment has no audit record (what a SIGKILL between the commit and the
// audit leaves; here written into the stopped gallery directly, the same
// bytes an Enroll commits) gets a "reconciled" audit record at the next
// start, once; an enrolment audited as usual gets none, and the chain
// verifies.
func TestReconcileUnauditedEnrolment(t *testing.T) {
	data := t.TempDir()
	d := startMatchd(t, data, "--rate-limit", "0")
	conn := dialMatchd(t, d.addr)
	waitServing(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pb.NewMatcherClient(conn).Enroll(ctx, &pb.EnrollRequest{SubjectId: "acked", Name: "Acked",
		Samples: []*pb.Sample{{Kind: &pb.Sample_Template{Template: crashFace(1, 0)}}}}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	d.stop(t)

	sopt, _, err := engine.GalleryOptions(data, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(sopt)
	if err != nil {
		t.Fatal(err)
	}
	var tpl templates.Template
	if err := tpl.UnmarshalBinary(crashFace(2, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(store.Subject{ID: "unacked", Name: "Unacked", Templates: []templates.Template{tpl}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	for start := range 2 {
		d := startMatchd(t, data, "--rate-limit", "0")
		conn := dialMatchd(t, d.addr)
		waitServing(t, conn)
		a := pb.NewAuditClient(conn)
		for id, want := range map[string]int{"unacked": 1, "acked": 0} {
			l, err := a.List(ctx, &pb.ListAuditRequest{SubjectId: id, PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range l.GetRecords() {
				if r.GetRpc() == server.ReconcileRPC && r.GetDecision() == server.DecisionReconciled {
					n++
				}
			}
			if n != want {
				t.Fatalf("start %d: %d reconciliation records of %q, want %d: %v", start, n, id, want, l.GetRecords())
			}
		}
		v, err := a.Verify(ctx, &pb.VerifyAuditRequest{})
		if err != nil || !v.GetOk() {
			t.Fatalf("audit verify: %v %v", v, err)
		}
		conn.Close()
		d.stop(t)
	}
}
