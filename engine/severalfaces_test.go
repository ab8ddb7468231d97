package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates"
)

// TestSeveralFacesSaysWhatFor: a photo of several comparable faces is
// refused with how many, and with what the photo was for: an enrolment
// needs one face, a search probe one face or take_largest_face. The
// extractor once said "enrolment needs one" to a search too (issue 18).
func TestSeveralFacesSaysWhatFor(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	e, err := engine.New(engine.Config{Store: st, Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	group := readPhoto(t, "reference/faces.jpg") // 6 comparable faces

	_, err = e.Enroll(ctx, engine.EnrollRequest{SubjectID: "group", Samples: []engine.Sample{{FaceImage: group}}})
	if !errors.Is(err, engine.ErrInvalid) || !errors.Is(err, templates.ErrMultipleFaces) {
		t.Fatalf("enrol a group photo: %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "sample 1: ") || !strings.Contains(msg, "6 faces") || !strings.Contains(msg, "enrolment needs a photo of one face") {
		t.Errorf("enrol a group photo: %q", msg)
	}

	_, err = e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{FaceImage: group}}})
	if !errors.Is(err, engine.ErrInvalid) || !errors.Is(err, templates.ErrMultipleFaces) {
		t.Fatalf("search with a group photo: %v", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "probe: ") || !strings.Contains(msg, "6 faces") || !strings.Contains(msg, "take_largest_face") || strings.Contains(msg, "enrol") {
		t.Errorf("search with a group photo: %q", msg)
	}
}
