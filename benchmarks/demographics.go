package benchmarks

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// DemographicsFile is the file in a data set folder that gives each
// identity's demographic labels: tab-separated, a header line whose first
// column is "identity", then one line per identity.
const DemographicsFile = "demographics.tsv"

// DemographicFMR is the global FMR whose threshold the demographic report
// applies to every group, as NIST FRTE's demographic reports fix one
// threshold for all groups.
const DemographicFMR = 0.001

// Unknown is the group of identities with no label, an empty one or one
// saying it is not known ("unknown", "NA", "-").
const Unknown = "unknown"

// notAttributes are demographics.tsv columns that describe a label rather
// than group identities.
var notAttributes = map[string]bool{"identity": true, "label_source": true}

// Demographics are the labels of a data set's identities.
type Demographics struct {
	// Files are the demographics.tsv files read.
	Files []string
	// Attributes are the grouping columns, in file order.
	Attributes []string
	// Labels maps identity → attribute → label, as written in the file.
	Labels map[string]map[string]string
}

// ReadDemographics reads one demographics.tsv. A line with a different
// number of fields from the header, an empty identity or an identity
// given twice is an error naming the file and the line. Blank lines and
// lines starting with # are skipped.
func ReadDemographics(path string) (Demographics, error) {
	d := Demographics{Files: []string{path}, Labels: map[string]map[string]string{}}
	f, err := os.Open(path)
	if err != nil {
		return d, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, "\t")
		if header == nil {
			if fields[0] != "identity" {
				return d, fmt.Errorf("%s:%d: header: first column %q, want identity (tab-separated)", path, line, fields[0])
			}
			header = fields
			for _, c := range header[1:] {
				if !notAttributes[c] {
					d.Attributes = append(d.Attributes, c)
				}
			}
			continue
		}
		if len(fields) != len(header) {
			return d, fmt.Errorf("%s:%d: %d fields, the header has %d (tab-separated)", path, line, len(fields), len(header))
		}
		id := fields[0]
		if id == "" {
			return d, fmt.Errorf("%s:%d: empty identity", path, line)
		}
		if _, ok := d.Labels[id]; ok {
			return d, fmt.Errorf("%s:%d: identity %q given twice", path, line, id)
		}
		l := map[string]string{}
		for i, c := range header[1:] {
			if !notAttributes[c] {
				l[c] = strings.TrimSpace(fields[i+1])
			}
		}
		d.Labels[id] = l
	}
	if err := sc.Err(); err != nil {
		return d, fmt.Errorf("%s: %w", path, err)
	}
	if header == nil {
		return d, fmt.Errorf("%s: empty: want a header line starting with identity", path)
	}
	return d, nil
}

// LoadDemographics reads the demographics.tsv of each data set folder that
// has one, merged. ok is false when none has.
func LoadDemographics(dirs []string) (d Demographics, ok bool, err error) {
	d.Labels = map[string]map[string]string{}
	for _, dir := range dirs {
		path := filepath.Join(dir, DemographicsFile)
		one, err := ReadDemographics(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return d, false, err
		}
		ok = true
		d.Files = append(d.Files, path)
		for _, a := range one.Attributes {
			if !slices.Contains(d.Attributes, a) {
				d.Attributes = append(d.Attributes, a)
			}
		}
		for id, l := range one.Labels {
			if _, dup := d.Labels[id]; dup {
				return d, false, fmt.Errorf("%s: identity %q is labelled in another --data folder's %s too", path, id, DemographicsFile)
			}
			d.Labels[id] = l
		}
	}
	return d, ok, nil
}

// Group is identity's group for attribute: its label, Unknown when it has
// none, and for age a band (0-29, 30-49, 50+).
func (d Demographics) Group(identity, attribute string) string {
	v := d.Labels[identity][attribute]
	switch strings.ToLower(v) {
	case "", "unknown", "na", "n/a", "-":
		return Unknown
	}
	if attribute == "age" {
		a, err := strconv.ParseFloat(v, 64)
		switch {
		case err != nil:
			return v
		case a < 30:
			return "0-29"
		case a < 50:
			return "30-49"
		}
		return "50+"
	}
	return v
}

// DemographicsReport is the demographic part of a verification report:
// FNMR and FMR inside each group, at thresholds set once over all
// comparisons.
type DemographicsReport struct {
	Files []string `json:"files"`
	// Rule says which comparisons count in a group.
	Rule string `json:"rule"`
	// Thresholds are the global thresholds every group is measured at.
	Thresholds []GlobalThreshold `json:"thresholds"`
	// MinImpostors is the fewest impostor pairs a group needs for its FMR
	// to be reported: 3/DemographicFMR (the rule of three).
	MinImpostors int               `json:"min_impostor_pairs"`
	Attributes   []AttributeReport `json:"attributes"`
	Skipped      []string          `json:"skipped_attributes,omitempty"`
}

