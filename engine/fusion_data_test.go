package engine_test

// Fusion on real templates (issue 18): more evidence that favours a match
// never removes the mate, and every answer's decision agrees with its rule
// and numbers. Faces of testdata/faces (and of ../shared/testdata/faces when
// present) through dlib's network, whose conservative calibration (idols)
// rates genuine photos anywhere from FMR 1e-4 to 0.9; fingers are the FVC
// records of matcher/testdata/fingers. With the shared data
// (BORDERMATCH_FACE_DATA, BORDERMATCH_FINGERPRINT_DATA, as for
// calibration_gen_test.go) the property test adds idols photos and FVC2000
// images.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates/minutiae"
)

const fingerRecords = "../matcher/testdata/fingers/"

func fingerRecord(t testing.TB, set string, finger, impression int, pos minutiae.Position) engine.FingerSample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fingerRecords, set, fmt.Sprintf("%d_%d.iso", finger, impression)))
	if err != nil {
		t.Fatal(err)
	}
	return engine.FingerSample{Position: pos, Record: b}
}

func dlibEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{Store: openStore(t, t.TempDir()), Faces: dlib(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestFusionFingerAndMatchingPhoto is the reproduction: a subject
// enrolled with a face and a finger; the finger alone is a hit at a max
// FMR just at its own FMR; the same finger with a photo of the same
// person whose score favours a match (likelihood ratio >= 1, here a photo
// dlib's idols table rates at FMR about 0.12) must still be a hit, with a
// fused FMR no higher. Fisher's method fused it to several times the
// finger's FMR: no hit.
func TestFusionFingerAndMatchingPhoto(t *testing.T) {
	e := dlibEngine(t)
	ctx := context.Background()
	pos := minutiae.RightIndex
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "raj", Watchlists: []string{"w"}, Samples: []engine.Sample{
		{FaceImage: readPhoto(t, "bbt/raj/1.png")},
		{Finger: ptr(fingerRecord(t, "fvc2002_db1_b", 101, 1, pos))},
	}}); err != nil {
		t.Fatal(err)
	}
	probeFinger := fingerRecord(t, "fvc2002_db1_b", 101, 2, pos)
	identify := func(photo string, maxFMR float64) *engine.Candidate {
		t.Helper()
		p := engine.Probe{Fingers: []engine.FingerSample{probeFinger}}
		if photo != "" {
			p.Sample = &engine.Sample{FaceImage: readPhoto(t, photo)}
		}
		res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: p, Query: engine.Query{MaxFMR: &maxFMR}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Candidates {
			if c.SubjectID == "raj" {
				return &c
			}
		}
		return nil
	}
	loose := identify("", 0.5)
	if loose == nil {
		t.Fatal("the finger alone finds nothing at max_fmr 0.5")
	}
	finger := loose.FusedFMR
	if finger > engine.DefaultMaxFMR {
		t.Fatalf("a genuine finger at FMR %v: not a hit at the default max FMR", finger)
	}
	if identify("", finger) == nil {
		t.Fatalf("the finger alone is no hit at its own FMR %v", finger)
	}
	// raj/4.png: dlib cosine about 0.955, FMR about 0.12 on the idols
	// table, likelihood ratio about 1.4.
	c := identify("bbt/raj/4.png", finger)
	if c == nil {
		t.Fatalf("finger (FMR %.3g) + matching photo: no hit at max_fmr %.3g", finger, finger)
	}
	t.Logf("finger FMR %.3g; + photo (cosine %.4f, FMR %.3g, LR %.3g): fused FMR %.3g", finger, c.Face, c.FaceFMR, c.FaceLR, c.FusedFMR)
	if c.FaceLR < 1 {
		t.Errorf("the photo's LR is %v: not the favourable photo this test needs", c.FaceLR)
	}
	if c.FusedFMR > finger {
		t.Errorf("adding the matching photo raised the fused FMR from %v to %v", finger, c.FusedFMR)
	}
	// Every photo of the person: one that favours a match keeps the hit;
	// one that favours an impostor (the cosine 0.933 is one, on
	// this table) may lose it.
	for k := 2; k <= 5; k++ {
		photo := fmt.Sprintf("bbt/raj/%d.png", k)
		c := identify(photo, 0.5)
		if c == nil {
			t.Errorf("%s: the subject is no candidate at max_fmr 0.5", photo)
			continue
		}
		t.Logf("%s: face cosine %.4f FMR %.3g LR %.3g: fused FMR %.3g", photo, c.Face, c.FaceFMR, c.FaceLR, c.FusedFMR)
		if c.FaceLR >= 1 && c.FusedFMR > finger {
			t.Errorf("%s favours a match (LR %v) and raised the fused FMR from %v to %v", photo, c.FaceLR, finger, c.FusedFMR)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// fusionData is the property test's samples: face templates by person and
// finger samples by finger.
type fusionData struct {
	faces   map[string][][]byte // person → encoded dlib templates
	fingers map[string][]engine.FingerSample
}

// loadFusionData extracts every photo of testdata/faces/bbt (and 40 of
// the shared idols folder when BORDERMATCH_FACE_DATA is set) and reads the
// finger records of matcher/testdata (and four impressions of each finger
// of the shared FVC2000 DB1 B when BORDERMATCH_FINGERPRINT_DATA is set).
func loadFusionData(t *testing.T, e *engine.Engine) fusionData {
	t.Helper()
	d := fusionData{faces: map[string][][]byte{}, fingers: map[string][]engine.FingerSample{}}
	ctx := context.Background()
	var photos []string
	add := func(dir string, limit int) {
		m, _ := filepath.Glob(filepath.Join(dir, "*", "*.png"))
		j, _ := filepath.Glob(filepath.Join(dir, "*", "*.jpg"))
		m = append(m, j...)
		slices.Sort(m)
		if limit > 0 && len(m) > limit {
			m = m[:limit]
		}
		photos = append(photos, m...)
	}
	add("../testdata/faces/bbt", 0)
	if dir := os.Getenv("BORDERMATCH_FACE_DATA"); dir != "" {
		add(filepath.Join(dir, "idols"), 40)
	}
	for i, p := range photos {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("x%d", i)
		res, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: id, Samples: []engine.Sample{{FaceImage: b}}, ReturnTemplates: true})
		if err != nil {
			continue // no single face found: not a sample of this test
		}
		if _, err := e.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		who := filepath.Base(filepath.Dir(filepath.Dir(p))) + "/" + filepath.Base(filepath.Dir(p))
		d.faces[who] = append(d.faces[who], res.Templates[0])
	}
	for _, set := range []string{"fvc2002_db1_b", "fvc2002_db3_b"} {
		m, _ := filepath.Glob(filepath.Join(fingerRecords, set, "*.iso"))
		for _, f := range m {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			who := set + "/" + strings.SplitN(filepath.Base(f), "_", 2)[0]
			d.fingers[who] = append(d.fingers[who], engine.FingerSample{Record: b})
		}
	}
	if dir := os.Getenv("BORDERMATCH_FINGERPRINT_DATA"); dir != "" {
		for f := 101; f <= 110; f++ {
			for i := 1; i <= 4; i++ {
				b, err := os.ReadFile(filepath.Join(dir, "fvc2000_db1_b", fmt.Sprintf("%d_%d.tif", f, i)))
				if err != nil {
					t.Fatal(err)
				}
				// Extracted once, through an enrolment: a Verify would
				// extract the image again on every call.
				res, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "fx", ReturnTemplates: true,
					Samples: []engine.Sample{{Finger: &engine.FingerSample{Image: b, DPI: 500}}}})
				if err != nil {
					continue // under the enrolment quality floor: not a sample of this test
				}
				if _, err := e.Delete(ctx, "fx"); err != nil {
					t.Fatal(err)
				}
				who := fmt.Sprintf("fvc2000_db1_b/%d", f)
				d.fingers[who] = append(d.fingers[who], engine.FingerSample{Template: res.Templates[0]})
			}
		}
	}
	return d
}

