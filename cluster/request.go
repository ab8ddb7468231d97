package cluster

// The enrolment request a log message carries (Message.Request of a
// KindEnrol message).
//
// Extraction happens once, on the coordinating node: the log carries the
// templates it made, so that every replica stores identical templates and
// none pays for extraction (engine/apply.go). The encoding is JSON of
// enrollWire, version RequestVersion:
//
//	{"v":1,"id":"P-1","name":"…","metadata":{"k":"v"},"watchlists":["wl"],
//	 "created":"2026-03-04T05:06:07.000000008Z",
//	 "samples":[{"template":"<base64>"},{"finger":true,"position":2,"template":"<base64>"}]}
//
// A sample is a face or finger template (engine.Sample.Template) or, with
// "finger", a finger template with its position (engine.FingerSample with
// Template only). Unknown fields and trailing data are refused, so one
// request has one meaning; a later version adds fields under a new "v".
// DecodeEnroll refuses a newer version with ErrNewerRequest (besides
// ErrMalformed): a replica older than the coordinator must stop and be
// upgraded, not skip the message and silently diverge.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// RequestVersion is the version EncodeEnroll writes and DecodeEnroll reads.
const RequestVersion = 1

// ErrNewerRequest is wrapped (with ErrMalformed) by DecodeEnroll's error
// for a request of a version newer than RequestVersion.
var ErrNewerRequest = errors.New("cluster: request of a newer version")

type enrollWire struct {
	V          int               `json:"v"`
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Watchlists []string          `json:"watchlists,omitempty"`
	Created    time.Time         `json:"created"`
	Samples    []sampleWire      `json:"samples"`
}

type sampleWire struct {
	Finger   bool   `json:"finger,omitempty"`
	Position uint8  `json:"position,omitempty"`
	Template []byte `json:"template"`
}

// EncodeEnroll encodes req for the log. Its samples must be templates
// (Sample.Template, or a FingerSample with only Template and Position): the
// caller extracts first (engine.Enroll with ReturnTemplates).
// ReturnTemplates is not carried.
func EncodeEnroll(req engine.EnrollRequest) ([]byte, error) {
	if n := len(req.SubjectID); n == 0 || n > MaxSubjectIDLen {
		return nil, fmt.Errorf("cluster: encode enrol: subject id of %d bytes, want 1..%d", n, MaxSubjectIDLen)
	}
	if len(req.Samples) == 0 {
		return nil, errors.New("cluster: encode enrol: no samples")
	}
	w := enrollWire{V: RequestVersion, ID: req.SubjectID, Name: req.Name, Metadata: req.Metadata,
		Watchlists: req.Watchlists, Created: req.Created, Samples: make([]sampleWire, len(req.Samples))}
	for i, s := range req.Samples {
		switch {
		case s.Finger == nil && len(s.Template) > 0 && s.FaceImage == nil && s.Face == nil:
			w.Samples[i] = sampleWire{Template: s.Template}
		case s.Finger != nil && len(s.Finger.Template) > 0 && s.Template == nil && s.FaceImage == nil && s.Face == nil &&
			s.Finger.Image == nil && s.Finger.Record == nil:
			w.Samples[i] = sampleWire{Finger: true, Position: uint8(s.Finger.Position), Template: s.Finger.Template}
		default:
			return nil, fmt.Errorf("cluster: encode enrol: sample %d is not a template only", i)
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode enrol: %w", err)
	}
	return b, nil
}

// DecodeEnroll decodes a request EncodeEnroll made. Every error wraps
// ErrMalformed; a newer version's also wraps ErrNewerRequest. The
// request's templates alias nothing of b.
func DecodeEnroll(b []byte) (engine.EnrollRequest, error) {
	if len(b) > MaxMessageSize {
		return engine.EnrollRequest{}, malformed("request of %d bytes exceeds %d", len(b), MaxMessageSize)
	}
	// The version first, so that a newer request is told from a broken one.
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return engine.EnrollRequest{}, malformed("enrol request: %v", err)
	}
	if v.V > RequestVersion {
		return engine.EnrollRequest{}, fmt.Errorf("%w: %w: version %d, this node reads %d", ErrMalformed, ErrNewerRequest, v.V, RequestVersion)
	}
	if v.V != RequestVersion {
		return engine.EnrollRequest{}, malformed("enrol request version %d, want %d", v.V, RequestVersion)
	}
	var w enrollWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return engine.EnrollRequest{}, malformed("enrol request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return engine.EnrollRequest{}, malformed("enrol request: data after the object")
	}
	if n := len(w.ID); n == 0 || n > MaxSubjectIDLen {
		return engine.EnrollRequest{}, malformed("enrol request: subject id of %d bytes, want 1..%d", n, MaxSubjectIDLen)
	}
	if len(w.Samples) == 0 {
		return engine.EnrollRequest{}, malformed("enrol request: no samples")
	}
	req := engine.EnrollRequest{SubjectID: w.ID, Name: w.Name, Metadata: w.Metadata, Watchlists: w.Watchlists,
		Created: w.Created, Samples: make([]engine.Sample, len(w.Samples))}
	for i, s := range w.Samples {
		if len(s.Template) == 0 {
			return engine.EnrollRequest{}, malformed("enrol request: sample %d without a template", i)
		}
		if s.Finger {
			req.Samples[i].Finger = &engine.FingerSample{Position: minutiae.Position(s.Position), Template: s.Template}
		} else {
			if s.Position != 0 {
				return engine.EnrollRequest{}, malformed("enrol request: face sample %d with a finger position", i)
			}
			req.Samples[i].Template = s.Template
		}
	}
	return req, nil
}

// EnrollThroughLog appends req to the log, in the shard of its subject id,
// with requestID for deduplication of retries, and returns the consistency
// token: the shard and the stream sequence, durable once returned. A zero
// req.Created is set to now, so that every replica stores the same time.
// req's samples must be templates (EncodeEnroll).
func EnrollThroughLog(ctx context.Context, l *Log, req engine.EnrollRequest, requestID string) (int, uint64, error) {
	if req.Created.IsZero() {
		req.Created = time.Now().UTC()
	}
	r, err := EncodeEnroll(req)
	if err != nil {
		return 0, 0, err
	}
	return appendMessage(ctx, l, Message{Kind: KindEnrol, SubjectID: req.SubjectID, Request: r}, requestID)
}

// DeleteThroughLog appends the deletion of a subject to the log; the token
// is as EnrollThroughLog's.
func DeleteThroughLog(ctx context.Context, l *Log, subjectID, requestID string) (int, uint64, error) {
	return appendMessage(ctx, l, Message{Kind: KindDelete, SubjectID: subjectID}, requestID)
}

func appendMessage(ctx context.Context, l *Log, m Message, requestID string) (int, uint64, error) {
	b, err := Encode(m)
	if err != nil {
		return 0, 0, err
	}
	shard := ShardOf(m.SubjectID, l.shards)
	seq, err := l.Append(ctx, shard, requestID, b)
	if err != nil {
		return 0, 0, err
	}
	return shard, seq, nil
}
