package server

// Reconciling the gallery with the audit trail at start (issue 19).
//
// An enrolment is committed to the gallery first, then answered, then
// audited by the interceptor. A SIGKILL between the commit and the audit
// leaves a subject that was stored but never acknowledged and has no audit
// record. At start, before serving, matchd reads the audit trail back from
// its head to reconcileWindow before the last record, and every subject
// created since then (store.CreatedSince) that no Enroll record (nor an
// earlier reconciliation) names gets a record of its own: RPC
// ReconcileRPC, decision DecisionReconciled, "stored without
// acknowledgement". The subject stays in the gallery: the client never got
// an answer and will retry, and the retry gets AlreadyExists, which the
// record explains. The window covers enrolments committed in one group
// commit with, or shortly before, the last one audited. A chain without
// records (a new gallery, or one restored or salvaged into a new data
// directory, whose subjects' enrolments are audited in the old one) is not
// reconciled. A cluster node is not reconciled either: it applies other
// nodes' enrolments, which those nodes audited.

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/audit"
	"github.com/bordermatch/bordermatch/store"
)

const (
	// ReconcileRPC and DecisionReconciled mark the audit record of a
	// subject stored without an audit record of its enrolment.
	ReconcileRPC       = "matchd/reconcile"
	DecisionReconciled = "reconciled"
	enrollRPC          = "/bordermatch.v1.Matcher/Enroll"
	// reconcileWindow is how far before the last audit record subjects are
	// reconciled.
	reconcileWindow = time.Minute
	reconcileChunk  = 1000
)

// reconcileAudit writes the audit record of every recent subject whose
// enrolment has none and returns their ids.
func reconcileAudit(st *store.Store, l *audit.Log, log zerolog.Logger) ([]string, error) {
	head, _, err := l.Head()
	if err != nil || head == 0 {
		return nil, err
	}
	// Read back from the head, a chunk at a time, until a record is older
	// than the window before the last one.
	var recs []audit.Record
	for after := head; ; {
		from := after - min(after, reconcileChunk)
		chunk, _, err := l.List(audit.Filter{After: from}, int(after-from))
		if err != nil {
			return nil, err
		}
		recs = append(chunk, recs...)
		if from == 0 || len(chunk) == 0 || len(recs) == 0 ||
			chunk[0].Time.Before(recs[len(recs)-1].Time.Add(-reconcileWindow)) {
			break
		}
		after = from
	}
	if len(recs) == 0 {
		return nil, nil // every record archived
	}
	since := recs[len(recs)-1].Time.Add(-reconcileWindow)
	audited := map[string]bool{}
	for _, r := range recs {
		if (r.RPC == enrollRPC || r.RPC == ReconcileRPC) && len(r.Hits) > 0 {
			audited[r.Hits[0].SubjectID] = true
		}
	}
	ids, err := st.CreatedSince(since)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, id := range ids {
		if audited[id] {
			continue
		}
		_, err := l.Append(audit.Record{Identity: "matchd", Auth: "internal", RPC: ReconcileRPC,
			Decision: DecisionReconciled, Code: "OK", Hits: []audit.Hit{{SubjectID: id}},
			Detail: "stored without acknowledgement: the enrolment was committed but matchd stopped before answering and auditing it"})
		if err != nil {
			return done, err
		}
		done = append(done, id)
		log.Warn().Str("subject", id).Msg("enrolment stored without acknowledgement (matchd stopped before answering it): audit record written")
	}
	return done, nil
}
