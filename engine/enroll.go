package engine

// Enrolment: a subject's samples made into templates and stored, with the
// source samples kept for re-templating.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bordermatch/bordermatch/store"
)

// EnrollRequest is a subject to create with its samples.
type EnrollRequest struct {
	SubjectID  string
	Name       string
	Metadata   map[string]string
	Watchlists []string
	Samples    []Sample
	// NIST is an ANSI/NIST-ITL transaction whose samples are enrolled too
	// (see withNIST).
	NIST []byte
	// ReturnTemplates asks for the encoded templates made, in sample order.
	ReturnTemplates bool
	// Created is for ApplyEnroll only: the coordinating node's time of the
	// enrolment, carried in the log, so that every replica stores the same
	// record (zero: the replica's clock). Enroll ignores it.
	Created time.Time
}

// EnrollResult is the subject as stored, with what was measured of its
// samples.
type EnrollResult struct {
	Subject       store.Subject
	FaceQuality   []FaceQuality
	FingerQuality []FingerQuality
	Templates     [][]byte
	// NIST says what was taken from the request's transaction.
	NIST *NISTUse
}

// Enroll makes the templates of a subject's samples and stores the subject;
// it returns once the subject is durable and searchable.
func (s *Engine) Enroll(ctx context.Context, req EnrollRequest) (EnrollResult, error) {
	sub, fingers, res, err := s.prepareEnroll(ctx, req, enrolLocal)
	if err != nil {
		return res, err
	}
	// Create returns once the subject is durable; concurrent enrolments
	// share one commit (store/commit.go). The index is updated only then,
	// and under the id's lock held across both, so a delete racing this
	// enrolment cannot leave a ghost in the index.
	unlock := s.lock(sub.ID)
	defer unlock()
	created, err := s.store.Create(sub)
	if err != nil {
		return res, kindOf("", err)
	}
	return s.indexEnrolled(res, created, fingers)
}

// enrolMode is where an enrolment being prepared comes from or goes to.
type enrolMode int

const (
	enrolLocal   enrolMode = iota // Enroll: stored here
	enrolFromLog                  // ApplyEnroll: templates from the log
	enrolForLog                   // PrepareEnroll: templates for the log
)

// prepareEnroll checks an enrolment and makes its templates: the subject
// to store, its fingers for the index and the result so far. From the log
// (ApplyEnroll) it takes templates only; neither from nor for the log does
// it check that the id is free here (the store, or the partition owning
// the id, does).
func (s *Engine) prepareEnroll(ctx context.Context, req EnrollRequest, mode enrolMode) (store.Subject, []fingerRef, EnrollResult, error) {
	var res EnrollResult
	sub, fingers, err := s.prepareEnrollSubject(ctx, req, mode, &res)
	return sub, fingers, res, err
}