// GlobalThreshold is a threshold set over all the comparisons of a run.
type GlobalThreshold struct {
	Name      string  `json:"name"`
	Threshold float64 `json:"threshold"`
	// FMR and FNMR are the global rates at Threshold.
	FMR  float64 `json:"fmr"`
	FNMR float64 `json:"fnmr"`
}

// AttributeReport is one attribute's groups.
type AttributeReport struct {
	Attribute string        `json:"attribute"`
	Groups    []GroupReport `json:"groups"`
}

// GroupReport is one group's comparisons and rates.
type GroupReport struct {
	Group         string `json:"group"`
	Identities    int    `json:"identities"`
	GenuineCount  int    `json:"genuine_count"`
	ImpostorCount int    `json:"impostor_count"`
	// At[k] is the group's rates at Thresholds[k]; FMR is null when the
	// group has fewer than MinImpostors impostor pairs, FNMR when it has
	// no genuine pair.
	At  []GroupRates `json:"at"`
	EER *float64     `json:"eer"`
	// DET is the group's curve, thinned; empty without both kinds of pair.
	DET []errrate.DETPoint `json:"det,omitempty"`
}

// GroupRates are a group's rates at one global threshold.
type GroupRates struct {
	Threshold float64  `json:"threshold"`
	FNMR      *float64 `json:"fnmr"`
	FMR       *float64 `json:"fmr"`
}

// DemographicRule is how comparisons are assigned to groups.
const DemographicRule = "A genuine pair counts in its identity's group. An impostor pair counts in a group only when both identities are in it (same-group impostors, as in NIST FRTE's demographic reports); pairs across groups count in no group. Identities without a label are in the group unknown."

// Demographic measures every group of every labelled attribute of d at
// the thresholds ts, on the comparisons of res (samples are the samples
// res was evaluated on). Attributes with no identity of the data labelled
// are listed as skipped.
func Demographic(d Demographics, samples []Sample, res VerifyResult, ts []GlobalThreshold) *DemographicsReport {
	out := &DemographicsReport{Files: d.Files, Rule: DemographicRule, Thresholds: ts,
		MinImpostors: int(math.Ceil(3/DemographicFMR - 1e-9))}
	for _, attr := range d.Attributes {
		group := make([]string, len(samples)) // each sample's group
		ids := map[string]map[string]bool{}   // group → identities
		labelled := false
		for i, s := range samples {
			g := d.Group(s.Identity, attr)
			group[i] = g
			labelled = labelled || g != Unknown
			if ids[g] == nil {
				ids[g] = map[string]bool{}
			}
			ids[g][s.Identity] = true
		}
		if !labelled {
			out.Skipped = append(out.Skipped, attr)
			continue
		}
		gen, imp := map[string][]float64{}, map[string][]float64{}
		for k, p := range res.GenuinePairs {
			g := group[p.A]
			gen[g] = append(gen[g], res.Genuine[k])
		}
		for k, p := range res.ImpostorPairs {
			if g := group[p.A]; g == group[p.B] {
				imp[g] = append(imp[g], res.Impostor[k])
			}
		}
		names := make([]string, 0, len(ids))
		for g := range ids {
			names = append(names, g)
		}
		slices.SortFunc(names, func(a, b string) int { // unknown last
			if (a == Unknown) != (b == Unknown) {
				if a == Unknown {
					return 1
				}
				return -1
			}
			return strings.Compare(a, b)
		})
		ar := AttributeReport{Attribute: attr}
		for _, g := range names {
			gr := GroupReport{Group: g, Identities: len(ids[g]), GenuineCount: len(gen[g]), ImpostorCount: len(imp[g])}
			for _, t := range ts {
				rt := GroupRates{Threshold: t.Threshold}
				if len(gen[g]) > 0 {
					rt.FNMR = num(errrate.FNMR(gen[g], t.Threshold))
				}
				if len(imp[g]) >= out.MinImpostors {
					rt.FMR = num(errrate.FMR(imp[g], t.Threshold))
				}
				gr.At = append(gr.At, rt)
			}
			if eer, _, ok := errrate.EER(gen[g], imp[g]); ok {
				gr.EER = num(eer)
			}
			for _, p := range ThinDET(errrate.DET(gen[g], imp[g]), detPoints) {
				if !math.IsInf(p.Threshold, 0) && !math.IsNaN(p.Threshold) {
					gr.DET = append(gr.DET, p)
				}
			}
			ar.Groups = append(ar.Groups, gr)
		}
		out.Attributes = append(out.Attributes, ar)
	}
	return out
}

