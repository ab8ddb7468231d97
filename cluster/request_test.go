package cluster

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

func TestEnrollRequestRoundTrip(t *testing.T) {
	req := engine.EnrollRequest{SubjectID: "P-1", Name: "Ana", Metadata: map[string]string{"k": "v"},
		Watchlists: []string{"wl", "b"}, Created: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC),
		Samples: []engine.Sample{{Template: []byte{1, 2, 3}},
			{Finger: &engine.FingerSample{Position: minutiae.Position(2), Template: []byte{4, 5}}}}}
	b, err := EncodeEnroll(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnroll(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, req)
	}
	// Not templates: refused by the coordinator.
	for _, s := range []engine.Sample{{FaceImage: []byte{1}}, {}, {Template: []byte{1}, Finger: &engine.FingerSample{Template: []byte{1}}},
		{Finger: &engine.FingerSample{Image: []byte{1}, Template: []byte{1}}}} {
		if _, err := EncodeEnroll(engine.EnrollRequest{SubjectID: "x", Samples: []engine.Sample{s}}); err == nil {
			t.Errorf("sample %+v encoded", s)
		}
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"v":1}`, `{"v":1,"id":"x","samples":[]}`,
		`{"v":1,"id":"x","samples":[{"template":""}]}`, `{"v":1,"id":"x","samples":[{"template":"AQ=="}],"extra":1}`,
		`{"v":1,"id":"x","samples":[{"template":"AQ=="}]} {}`, `{"v":1,"id":"x","samples":[{"position":3,"template":"AQ=="}]}`,
		`{"v":0,"id":"x","samples":[{"template":"AQ=="}]}`} {
		if _, err := DecodeEnroll([]byte(bad)); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrNewerRequest) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := DecodeEnroll([]byte(`{"v":2,"id":"x","more":true}`)); !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrNewerRequest) {
		t.Errorf("newer version: %v", err)
	}
}

func FuzzDecodeEnroll(f *testing.F) {
	b, _ := EncodeEnroll(engine.EnrollRequest{SubjectID: "P-1", Name: "n", Watchlists: []string{"wl"},
		Samples: []engine.Sample{{Template: []byte{1, 2}}, {Finger: &engine.FingerSample{Position: 1, Template: []byte{3}}}}})
	f.Add(b)
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"id":"x","samples":[{"template":"AQ=="}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeEnroll(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		// What decodes encodes, and decodes to the same request.
		again, err := EncodeEnroll(req)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		req2, err := DecodeEnroll(again)
		if err != nil || !reflect.DeepEqual(req, req2) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, req, req2)
		}
	})
}