// pair draws a probe and a reference: of one person (genuine) when
// genuine and some person has two, else of two.
func pair[T any](r *rand.Rand, by map[string][]T, genuine bool) (a, b T) {
	keys := make([]string, 0, len(by))
	for k, v := range by {
		if !genuine || len(v) >= 2 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	k := keys[r.IntN(len(keys))]
	if genuine {
		i := r.Perm(len(by[k]))
		return by[k][i[0]], by[k][i[1]]
	}
	l := k
	for l == k {
		l = keys[r.IntN(len(keys))]
	}
	return by[k][r.IntN(len(by[k]))], by[l][r.IntN(len(by[l]))]
}

// TestFusionMonotoneOverData is the property: over random comparisons of
// the data (genuine and impostor faces and fingers), adding a comparison
// whose likelihood ratio is at least 1 never lowers the fused score, be it
// a face added to fingers or a second finger added to a face and a finger;
// and a comparison that favours an impostor is allowed to lower it (it
// does, some of the time, or the test is not testing much).
func TestFusionMonotoneOverData(t *testing.T) {
	e := dlibEngine(t)
	d := loadFusionData(t, e)
	t.Logf("%d people's faces, %d fingers", len(d.faces), len(d.fingers))
	ctx := context.Background()
	r := rand.New(rand.NewPCG(18, 2026))
	verify := func(pf, rf []byte, probe, ref []engine.FingerSample) engine.VerifyResult {
		t.Helper()
		req := engine.VerifyRequest{Probe: engine.Probe{Fingers: probe}, ReferenceFingers: ref, MaxFMR: ptr(engine.DefaultMaxFMR)}
		if pf != nil {
			req.Probe.Sample, req.Reference = &engine.Sample{Template: pf}, &engine.Sample{Template: rf}
		}
		res, err := e.Verify(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	positions := []minutiae.Position{minutiae.RightIndex, minutiae.LeftIndex}
	at := func(f engine.FingerSample, i int) engine.FingerSample { f.Position = positions[i]; return f }
	var favourable, against, lowered int
	for trial := range 300 {
		pf, rf := pair(r, d.faces, r.IntN(2) == 0)
		p1, r1 := pair(r, d.fingers, r.IntN(2) == 0)
		p2, r2 := pair(r, d.fingers, r.IntN(2) == 0)
		f1 := []engine.FingerSample{at(p1, 0)}
		g1 := []engine.FingerSample{at(r1, 0)}
		fingerOnly := verify(nil, nil, f1, g1)
		withFace := verify(pf, rf, f1, g1)
		withBoth := verify(pf, rf, append(f1, at(p2, 1)), append(g1, at(r2, 1)))
		for _, step := range []struct {
			what          string
			lr            float64
			before, after engine.VerifyResult
		}{
			{"a face", withFace.FaceLR, fingerOnly, withFace},
			{"a second finger", withBoth.Fingers[1].LR, withFace, withBoth},
		} {
			if step.lr >= 1 {
				favourable++
				if step.after.FusedScore < step.before.FusedScore-1e-9 {
					t.Errorf("trial %d: adding %s with LR %.3g lowered the fused score from %.4f (FMR %.3g) to %.4f (FMR %.3g)",
						trial, step.what, step.lr, step.before.FusedScore, step.before.FusedFMR, step.after.FusedScore, step.after.FusedFMR)
				}
				continue
			}
			against++
			if step.after.FusedScore < step.before.FusedScore-1e-9 {
				lowered++
			}
		}
	}
	t.Logf("%d favourable additions, %d against a match (%d lowered the fused score)", favourable, against, lowered)
	if favourable < 50 || lowered == 0 {
		t.Errorf("%d favourable additions, %d lowering: the data did not exercise the rule", favourable, lowered)
	}
}

// TestVerifyDecisionConsistent: every Verify answer states its rule, and
// match, the rule and the numbers agree. A cosine decision (a face-only
// probe without max_fmr) matches exactly when the cosine reaches the
// threshold, and then the face FMR is at most the threshold's FMR (issue
// 18: "match": true beside "faceFmr": 0.496 with no FMR to read it
// against); a fused decision matches exactly when the fused FMR is at
// most max_fmr.
func TestVerifyDecisionConsistent(t *testing.T) {
	e := dlibEngine(t)
	ctx := context.Background()
	cals, err := engine.DefaultFaceCalibrations()
	if err != nil {
		t.Fatal(err)
	}
	cal := cals[e.DefaultAlgorithm().String()]
	var photos []string
	for _, who := range []string{"leonard", "stuart", "raj"} {
		for k := 1; k <= 5; k++ {
			photos = append(photos, fmt.Sprintf("bbt/%s/%d.png", who, k))
		}
	}
	tpl := map[string][]byte{}
	for i, p := range photos {
		res, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: fmt.Sprint("p", i), Samples: []engine.Sample{{FaceImage: readPhoto(t, p)}}, ReturnTemplates: true})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		tpl[p] = res.Templates[0]
	}
	var matches, misses int
	for _, a := range photos {
		for _, b := range photos {
			if a >= b {
				continue
			}
			req := engine.VerifyRequest{Probe: engine.Probe{Sample: &engine.Sample{Template: tpl[a]}}, Reference: &engine.Sample{Template: tpl[b]}}
			res, err := e.Verify(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			d := res.Decision
			thrFMR := cal.FMRAt(float64(d.Threshold))
			if d.Fused || !strings.Contains(d.Rule, fmt.Sprintf("threshold %.4g", d.Threshold)) || !strings.Contains(d.Rule, fmt.Sprintf("FMR %.2g", thrFMR)) {
				t.Fatalf("a face-only probe's rule: %q (fused %v)", d.Rule, d.Fused)
			}
			if res.Match != (res.Face >= d.Threshold) {
				t.Errorf("%s vs %s: match %v at cosine %v, threshold %v", a, b, res.Match, res.Face, d.Threshold)
			}
			if res.DecisionFMR != thrFMR || d.ThresholdFMR != thrFMR {
				t.Errorf("%s vs %s: decision FMR %v, threshold FMR %v; the threshold's FMR is %v", a, b, res.DecisionFMR, d.ThresholdFMR, thrFMR)
			}
			if res.Match && res.FaceFMR > res.DecisionFMR || !res.Match && res.FaceFMR < res.DecisionFMR {
				t.Errorf("%s vs %s: match %v with face FMR %v against the rule's FMR %v", a, b, res.Match, res.FaceFMR, res.DecisionFMR)
			}
			if res.Match {
				matches++
			} else {
				misses++
			}
			// The same pair on the FMR scale.
			req.MaxFMR = ptr(1e-2)
			res, err = e.Verify(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Decision.Fused || res.Decision.Rule != "fused FMR <= max_fmr 0.01" || res.DecisionFMR != 1e-2 {
				t.Fatalf("max_fmr 0.01: rule %q, decision FMR %v", res.Decision.Rule, res.DecisionFMR)
			}
			if res.Match != (res.FusedFMR <= 1e-2) || res.Match != (res.FusedScore >= res.Decision.FusedThreshold) {
				t.Errorf("%s vs %s: match %v with fused FMR %v, score %v, fused threshold %v", a, b, res.Match, res.FusedFMR, res.Score, res.Decision.FusedThreshold)
			}
		}
	}
	if matches == 0 || misses == 0 {
		t.Errorf("%d matches, %d misses: the pairs did not exercise both sides", matches, misses)
	}
}

// TestIdentifyScoresUnshortlistedFingers: a subject the face finds whose
// finger the probe finger's index search did not shortlist (more than 200
// subjects carry fingers that resemble the probe's more) is scored on its
// finger all the same, as Verify scores it, instead of as a finger that
// scored 0: that read as strong evidence against the face's candidate, and
// face candidates vanished once a finger was given (issue 18).
func TestIdentifyScoresUnshortlistedFingers(t *testing.T) {
	e, err := engine.New(engine.Config{Store: openStore(t, t.TempDir()), Faces: mfn(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pos := minutiae.RightIndex
	if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: "raj", Samples: []engine.Sample{
		{FaceImage: readPhoto(t, "bbt/raj/1.png")},
		{Finger: ptr(fingerRecord(t, "fvc2002_db3_b", 104, 1, pos))},
	}}); err != nil {
		t.Fatal(err)
	}
	// 576 subjects with other fingers (every impression of the other
	// fingers, twelve times): more than 200 of them resemble the probe's
	// finger more than the subject's does in the index's first stage, and
	// fill its shortlist (200 subjects at this size); none is a hit.
	n := 0
	for copy := range 12 {
		for _, set := range []string{"fvc2002_db1_b", "fvc2002_db3_b"} {
			for finger := 101; finger <= 104; finger++ {
				if set == "fvc2002_db1_b" && finger == 101 || set == "fvc2002_db3_b" && finger == 104 {
					continue
				}
				for imp := 1; imp <= 8; imp++ {
					f := fingerRecord(t, set, finger, imp, pos)
					n++
					if _, err := e.Enroll(ctx, engine.EnrollRequest{SubjectID: fmt.Sprintf("f%d-%s-%d-%d", copy, set, finger, imp),
						Samples: []engine.Sample{{Finger: &f}}}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	probe := engine.Probe{Sample: &engine.Sample{FaceImage: readPhoto(t, "bbt/raj/2.png")},
		Fingers: []engine.FingerSample{fingerRecord(t, "fvc2002_db1_b", 101, 2, pos)}}
	v, err := e.Verify(ctx, engine.VerifyRequest{Probe: probe, SubjectID: "raj"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Fingers[0].Score == 0 {
		t.Fatal("the subject's finger scores 0 against the probe's: no test")
	}
	res, err := e.Identify(ctx, engine.IdentifyRequest{Probe: probe})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(res.Candidates, func(c engine.Candidate) bool { return c.SubjectID == "raj" })
	if i < 0 {
		t.Fatalf("the face's candidate vanished (Verify: face FMR %.3g, finger score %.4f FMR %.3g, fused FMR %.3g)",
			v.FaceFMR, v.Fingers[0].Score, v.Fingers[0].FMR, v.FusedFMR)
	}
	c := res.Candidates[i]
	if c.Fingers[0].Score != v.Fingers[0].Score || c.FusedFMR != v.FusedFMR {
		t.Errorf("Identify scores the subject's finger %v (fused FMR %v), Verify %v (%v)", c.Fingers[0].Score, c.FusedFMR, v.Fingers[0].Score, v.FusedFMR)
	}
	t.Logf("%d other subjects; face FMR %.3g; finger %.4f (FMR %.3g, LR %.3g); fused FMR %.3g", n, c.FaceFMR, c.Fingers[0].Score, c.Fingers[0].FMR, c.Fingers[0].LR, c.FusedFMR)
}
