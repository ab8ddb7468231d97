package federation

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Error kinds; server.codeOf maps them to gRPC codes.
var (
	// ErrUnknownReference: no such reference for this caller (never
	// issued, issued to another partner, or expired): NOT_FOUND.
	ErrUnknownReference = errors.New("federation: unknown reference")
	// ErrPendingReview: the reference awaits an officer's review:
	// FAILED_PRECONDITION.
	ErrPendingReview = errors.New("federation: the reference awaits review")
	// ErrRejected: an officer rejected the match: PERMISSION_DENIED.
	ErrRejected = errors.New("federation: the match was rejected; no core data is released")
	// ErrReviewed: a second review of a reference: FAILED_PRECONDITION.
	ErrReviewed = errors.New("federation: the reference was reviewed already")
	// ErrUnknownPartner: no partner of that name is configured: NOT_FOUND.
	ErrUnknownPartner = errors.New("federation: unknown partner")
	// ErrHeadConflict: a partner sent a head for a sequence number it sent
	// another hash for before: its chain was rewritten. FAILED_PRECONDITION.
	ErrHeadConflict = errors.New("federation: the head conflicts with one held for the same record")
	// ErrInvalid: a malformed request: INVALID_ARGUMENT.
	ErrInvalid = errors.New("federation: invalid request")
	// ErrBadSignature: a head whose certificate or signature does not
	// verify: INVALID_ARGUMENT.
	ErrBadSignature = errors.New("federation: the head's signature does not verify")
)