func (s *Engine) prepareEnrollSubject(ctx context.Context, req EnrollRequest, mode enrolMode, res *EnrollResult) (store.Subject, []fingerRef, error) {
	fromLog := mode == enrolFromLog
	var none store.Subject
	req, use, err := withNIST(req)
	if err != nil {
		return none, nil, err
	}
	res.NIST = use
	n := len(req.Samples)
	if n == 0 {
		return none, nil, invalid("enrol: at least one sample is required")
	}
	// A face record enrols (and is kept) as the photo it holds: a later
	// algorithm re-reads the photo, not the chip's wrapping.
	cloned := false
	for i, sm := range req.Samples {
		if sm.FaceRecord == nil {
			continue
		}
		img, _, err := withRecordImage(sm, fmt.Sprintf("sample %d", i+1))
		if err != nil {
			return none, nil, err
		}
		if !cloned {
			req.Samples, cloned = slices.Clone(req.Samples), true
		}
		req.Samples[i] = img
	}
	nf, nfaces := 0, 0
	for _, sm := range req.Samples {
		switch {
		case sm.Finger != nil:
			nf++
		case sm.FaceImage != nil || sm.Face != nil:
			nfaces++
		}
	}
	if n > MaxSamples+MaxFingerSamples || nf > MaxFingerSamples || nfaces > MaxSamples {
		return none, nil, invalid("enrol: %d samples (%d face images, %d fingers), at most %d faces and %d fingers",
			n, nfaces, nf, MaxSamples, MaxFingerSamples)
	}
	if req.SubjectID == "" {
		return none, nil, invalid("enrol: subject_id is required")
	}
	if fromLog {
		// Extraction happens once, on the coordinating node: the log
		// carries templates, so that every replica stores the same ones.
		for i, sm := range req.Samples {
			face := sm.Template != nil && sm.FaceImage == nil && sm.Face == nil && sm.Finger == nil
			finger := sm.Template == nil && sm.FaceImage == nil && sm.Face == nil && sm.Finger != nil &&
				sm.Finger.Template != nil && sm.Finger.Image == nil && sm.Finger.Record == nil
			if !face && !finger {
				return none, nil, invalid("apply enrol: sample %d is not a template (the log carries templates only)", i+1)
			}
		}
	} else if mode == enrolForLog {
		// The partition owning the id checks it.
	} else if _, err := s.store.Get(req.SubjectID); err == nil {
		// Cheap refusal before the expensive extraction; Create re-checks atomically.
		return none, nil, fmt.Errorf("%w: subject %q already exists", ErrExists, req.SubjectID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return none, nil, kindOf("enrol", err)
	}
	sub := store.Subject{
		ID:         req.SubjectID,
		Name:       req.Name,
		Metadata:   req.Metadata,
		Watchlists: req.Watchlists,
	}
	if fromLog {
		sub.Created = req.Created
	}
	var fingers []fingerRef
	faces := 0
	for i, sm := range req.Samples {
		if err := ctx.Err(); err != nil {
			return none, nil, err
		}
		x, err := s.template(ctx, sm, false, true, fmt.Sprintf("sample %d", i+1))
		if err != nil {
			return none, nil, err
		}
		// Faces are stored at unit norm, the one form every comparison
		// uses (templates.Template.Normalised).
		if x.t, err = x.t.Normalised(); err != nil {
			return none, nil, kindOf(fmt.Sprintf("sample %d", i+1), err)
		}
		if x.faceQ != nil {
			res.FaceQuality = append(res.FaceQuality, *x.faceQ)
		}
		if x.fingerQ != nil {
			res.FingerQuality = append(res.FingerQuality, *x.fingerQ)
		}
		if x.ft != nil {
			fingers = append(fingers, fingerRef{x.t.Position(), x.ft})
		} else {
			faces++
		}
		if req.ReturnTemplates {
			b, err := x.t.MarshalBinary()
			if err != nil {
				return none, nil, fmt.Errorf("%w: encoding template: %w", ErrInternal, err)
			}
			res.Templates = append(res.Templates, b)
		}
		sub.Templates = append(sub.Templates, x.t)
		if s.keepSamples {
			if kept, ok := keptSample(sm); ok {
				sub.Samples = append(sub.Samples, kept)
			}
		}
	}
	if n := keptBytes(sub.Samples); n > store.MaxKeptBytes {
		// Over what one transaction keeps: enrol without them.
		s.log.Warn().Str("subject", sub.ID).Int("bytes", n).Int("max", store.MaxKeptBytes).
			Msg("enrolment's samples too large to keep: re-templating will list it for re-enrolment")
		sub.Samples = nil
	}
	// Finger templates given as Sample.Template count too.
	if faces > MaxSamples || len(fingers) > MaxFingerSamples {
		return none, nil, invalid("enrol: %d faces and %d fingers, at most %d and %d", faces, len(fingers), MaxSamples, MaxFingerSamples)
	}
	if err := ctx.Err(); err != nil {
		return none, nil, err
	}
	return sub, fingers, nil
}

// indexEnrolled puts a subject just stored into the indexes, under its id's
// lock, and completes the result.
func (s *Engine) indexEnrolled(res EnrollResult, created store.Subject, fingers []fingerRef) (EnrollResult, error) {
	// The fingers were prepared from the templates as the store holds them
	// (sample.fingerView), so the index needs nothing from created but ids.
	if err := s.indexSubject(created, fingers); err != nil {
		// The store holds the subject; the index will have it after a
		// restart. Say so rather than pretend the enrolment failed.
		s.unindex(created.ID)
		s.log.Error().Err(err).Str("subject", created.ID).Msg("indexing enrolled subject")
		return res, fmt.Errorf("%w: subject stored but not indexed: %w", ErrInternal, err)
	}
	res.Subject = created
	return res, nil
}

// keptBytes is about what samples take in the store (their encoding adds a
// few bytes each).
func keptBytes(sms []store.Sample) int {
	n := 0
	for _, sm := range sms {
		n += len(sm.Data) + len(sm.Format) + 16
	}
	return n
}

// keptSample is the source sample to keep of an enrolment's sample: a
// photo, a fingerprint image or a minutiae record as received; not a
// template or a face found already, which no new algorithm can re-read.
func keptSample(sm Sample) (store.Sample, bool) {
	switch {
	case sm.FaceImage != nil:
		return store.Sample{Kind: store.SampleFacePhoto, Data: sm.FaceImage}, true
	case sm.Finger != nil && sm.Finger.Image != nil:
		f := sm.Finger
		return store.Sample{Kind: store.SampleFingerImage, Data: f.Image, Format: f.Format, DPI: f.DPI, Position: uint8(f.Position)}, true
	case sm.Finger != nil && sm.Finger.Record != nil:
		return store.Sample{Kind: store.SampleFingerRecord, Data: sm.Finger.Record, Position: uint8(sm.Finger.Position)}, true
	}
	return store.Sample{}, false
}