// demographicThresholds are the global thresholds of r that the
// demographic report applies: the one at DemographicFMR when measurable,
// and the engine's default.
func demographicThresholds(r Report) []GlobalThreshold {
	var ts []GlobalThreshold
	for _, op := range r.OperatingPoints {
		if op.Target == DemographicFMR && op.Measurable && !math.IsNaN(op.Threshold) {
			ts = append(ts, GlobalThreshold{Name: "FMR " + pct(DemographicFMR) + " over all impostor pairs",
				Threshold: op.Threshold, FMR: op.FMR, FNMR: op.Rate})
		}
	}
	if a := r.AtDefaultThreshold; a != nil && !math.IsNaN(a.Threshold) {
		ts = append(ts, GlobalThreshold{Name: "the engine's default threshold", Threshold: a.Threshold, FMR: a.FMR, FNMR: a.FNMR})
	}
	return ts
}

// AddDemographics adds the demographic report of res to r.
func (r *Report) AddDemographics(d Demographics, samples []Sample, res VerifyResult) {
	r.Demographics = Demographic(d, samples, res, demographicThresholds(*r))
}

// detFile is the name of an attribute's DET plot.
func (a AttributeReport) detFile() string {
	return "det-" + strings.Map(func(c rune) rune {
		if c == '/' || c == ' ' || c == '\\' {
			return '_'
		}
		return c
	}, a.Attribute) + ".png"
}

// plotDemographics draws one DET plot per attribute, a curve per group
// with both genuine and impostor pairs.
func (d *DemographicsReport) plot(dir, title string) error {
	for _, a := range d.Attributes {
		var curves []DETCurve
		for _, g := range a.Groups {
			if len(g.DET) > 0 {
				curves = append(curves, DETCurve{Label: fmt.Sprintf("%s (%d ids)", g.Group, g.Identities), Points: g.DET, EER: deref(g.EER),
					Genuine: g.GenuineCount, Impostor: g.ImpostorCount})
			}
		}
		if len(curves) == 0 {
			continue
		}
		if err := PlotDET(filepath.Join(dir, a.detFile()), "DET by "+a.Attribute+": "+title, curves...); err != nil {
			return fmt.Errorf("%s: %w", a.detFile(), err)
		}
	}
	return nil
}

// markdown writes the demographic section of report.md: a table per
// attribute, with its DET plot when it has one.
func (d *DemographicsReport) markdown(p func(string, ...any), plots bool) {
	p("## Demographic groups\n\n")
	p("Labels from %s. %s\n\n", strings.Join(d.Files, ", "), d.Rule)
	p("Every group is measured at the same global thresholds, set over all comparisons:\n\n")
	for _, t := range d.Thresholds {
		p("- %.4f: %s (there FMR %s, FNMR %s overall)\n", t.Threshold, t.Name, pct(t.FMR), pct(t.FNMR))
	}
	p("\nA group's FMR is n/a below %d same-group impostor pairs (3/%s, the rule of three); its FNMR is n/a without genuine pairs.\n\n", d.MinImpostors, fmtKey(DemographicFMR))
	if len(d.Skipped) > 0 {
		p("No identity of the data has a label for: %s.\n\n", strings.Join(d.Skipped, ", "))
	}
	for _, a := range d.Attributes {
		p("### %s\n\n", a.Attribute)
		p("| group | identities | genuine pairs | impostor pairs |")
		sep := "|---|---:|---:|---:|"
		for _, t := range d.Thresholds {
			p(" FNMR @ %.4f | FMR @ %.4f |", t.Threshold, t.Threshold)
			sep += "---:|---:|"
		}
		p(" EER |\n%s---:|\n", sep)
		for _, g := range a.Groups {
			p("| %s | %d | %d | %d |", g.Group, g.Identities, g.GenuineCount, g.ImpostorCount)
			for _, rt := range g.At {
				fmr := optPct(rt.FMR)
				if rt.FMR == nil {
					fmr = fmt.Sprintf("n/a (%d pairs)", g.ImpostorCount)
				}
				p(" %s | %s |", optPct(rt.FNMR), fmr)
			}
			p(" %s |\n", optPct(g.EER))
		}
		p("\n")
		if plots && slices.ContainsFunc(a.Groups, func(g GroupReport) bool { return len(g.DET) > 0 }) {
			p("![DET by %s](%s)\n\n", a.Attribute, a.detFile())
		}
	}
}