// KV is the ledger's storage: store.FederationKV satisfies it.
type KV interface {
	Get(key string) (value []byte, found bool, err error)
	Put(key string, value []byte) error
	PutIfAbsent(key string, value []byte) (bool, error)
	// Update stores what fn returns for the value under key (nil when
	// absent) in one transaction; an error from fn writes nothing.
	Update(key string, fn func(old []byte) ([]byte, error)) error
	Delete(key string) error
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Review states of a reference issued.
const (
	StatePending   = "pending"
	StateConfirmed = "confirmed"
	StateRejected  = "rejected"
)

// Hit is a subject an inbound search found, to issue a reference for.
type Hit struct {
	SubjectID string
	Name      string
	Score     float32
	Rank      int
	Modality  string
}

// Issued is a reference issued to a partner, as the ledger keeps it.
type Issued struct {
	ID        string    `json:"id"`
	Partner   string    `json:"partner"`
	RequestID string    `json:"request_id"`
	Purpose   string    `json:"purpose,omitempty"`
	SubjectID string    `json:"subject_id"`
	Name      string    `json:"name,omitempty"`
	Score     float32   `json:"score"`
	Rank      int       `json:"rank"`
	Modality  string    `json:"modality"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// DataRequested: the partner's first request for core data; Deadline
	// the review's deadline it set; DeadlineMissed once the sweeper found
	// it passed without a review.
	DataRequested  time.Time `json:"data_requested,omitzero"`
	Deadline       time.Time `json:"deadline,omitzero"`
	DeadlineMissed bool      `json:"deadline_missed,omitempty"`
	ReviewedBy     string    `json:"reviewed_by,omitempty"`
	Reviewed       time.Time `json:"reviewed,omitzero"`
	Note           string    `json:"note,omitempty"`
	// Released: the first release of the core data; Releases counts them.
	Released time.Time `json:"released,omitzero"`
	Releases int       `json:"releases,omitempty"`
}

// Received is a reference a partner gave this agency (outbound search).
type Received struct {
	ID        string    `json:"id"`
	Partner   string    `json:"partner"`
	RequestID string    `json:"request_id"`
	Purpose   string    `json:"purpose,omitempty"`
	Officer   string    `json:"officer"`
	Score     float32   `json:"score"`
	Rank      int       `json:"rank"`
	Modality  string    `json:"modality"`
	Created   time.Time `json:"created"`
}

// Head is an audit-chain head a partner sent, as kept.
type Head struct {
	Agency   string    `json:"agency"`
	Seq      uint64    `json:"seq"`
	Hash     string    `json:"hash"` // hex
	Time     time.Time `json:"time"`
	Cert     []byte    `json:"cert"`
	Sig      []byte    `json:"sig"`
	Received time.Time `json:"received"`
}

// Ledger keeps the federation state in a KV:
//
//	r/<reference id>           → Issued (inbound: references this agency issued)
//	o/<reference id>           → Received (outbound: references partners gave)
//	w/<partner>/<seq:020d>     → Head (audit heads a partner sent)
type Ledger struct {
	// mu serialises the ledger's read-modify-writes, so concurrent calls
	// (a partner's request and an officer's review of one reference) do
	// not run into the store's transaction conflicts.
	mu       sync.Mutex
	kv       KV
	key      []byte
	ttl      time.Duration
	deadline time.Duration
	now      func() time.Time
}

// NewLedger returns a ledger over kv; key is the reference ids' secret,
// ttl the life of a reference issued, deadline the release deadline.
func NewLedger(kv KV, key []byte, ttl, deadline time.Duration) *Ledger {
	return &Ledger{kv: kv, key: key, ttl: ttl, deadline: deadline, now: time.Now}
}

// SetClock replaces the ledger's clock (tests).
func (l *Ledger) SetClock(now func() time.Time) { l.now = now }

func issuedKey(id string) string   { return "r/" + id }
func receivedKey(id string) string { return "o/" + id }
func headPrefix(partner string) string {
	return "w/" + partner + "/"
}

// Issue records a new reference for each hit of partner's request and
// returns them, in the hits' order.
func (l *Ledger) Issue(partner, requestID, purpose string, hits []Hit) ([]Issued, error) {
	now := l.now().UTC()
	out := make([]Issued, 0, len(hits))
	for _, h := range hits {
		id, err := NewReferenceID(l.key, partner, requestID, h.SubjectID)
		if err != nil {
			return nil, err
		}
		r := Issued{ID: id, Partner: partner, RequestID: requestID, Purpose: purpose, SubjectID: h.SubjectID, Name: h.Name,
			Score: h.Score, Rank: h.Rank, Modality: h.Modality, State: StatePending, Created: now, Expires: now.Add(l.ttl)}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		stored, err := l.kv.PutIfAbsent(issuedKey(id), b)
		if err != nil {
			return nil, err
		}
		if !stored {
			return nil, fmt.Errorf("federation: reference id %s issued twice", id)
		}
		out = append(out, r)
	}
	return out, nil
}

// Get returns a reference issued, whoever it was issued to.
func (l *Ledger) Get(id string) (Issued, error) {
	var r Issued
	if !ValidReferenceID(id) {
		return r, fmt.Errorf("%w: %q is not a reference id", ErrUnknownReference, id)
	}
	b, found, err := l.kv.Get(issuedKey(id))
	if err != nil {
		return r, err
	}
	if !found {
		return r, fmt.Errorf("%w: %s", ErrUnknownReference, id)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("federation: reference %s: %w", id, err)
	}
	return r, nil
}

// live reports whether r may still be asked about: not expired, or
// expired with a data request still waiting for its review.
func live(r *Issued, now time.Time) bool {
	return now.Before(r.Expires) || (r.State == StatePending && !r.DataRequested.IsZero())
}

// update changes the reference id under fn in one transaction.
func (l *Ledger) update(id string, fn func(r *Issued) error) (Issued, error) {
	var out Issued
	if !ValidReferenceID(id) {
		return out, fmt.Errorf("%w: %q is not a reference id", ErrUnknownReference, id)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.kv.Update(issuedKey(id), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("%w: %s", ErrUnknownReference, id)
		}
		var r Issued
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("federation: reference %s: %w", id, err)
		}
		if err := fn(&r); err != nil {
			out = r
			return nil, err
		}
		out = r
		return json.Marshal(r)
	})
	return out, err
}

// RequestData is partner's request for the core data of reference id. A
// confirmed reference is released (returned, Released set at the first
// time); a pending one starts the release deadline (at the first request)
// and is ErrPendingReview; a rejected one is ErrRejected. A reference not
// issued to partner, or expired, is ErrUnknownReference, as one never
// issued: a partner learns nothing of others' references.
func (l *Ledger) RequestData(partner, id string) (Issued, error) {
	now := l.now().UTC()
	var soft error // the answer's error, with the reference still updated
	r, err := l.update(id, func(r *Issued) error {
		if r.Partner != partner || !live(r, now) {
			return fmt.Errorf("%w: %s", ErrUnknownReference, id)
		}
		switch r.State {
		case StateConfirmed:
			if r.Released.IsZero() {
				r.Released = now
			}
			r.Releases++
		case StateRejected:
			soft = ErrRejected
		default:
			if r.DataRequested.IsZero() {
				r.DataRequested, r.Deadline = now, now.Add(l.deadline)
			}
			soft = fmt.Errorf("%w by an officer of the requested agency (requested %s; deadline %s)",
				ErrPendingReview, r.DataRequested.Format(time.RFC3339), r.Deadline.Format(time.RFC3339))
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrUnknownReference) {
			// Never say more than that to a partner.
			return Issued{}, fmt.Errorf("%w: %s", ErrUnknownReference, id)
		}
		return r, err
	}
	return r, soft
}

// Review records an officer's decision on a pending reference.
func (l *Ledger) Review(id, officer string, confirm bool, note string) (Issued, error) {
	now := l.now().UTC()
	return l.update(id, func(r *Issued) error {
		if r.State != StatePending {
			return fmt.Errorf("%w: %s is %s (by %s at %s)", ErrReviewed, id, r.State, r.ReviewedBy, r.Reviewed.Format(time.RFC3339))
		}
		if !live(r, now) {
			return fmt.Errorf("%w: %s expired at %s", ErrUnknownReference, id, r.Expires.Format(time.RFC3339))
		}
		r.State, r.ReviewedBy, r.Reviewed, r.Note = StateRejected, officer, now, note
		if confirm {
			r.State = StateConfirmed
		}
		return nil
	})
}

// List returns the references issued, pending ones only unless all, the
// oldest first.
func (l *Ledger) List(all bool) ([]Issued, error) {
	var out []Issued
	err := l.kv.Scan("r/", func(_ string, v []byte) error {
		var r Issued
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if all || r.State == StatePending {
			out = append(out, r)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Pending counts the references awaiting review.
func (l *Ledger) Pending() (int, error) {
	rs, err := l.List(false)
	return len(rs), err
}

// Sweep marks the pending references whose release deadline has passed
// (each once: they are returned, for the metric and the audit record) and
// deletes the expired ones, and the references received from partners
// older than the reference TTL.
func (l *Ledger) Sweep() (missed []Issued, expired int, err error) {
	now := l.now().UTC()
	var late, gone []string
	var received []string
	err = l.kv.Scan("o/", func(_ string, v []byte) error {
		var r Received
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if now.After(r.Created.Add(l.ttl)) {
			received = append(received, r.ID)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, id := range received {
		if err := l.kv.Delete(receivedKey(id)); err != nil {
			return nil, 0, err
		}
	}
	err = l.kv.Scan("r/", func(_ string, v []byte) error {
		var r Issued
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		switch {
		case r.State == StatePending && !r.Deadline.IsZero() && now.After(r.Deadline) && !r.DeadlineMissed:
			late = append(late, r.ID)
		case !live(&r, now):
			gone = append(gone, r.ID)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, id := range late {
		marked := false
		r, err := l.update(id, func(r *Issued) error {
			if r.State == StatePending && !r.DeadlineMissed {
				r.DeadlineMissed, marked = true, true
			}
			return nil
		})
		if err != nil {
			return missed, expired, err
		}
		if marked {
			missed = append(missed, r)
		}
	}
	for _, id := range gone {
		if err := l.kv.Delete(issuedKey(id)); err != nil {
			return missed, expired, err
		}
		expired++
	}
	return missed, expired, nil
}

// RecordReceived keeps the references a partner answered an outbound
// search with, so that a later request for core data goes to it.
func (l *Ledger) RecordReceived(rs []Received) error {
	for _, r := range rs {
		if !ValidReferenceID(r.ID) {
			return fmt.Errorf("%w: partner %s answered with %q, not a reference id", ErrInvalid, r.Partner, r.ID)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := l.kv.Put(receivedKey(r.ID), b); err != nil {
			return err
		}
	}
	return nil
}

// Received returns a reference a partner gave this agency.
func (l *Ledger) Received(id string) (Received, error) {
	var r Received
	if !ValidReferenceID(id) {
		return r, fmt.Errorf("%w: %q is not a reference id", ErrUnknownReference, id)
	}
	b, found, err := l.kv.Get(receivedKey(id))
	if err != nil {
		return r, err
	}
	if !found {
		return r, fmt.Errorf("%w: no partner gave this agency %s", ErrUnknownReference, id)
	}
	return r, json.Unmarshal(b, &r)
}

// KeepHead stores a head partner sent, once per sequence number; a second
// head for a sequence number with another hash is ErrHeadConflict (the
// first is kept). It returns how many heads of partner are held.
func (l *Ledger) KeepHead(partner string, h Head) (int, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	key := fmt.Sprintf("%s%020d", headPrefix(partner), h.Seq)
	l.mu.Lock()
	err = l.kv.Update(key, func(old []byte) ([]byte, error) {
		if old == nil {
			return b, nil
		}
		var prev Head
		if err := json.Unmarshal(old, &prev); err != nil {
			return nil, err
		}
		if !strings.EqualFold(prev.Hash, h.Hash) {
			return nil, fmt.Errorf("%w: record %d was %s when received at %s, now %s", ErrHeadConflict, h.Seq, prev.Hash, prev.Received.Format(time.RFC3339), h.Hash)
		}
		return old, nil // the same head again: keep the first receipt
	})
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	err = l.kv.Scan(headPrefix(partner), func(string, []byte) error { n++; return nil })
	return n, err
}

// Heads returns the latest limit heads held of partner (all for 0), in
// sequence order.
func (l *Ledger) Heads(partner string, limit int) ([]Head, error) {
	var raw [][]byte
	err := l.kv.Scan(headPrefix(partner), func(_ string, v []byte) error {
		raw = append(raw, append([]byte(nil), v...))
		if limit > 0 && len(raw) > 2*limit {
			raw = append(raw[:0:0], raw[len(raw)-limit:]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(raw) > limit {
		raw = raw[len(raw)-limit:]
	}
	out := make([]Head, len(raw))
	for i, v := range raw {
		if err := json.Unmarshal(v, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
