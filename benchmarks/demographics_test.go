package benchmarks

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadDemographics(t *testing.T) {
	const good = "# a comment\nidentity\tsubset\tethnicity_label\tlabel_source\tgender\tage\n" +
		"A\tS1\twhite\tself\tfemale\t25\n" +
		"\n" +
		"B\tS1\tunknown\t-\t\t\n"
	for _, tc := range []struct {
		name, text, err string // err: "" for none, else a substring of the error
	}{
		{"good", good, ""},
		{"short line", good + "C\tS2\twhite\n", "demo.tsv:6: 3 fields, the header has 6"},
		{"long line", good + "C\tS2\twhite\tx\tmale\t30\textra\n", "demo.tsv:6: 7 fields"},
		{"no identity column", "name\tsubset\nA\tS1\n", "demo.tsv:1: header: first column \"name\""},
		{"duplicate identity", good + "A\tS2\twhite\tself\tmale\t30\n", "demo.tsv:6: identity \"A\" given twice"},
		{"empty identity", good + "\tS2\twhite\tself\tmale\t30\n", "demo.tsv:6: empty identity"},
		{"empty file", "# only a comment\n", "demo.tsv: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "demo.tsv")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			d, err := ReadDemographics(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, path, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(d.Attributes, ","); got != "subset,ethnicity_label,gender,age" {
				t.Errorf("attributes %s (label_source is not one)", got)
			}
			for _, c := range []struct{ id, attr, want string }{
				{"A", "ethnicity_label", "white"}, {"A", "age", "0-29"}, {"B", "ethnicity_label", Unknown},
				{"B", "gender", Unknown}, {"B", "age", Unknown}, {"Z", "subset", Unknown},
			} {
				if g := d.Group(c.id, c.attr); g != c.want {
					t.Errorf("Group(%s, %s) = %q, want %q", c.id, c.attr, g, c.want)
				}
			}
		})
	}
}

func TestLoadDemographics(t *testing.T) {
	a, b, none := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, DemographicsFile), []byte("identity\tgender\nA\tmale\n"), 0o644)
	os.WriteFile(filepath.Join(b, DemographicsFile), []byte("identity\tsubset\nB\tS\n"), 0o644)
	if _, ok, err := LoadDemographics([]string{none}); ok || err != nil {
		t.Errorf("no file: ok %v err %v, want false, nil", ok, err)
	}
	d, ok, err := LoadDemographics([]string{a, none, b})
	if !ok || err != nil || len(d.Files) != 2 || strings.Join(d.Attributes, ",") != "gender,subset" || d.Group("B", "subset") != "S" || d.Group("A", "subset") != Unknown {
		t.Errorf("merged: %+v ok %v err %v", d, ok, err)
	}
	if _, _, err := LoadDemographics([]string{a, a}); err == nil || !strings.Contains(err.Error(), `"A"`) {
		t.Errorf("an identity labelled twice: %v", err)
	}
}

// demoFixture is a synthetic run with known per-group rates at threshold
// 0.5. Identities A, B (subset x), C (subset y), D ("unknown"), E (empty
// label), F (not in the file); two samples each.
func demoFixture() (Demographics, []Sample, VerifyResult) {
	d := Demographics{Files: []string{"demo.tsv"}, Attributes: []string{"subset", "gender", "age"},
		Labels: map[string]map[string]string{
			"A": {"subset": "x", "gender": "", "age": "25"},
			"B": {"subset": "x", "gender": "", "age": "41"},
			"C": {"subset": "y", "gender": "", "age": "NA"},
			"D": {"subset": "unknown", "gender": ""},
			"E": {"subset": "", "gender": ""},
		}}
	var samples []Sample
	for _, id := range "ABCDEF" {
		samples = append(samples, Sample{Identity: string(id)}, Sample{Identity: string(id)})
	}
	var res VerifyResult
	gen := func(a, b int32, s float64) {
		res.Genuine, res.GenuinePairs = append(res.Genuine, s), append(res.GenuinePairs, SamplePair{a, b})
	}
	imp := func(n int, a, b int32, s float64) {
		for range n {
			res.Impostor, res.ImpostorPairs = append(res.Impostor, s), append(res.ImpostorPairs, SamplePair{a, b})
		}
	}
	gen(0, 1, 0.9)            // A: match
	gen(2, 3, 0.3)            // B: non-match
	gen(4, 5, 0.8)            // C: match
	gen(4, 5, 0.4)            // C: non-match
	gen(6, 7, 0.9)            // D
	gen(8, 9, 0.9)            // E
	gen(10, 11, math.Inf(-1)) // F: failed, a non-match
	imp(30, 0, 2, 0.6)        // A-B, same group x: false matches
	imp(2970, 1, 3, 0.1)      // A-B
	imp(100, 0, 4, 0.99)      // A-C, across groups: in no group
	imp(10, 6, 8, 0.9)        // D-E: both unknown
	imp(5, 7, 10, 0.2)        // D-F: both unknown
	return d, samples, res
}

