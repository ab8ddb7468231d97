package benchmarks

import "errors"

// newFingerModality is the fingerprint modality; it arrives with the
// fingerprint extractor and matcher.
func newFingerModality(dpi int) (Modality, error) {
	return nil, usageErr{errors.New("--modality finger: this build has no fingerprint modality yet")}
}
