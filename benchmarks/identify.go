package benchmarks

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bordermatch/bordermatch/benchmarks/errrate"
)

// IdentifyOptions configure EvaluateIdentification.
type IdentifyOptions struct {
	RunOptions
	// Distractors are extra identities enrolled (first sample each) but
	// never searched for: they make the gallery larger and harder, as a
	// real watchlist is larger than any labeled set.
	Distractors []Sample
	// MaxRank is the longest candidate list looked at (CMC); 0 means 20.
	MaxRank int
	// FNIRRank is the rank at which a mate must be returned, at or above
	// the threshold, to count as found for FNIR; 0 means 1.
	FNIRRank int
}

// IdentifyResult is the outcome of a 1:N evaluation.
type IdentifyResult struct {
	Samples    int // labeled samples, distractors not included
	Identities int // labeled identities
	Enrolled   int // gallery size: enrolled identities, distractors included
	// Distractors is the number of distractor identities enrolled.
	Distractors int
	// FailedToEnrol lists gallery samples that gave no template; the
	// identity is then enrolled from its next sample, if it has one.
	FailedToEnrol []Failure
	// FailedToAcquire lists probes that gave no template: their mated
	// searches miss and their non-mated searches return nobody.
	FailedToAcquire []Failure
	// Mated has one outcome per probe whose identity is enrolled, searched
	// against the whole gallery; NonMated one per probe, searched against
	// the gallery without its identity (see EvaluateIdentification).
	Mated, NonMated []errrate.SearchOutcome
	// Genuine and Impostor are the probe-against-gallery comparison scores
	// (mate and non-mates), for score distributions and a 1:1 DET.
	Genuine, Impostor []float64
	// Misses names the mated probes whose best candidate was someone else.
	Misses []string
	// ExtractTimes is every extraction's time (labeled samples and
	// distractors), on RunOptions.Workers workers at once.
	ExtractTimes []time.Duration
}

// EvaluateIdentification runs a closed-set and an open-set 1:N evaluation:
// the first usable sample of each identity is enrolled, together with the
// distractors, and every other sample of an enrolled identity is a probe.
//
// Each probe is searched twice, as NIST's FRTE evaluations do with
// separate mated and non-mated probe sets: once against the whole gallery
// (a mated search: where does its mate rank, at what score?) and once
// against the gallery without its own identity (a non-mated search: how
// high does the best stranger score?). So every probe serves both FNIR and
// FPIR, and the non-mated gallery is one identity smaller.
//
// Searches are exhaustive (every gallery template scored with
// Modality.Compare, as matchd's exact search does). Ties are broken
// against the mate: a non-mate scoring exactly the mate's score ranks
// ahead of it.
func EvaluateIdentification(ctx context.Context, mod Modality, samples []Sample, opt IdentifyOptions) (IdentifyResult, error) {
	if opt.MaxRank <= 0 {
		opt.MaxRank = 20
	}
	res := IdentifyResult{Samples: len(samples), Identities: Identities(samples)}
	all := append(slices.Clip(samples), opt.Distractors...)
	bar := newProgress(opt.Progress, int64(len(all)), "extracting")
	x, err := extractAll(ctx, mod, all, opt.Workers, bar)
	bar.done()
	if err != nil {
		return res, err
	}
	res.ExtractTimes = x.times

	// The gallery: the first sample of each identity that gave a template.
	type entry struct {
		identity string
		t        Template
	}
	var gallery []entry
	enrolled := map[string]bool{}
	var probes []int
	for i, s := range all {
		distractor := i >= len(samples)
		switch {
		case enrolled[s.Identity]:
			if distractor {
				continue // a distractor's other samples are not used
			}
			probes = append(probes, i)
		case !x.ok(i):
			res.FailedToEnrol = append(res.FailedToEnrol, x.failures[i])
		default:
			if distractor && slices.ContainsFunc(samples, func(l Sample) bool { return l.Identity == s.Identity }) {
				return res, fmt.Errorf("distractor identity %q is also in the data set", s.Identity)
			}
			enrolled[s.Identity] = true
			gallery = append(gallery, entry{s.Identity, x.templates[i]})
			if distractor {
				res.Distractors++
			}
		}
	}
	res.Enrolled = len(gallery)
	if len(probes) == 0 {
		return res, fmt.Errorf("no probes: every identity needs at least two samples, one to enrol and one to search with")
	}
	if len(gallery) < 2 {
		return res, fmt.Errorf("gallery of %d: non-mated searches need at least 2 enrolled identities", len(gallery))
	}

	// Score every probe against the gallery, on all cores; each worker
	// keeps its own outcomes, in probe order within its share.
	type out struct {
		mated, nonMated   errrate.SearchOutcome
		genuine, impostor []float64
		miss              string
	}
	outs := make([]out, len(probes))
	sbar := newProgress(opt.Progress, int64(len(probes)), "searching")
	_, _, err = pairs(ctx, len(probes), opt.Workers, nil, func(pi int, _, _ []float64) ([]float64, []float64) {
		i := probes[pi]
		o := &outs[pi]
		defer sbar.add(1)
		if !x.ok(i) {
			o.mated = errrate.SearchOutcome{Mated: true, MateScore: math.Inf(-1), TopNonMateScore: math.Inf(-1)}
			o.nonMated = errrate.SearchOutcome{MateScore: math.Inf(-1), TopNonMateScore: math.Inf(-1)}
			return nil, nil
		}
		mate, top, topID := math.Inf(-1), math.Inf(-1), ""
		o.impostor = make([]float64, 0, len(gallery)-1)
		for _, g := range gallery {
			s := mod.Compare(x.templates[i], g.t)
			if g.identity == all[i].Identity {
				mate = s
				continue
			}
			o.impostor = append(o.impostor, s)
			if s > top {
				top, topID = s, g.identity
			}
		}
		o.genuine = []float64{mate}
		rank := 1
		for _, s := range o.impostor {
			if s >= mate {
				rank++
			}
		}
		if rank > opt.MaxRank {
			rank = 0 // not on the candidate list
		}
		o.mated = errrate.SearchOutcome{Mated: true, MateRank: rank, MateScore: mate, TopNonMateScore: top}
		o.nonMated = errrate.SearchOutcome{MateScore: math.Inf(-1), TopNonMateScore: top}
		if rank != 1 {
			o.miss = fmt.Sprintf("%s → %s (%.4f; mate %.4f)", all[i].Path, topID, top, mate)
		}
		return nil, nil
	})
	sbar.done()
	if err != nil {
		return res, err
	}
	for pi, i := range probes {
		o := outs[pi]
		if !x.ok(i) {
			res.FailedToAcquire = append(res.FailedToAcquire, x.failures[i])
		}
		res.Mated = append(res.Mated, o.mated)
		res.NonMated = append(res.NonMated, o.nonMated)
		res.Genuine = append(res.Genuine, o.genuine...)
		res.Impostor = append(res.Impostor, o.impostor...)
		if o.miss != "" {
			res.Misses = append(res.Misses, o.miss)
		}
	}
	return res, nil
}

// Searches is every search outcome, mated and non-mated, as the
// identification metrics take them.
func (r IdentifyResult) Searches() []errrate.SearchOutcome {
	return append(slices.Clip(r.Mated), r.NonMated...)
}

// Rank1 is the rank-1 identification rate over the mated searches,
// failures to acquire included as misses.
func (r IdentifyResult) Rank1() float64 {
	if len(r.Mated) == 0 {
		return 0
	}
	return errrate.CMC(r.Mated, 1)[0]
}