func TestDemographic(t *testing.T) {
	d, samples, res := demoFixture()
	ts := []GlobalThreshold{{Name: "test", Threshold: 0.5}, {Name: "strict", Threshold: 0.95}}
	rep := Demographic(d, samples, res, ts)
	if rep.MinImpostors != 3000 {
		t.Errorf("MinImpostors %d, want 3000 (3/0.001)", rep.MinImpostors)
	}
	if strings.Join(rep.Skipped, ",") != "gender" {
		t.Errorf("skipped %v, want gender (no labels)", rep.Skipped)
	}
	groups := map[string]GroupReport{}
	var order []string
	for _, a := range rep.Attributes {
		for _, g := range a.Groups {
			groups[a.Attribute+"/"+g.Group] = g
			order = append(order, a.Attribute+"/"+g.Group)
		}
	}
	if got := strings.Join(order, " "); got != "subset/x subset/y subset/unknown age/0-29 age/30-49 age/unknown" {
		t.Errorf("groups in order %s (unknown last)", got)
	}
	na := math.NaN() // n/a
	for _, tc := range []struct {
		group         string
		ids, gen, imp int
		fnmr, fmr     float64 // at 0.5
		fnmrStrict    float64 // at 0.95
	}{
		{"subset/x", 2, 2, 3000, 0.5, 0.01, 1},
		{"subset/y", 1, 2, 0, 0.5, na, 1},            // no same-group impostors
		{"subset/unknown", 3, 3, 15, 1.0 / 3, na, 1}, // "unknown", "" and unlisted together; 15 pairs: n/a
		{"age/0-29", 1, 1, 0, 0, na, 1},              // A
		{"age/30-49", 1, 1, 0, 1, na, 1},             // B
		{"age/unknown", 4, 5, 15, 0.4, na, 1},        // C (NA), D, E, F
	} {
		g, ok := groups[tc.group]
		if !ok {
			t.Errorf("%s: missing", tc.group)
			continue
		}
		if g.Identities != tc.ids || g.GenuineCount != tc.gen || g.ImpostorCount != tc.imp {
			t.Errorf("%s: %d identities, %d genuine, %d impostor; want %d, %d, %d", tc.group, g.Identities, g.GenuineCount, g.ImpostorCount, tc.ids, tc.gen, tc.imp)
		}
		check := func(what string, got *float64, want float64) {
			switch {
			case math.IsNaN(want) && got != nil:
				t.Errorf("%s: %s %v, want n/a", tc.group, what, *got)
			case !math.IsNaN(want) && (got == nil || math.Abs(*got-want) > 1e-12):
				t.Errorf("%s: %s %v, want %v", tc.group, what, got, want)
			}
		}
		check("FNMR@0.5", g.At[0].FNMR, tc.fnmr)
		check("FMR@0.5", g.At[0].FMR, tc.fmr)
		check("FNMR@0.95", g.At[1].FNMR, tc.fnmrStrict)
		if g.At[0].Threshold != 0.5 || g.At[1].Threshold != 0.95 {
			t.Errorf("%s: thresholds %v", tc.group, g.At)
		}
	}
	if g := groups["subset/x"]; g.At[1].FMR == nil || *g.At[1].FMR != 0 || g.EER == nil || len(g.DET) == 0 {
		t.Errorf("subset/x at 0.95: FMR %v, EER %v, %d DET points", g.At[1].FMR, g.EER, len(g.DET))
	}
	if g := groups["subset/y"]; g.EER != nil || len(g.DET) != 0 {
		t.Errorf("subset/y has no impostors: EER %v, DET %d points, want none", g.EER, len(g.DET))
	}
}

func TestDemographicReportOutput(t *testing.T) {
	d, samples, res := demoFixture()
	r := newReport("verify", grey{}, DataSet{Dirs: []string{"synthetic"}}, "all", res.Genuine, res.Impostor)
	plain, _ := json.Marshal(r)
	if strings.Contains(string(plain), `"demographics"`) || strings.Contains(string(r.Markdown()), "Demographic") {
		t.Error("a report without demographics mentions them")
	}
	r.AddDemographics(d, samples, res)
	// 3,115 impostor pairs measure FMR 0.1%: that threshold, then the default.
	if n := len(r.Demographics.Thresholds); n != 2 || !strings.Contains(r.Demographics.Thresholds[0].Name, "0.10%") {
		t.Fatalf("thresholds %+v", r.Demographics.Thresholds)
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "det-subset.png"))
	checkPNG(t, filepath.Join(dir, "det-age.png"))
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"## Demographic groups", "both identities are in it", "### subset", "| unknown | 3 | 3 | 15 |", "n/a (15 pairs)", "![DET by subset](det-subset.png)", "No identity of the data has a label for: gender."} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	var back map[string]any
	readJSON(t, filepath.Join(dir, "report.json"), &back)
	if _, ok := back["demographics"].(map[string]any); !ok {
		t.Error("report.json has no demographics section")
	}
}
