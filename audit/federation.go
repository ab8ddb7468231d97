package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// The decisions of federation records (searches between agencies, README
// "Searching partner agencies"): server/federation.go writes one record
// per step, on each side, with the step as the record's decision and what
// it concerned (partner, request id, reference ids, counts) in its detail.
// Inbound searches also list the subjects found and their scores as hits:
// they stay in this agency's trail, the partner is given references only.
const (
	// An inbound search answered (the detail has the hit count and the
	// references), and an outbound one sent (the partner's answer).
	FederationSearchAnswered = "federation.search.answered"
	FederationSearchSent     = "federation.search.sent"
	// An officer's review of a reference issued to a partner.
	FederationConfirmed = "federation.confirmed"
	FederationRejected  = "federation.rejected"
	// Core data released to the partner for a confirmed reference; a
	// partner's request answered without it (pending review, rejected,
	// unknown); core data received from a partner.
	FederationReleased     = "federation.released"
	FederationWithheld     = "federation.withheld"
	FederationDataReceived = "federation.data.received"
	// A partner's request for core data not reviewed within the release
	// deadline (the sweeper writes it once per reference).
	FederationDeadlineMissed = "federation.deadline_missed"
	// This chain's head signed and sent to a partner; a partner's head
	// received and kept (or refused).
	FederationHeadSent     = "federation.head.sent"
	FederationHeadReceived = "federation.head.received"
	// A partner fetched the heads held of its chain.
	FederationHeadsListed = "federation.heads.listed"
	// This chain checked against the heads a partner holds of it.
	FederationWitnessOK       = "federation.witness.verified"
	FederationWitnessMismatch = "federation.witness.mismatch"
)

// Base returns a record of a call to method with the caller (from the
// access Guard), the request id and the gate filled, for a service that
// writes its own records (Federation) through Write.
func (rc *Recorder) Base(ctx context.Context, method string) Record { return rc.base(ctx, method) }

// Write appends r; an error is Unavailable, and the call it describes must
// not be answered.
func (rc *Recorder) Write(r Record) error {
	r.Detail = clipDetail(r.Detail)
	return rc.append(r)
}

func clipDetail(s string) string {
	if len(s) > 2048 {
		return s[:2048]
	}
	return s
}

// Head returns the chain's head: the last record's sequence number and the
// hex SHA-256 of its stored bytes ("" before the first record).
func (l *Log) Head() (uint64, string, error) {
	seq, h, err := l.trail.Head()
	if err != nil || seq == 0 {
		return seq, "", err
	}
	return seq, hex.EncodeToString(h[:]), nil
}

// HashesAt returns the hex SHA-256 of the stored bytes of each record seqs
// names, wherever it is (gallery or archive); a sequence number the chain
// does not have is absent from the map. It does not verify the chain
// (Verify does).
func (l *Log) HashesAt(seqs []uint64) (map[uint64]string, error) {
	out := map[uint64]string{}
	if len(seqs) == 0 {
		return out, nil
	}
	want := map[uint64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	lo, hi := slices.Min(seqs), slices.Max(seqs)
	var first uint64 // the first record of the gallery from lo on
	head, _, err := l.trail.Scan(lo, func(seq uint64, rec []byte) error {
		if first == 0 {
			first = seq
		}
		if seq > hi {
			return errStop
		}
		if want[seq] {
			h := sha256.Sum256(rec)
			out[seq] = hex.EncodeToString(h[:])
		}
		return nil
	})
	if err != nil && err != errStop {
		return nil, fmt.Errorf("audit: reading records: %w", err)
	}
	// Records no longer in the gallery are in the archive: VerifyLink
	// finds them there (and checks the chain on the way).
	for s := range want {
		if _, ok := out[s]; ok || s == 0 || s > head || (first != 0 && s >= first) {
			continue
		}
		res, err := l.VerifyLink(s)
		if err != nil {
			return nil, err
		}
		if res.LinkHash != "" {
			out[s] = res.LinkHash
		}
	}
	return out, nil
}
