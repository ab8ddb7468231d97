package engine

// Coordinating a cluster's calls (issue 15): the node a client calls makes
// the templates once, and the log (an enrolment) or the partitions (a
// search) get templates only. See apply.go for the other end.

import (
	"context"
	"fmt"

	"github.com/bordermatch/bordermatch/templates"
)

// PrepareEnroll checks an enrolment and makes its templates without storing
// anything: it returns the request as the log carries it (every sample a
// template, Created set by the caller) and the result an Enroll would give
// (qualities, the templates when asked; Subject as it will be stored). The
// subject id is not checked for existence here.
func (s *Engine) PrepareEnroll(ctx context.Context, req EnrollRequest) (EnrollRequest, EnrollResult, error) {
	sub, _, res, err := s.prepareEnroll(ctx, req, enrolForLog)
	if err != nil {
		return EnrollRequest{}, res, err
	}
	out := EnrollRequest{SubjectID: sub.ID, Name: sub.Name, Metadata: sub.Metadata, Watchlists: sub.Watchlists, Created: req.Created}
	for i, t := range sub.Templates {
		b, err := t.MarshalBinary()
		if err != nil {
			return EnrollRequest{}, res, fmt.Errorf("%w: encoding template %d: %w", ErrInternal, i+1, err)
		}
		out.Samples = append(out.Samples, Sample{Template: b})
	}
	sub.Created = req.Created
	res.Subject = sub
	return out, res, nil
}

// ProbeTemplate makes the face template of a probe in the default
// algorithm, for a search on other nodes. A probe with fingers, or a
// finger sample, is refused (ErrInvalid): a cluster identifies by face.
func (s *Engine) ProbeTemplate(ctx context.Context, in Probe) ([]byte, *FaceQuality, error) {
	in, _, err := probeWithNIST(in)
	if err != nil {
		return nil, nil, err
	}
	if len(in.Fingers) > 0 || (in.Sample != nil && in.Sample.Finger != nil) {
		return nil, nil, invalid("probe: a cluster identifies by face; search fingers on a single node")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p, err := s.probe(ctx, in, "probe")
	if err != nil {
		return nil, nil, err
	}
	if p.face == nil {
		return nil, nil, invalid("probe: a face sample is required")
	}
	if p.face.t.Modality != templates.ModalityFace {
		return nil, nil, invalid("probe: a cluster identifies by face")
	}
	b, err := p.face.t.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encoding template: %w", ErrInternal, err)
	}
	return b, p.face.faceQ, nil
}
