package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

// FuzzComparisonPath sends arbitrary template bytes down every comparison
// path (Identify; Verify by sample on either side, by subject, with
// reference fingers; a face and a finger fused) of an engine over a real
// Badger gallery. Whatever the bytes: no panic; an error is the caller's
// (ErrInvalid, ErrIncompatible), never Internal or Unavailable; no score is
// NaN or infinite; and a face score is the template's true cosine (float64)
// with the face compared, so only a template near an enrolled face can
// match it.
func FuzzComparisonPath(f *testing.F) {
	e, st := replica(f, f.TempDir())
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	faces := map[string][]float32{}
	fingerT := templates.NewFingerTemplate(minutiae.View{DPI: 500, Width: 400, Height: 400, Minutiae: fingerMinutiae()})
	for i, id := range []string{"f0", "f1", "f2"} {
		req := logEnrol(f, id, 20+i)
		if id == "f2" {
			req.Samples = append(req.Samples, engine.Sample{Finger: &engine.FingerSample{Template: encode(f, fingerT)}})
		}
		if _, err := e.Enroll(ctx, req); err != nil {
			f.Fatal(err)
		}
		sub, err := st.Get(id)
		if err != nil {
			f.Fatal(err)
		}
		faces[id] = sub.Templates[0].Vector
	}
	ref := logTpl(f, 20)
	good := decodeTpl(f, ref)
	for _, seed := range [][]byte{
		ref,
		logTpl(f, 21),
		encode(f, faceTpl(make([]float32, templates.FaceDim))),
		encode(f, faceTpl(signOf(good.Vector, math.MaxFloat32))),
		encode(f, faceTpl(signOf(good.Vector, 1e-20))),
		encode(f, faceTpl(signOf(good.Vector, 3))),
		encode(f, fingerT),
		[]byte("BMT\x01garbage"),
		ref[:len(ref)/2],
	} {
		f.Add(seed)
	}
	// Seeds the fuzzer can mutate past the checksum: a vector's raw bytes
	// ('V') or an ISO finger record ('R'), encoded by asTemplate.
	f.Add(append([]byte("V"), vectorBytes(good.Vector)...))
	f.Add(append([]byte("V"), vectorBytes(signOf(good.Vector, math.MaxFloat32))...))
	rec, err := minutiae.Record{Format: minutiae.FormatISO2005, Views: []minutiae.View{*fingerT.Finger}}.MarshalISO()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte("R"), rec...))
	thr := float32(0.5)
	f.Fuzz(func(t *testing.T, b []byte) {
		b = asTemplate(b)
		var tpl templates.Template
		decodes := tpl.UnmarshalBinary(b) == nil
		valid := decodes && tpl.Comparable() == nil
		face := valid && tpl.Modality == templates.ModalityFace
		check := func(what string, err error, scores ...engine.Scores) {
			t.Helper()
			if err != nil {
				if !errors.Is(err, engine.ErrInvalid) && !errors.Is(err, engine.ErrIncompatible) {
					t.Fatalf("%s: %v: not the caller's error", what, err)
				}
				return
			}
			if !valid {
				t.Fatalf("%s: a template that is not comparable (%+v) was compared", what, tpl)
			}
			for _, sc := range scores {
				for _, v := range []float64{float64(sc.Face), sc.FaceFMR, sc.FaceLR, float64(sc.FingerMean), sc.FusedFMR, sc.FusedScore} {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("%s: a score that is not finite: %+v", what, sc)
					}
				}
				for _, fs := range sc.Fingers {
					if math.IsNaN(float64(fs.Score)) || math.IsNaN(fs.FMR) || math.IsNaN(fs.LR) {
						t.Fatalf("%s: a finger score that is not finite: %+v", what, fs)
					}
				}
			}
		}
		// The face score of a template against subject id is its cosine.
		cosineOf := func(what, id string, sc engine.Scores) {
			t.Helper()
			if !face || !sc.HasFace || tpl.Algorithm != templates.FaceAlgorithm {
				return
			}
			if want := cosine64(tpl.Vector, faces[id]); math.Abs(float64(sc.Face)-want) > 2e-3 {
				t.Fatalf("%s: face score %v against %s, the true cosine is %v", what, sc.Face, id, want)
			}
		}

		res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: b}}, Query: engine.Query{Threshold: &thr}})
		var scs []engine.Scores
		for _, c := range res.Candidates {
			scs = append(scs, c.Scores)
		}
		check("identify", err, scs...)
		for _, c := range res.Candidates {
			cosineOf("identify", c.SubjectID, c.Scores)
		}

		v, err := e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: b}}, Reference: &engine.Sample{Template: ref}, Threshold: &thr})
		check("verify by sample", err, v.Scores)
		cosineOf("verify by sample", "f0", v.Scores)

		v, err = e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: ref}}, Reference: &engine.Sample{Template: b}, Threshold: &thr})
		check("verify as the reference", err, v.Scores)
		cosineOf("verify as the reference", "f0", v.Scores)

		v, err = e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: b}}, SubjectID: "f1", Threshold: &thr})
		check("verify by subject", err, v.Scores)
		cosineOf("verify by subject", "f1", v.Scores)

		// As a finger: searched, verified against reference fingers, and
		// fused with a face against the subject that has both.
		if decodes && tpl.Modality == templates.ModalityFace {
			return // a face in a finger's place is refused; covered above
		}
		fp := []engine.FingerSample{{Template: b}}
		res, err = e.Identify(ctx, engine.IdentifyRequest{Probe: engine.Probe{Fingers: fp}})
		scs = scs[:0]
		for _, c := range res.Candidates {
			scs = append(scs, c.Scores)
		}
		check("identify a finger", err, scs...)
		v, err = e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Fingers: fp}, ReferenceFingers: []engine.FingerSample{{Template: encode(t, fingerT)}}})
		check("verify a finger", err, v.Scores)
		v, err = e.Verify(ctx, engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: logTpl(t, 22)}, Fingers: fp}, SubjectID: "f2"})
		check("verify fused", err, v.Scores)
	})
}

func vectorBytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// asTemplate lets the fuzzer reach the comparisons with values of its
// choosing rather than stop at the codec's checksum: 'V' and a vector's
// float32 bytes become a face template of the default algorithm, 'R' and
// an ISO/IEC 19794-2 record a finger template, encoded as a caller would
// send them (the encoder checks no values). Other bytes are sent as they
// are.
func asTemplate(b []byte) []byte {
	if len(b) < 2 {
		return b
	}
	var t templates.Template
	switch b[0] {
	case 'V':
		n := min((len(b)-1)/4, templates.MaxDim)
		if n == 0 {
			return b
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[1+4*i:]))
		}
		t = faceTpl(v)
	case 'R':
		rec, err := minutiae.ParseISO(b[1:])
		if err != nil || len(rec.Views) != 1 {
			return b
		}
		t = templates.NewFingerTemplate(rec.Views[0])
	default:
		return b
	}
	enc, err := t.MarshalBinary()
	if err != nil {
		return b
	}
	return enc
}
