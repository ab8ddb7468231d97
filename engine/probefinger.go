package engine

import (
	"context"
	"fmt"
)

// ProbeFinger turns one probe finger into a Bordermatch finger template
// (FingerSample.Template takes it back) and says what was measured of it.
// A gate uses it to extract each scanned finger as it arrives, so that a
// scan the extractor refuses (ErrInvalid, e.g. too low a quality) is that
// finger's outcome rather than the whole search's; Identify then takes
// the templates without extracting again.
func (s *Engine) ProbeFinger(ctx context.Context, fs FingerSample) ([]byte, FingerQuality, error) {
	if err := ctx.Err(); err != nil {
		return nil, FingerQuality{}, err
	}
	x, err := s.finger(ctx, fs, false, "probe finger")
	if err != nil {
		return nil, FingerQuality{}, err
	}
	b, err := x.t.MarshalBinary()
	if err != nil {
		return nil, FingerQuality{}, fmt.Errorf("%w: encoding template: %w", ErrInternal, err)
	}
	return b, *x.fingerQ, nil
}
