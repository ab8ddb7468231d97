package cluster

// Scatter-gather identification across partitions (issue 15, design
// scale-out.md point 5). A coordinator publishes one request on
// SearchSubject with a unique inbox as its reply subject; every partition's
// replicas subscribe with the queue group "part-<p>", so exactly one live
// replica of each partition answers; the coordinator merges the P top-K
// lists, re-applies the threshold and reports its coverage.
//
// Wire format (version SearchWireVersion, JSON, one message each way):
//
//	request  {"v":1, "epoch":E, "template":<base64 templates.Template>,
//	          "top_k":K, "watchlists":[…], "threshold":t?, "max_fmr":f?,
//	          "token":{"shard":s,"seq":q}?, "timeout_ms":ms?}
//	reply    {"v":1, "partition":p, "epoch":E, "searched":n,
//	          "unknown_watchlists":[…]?, "known_watchlists":[…]?,
//	          "candidates":[{"subject_id","name","watchlists","score",
//	                         "face","face_fmr","has_face","face_algorithm",
//	                         "fused_score","fused_fmr"}…],
//	          "decision":{"fused","threshold","algorithm_thresholds","max_fmr"},
//	          "error":"…", "kind":"…"}
//
// A replica searches a watchlist it does not know as an empty one and
// names it in "unknown_watchlists" (with its own lists in
// "known_watchlists"): a list may be another partition's. The coordinator
// refuses a list every partition that answered calls unknown, as a single
// engine does (engine.UnknownWatchlistsError, NotFound).
//
// A reply with "error" set carries no candidates; "kind" is the text of one
// of engine.Kinds ("invalid request", "unavailable", …) or "stale epoch". A
// replica whose partition-map epoch differs from the request's refuses it
// (kind "stale epoch") rather than answer from a partition layout the
// coordinator does not hold. A request of another version, or one that does
// not decode, is answered with an error and logged; it never stops the
// responder.
//
// Read-your-writes: a request may carry a consistency token (token.go). The
// responders of the partition owning the token's shard first wait, bounded
// by the request's timeout, until their replica has applied the shard up to
// the token's sequence (ServeOptions.Wait); a wait that does not end in time
// is answered with kind "unavailable" naming the token, never with a stale
// answer. "timeout_ms" is the coordinator's remaining time less a margin
// (replyBudget), so that such an answer arrives before it stops waiting. Responders of other partitions ignore the token: the write cannot
// concern their shards.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bordermatch/bordermatch/engine"
	"github.com/bordermatch/bordermatch/templates"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

const (
	// SearchSubject is the prefix of face identifications: partition p's
	// replicas answer SearchSubject.<p> (PartitionSearchSubject), so that
	// a partition without a live replica is known at once (NATS answers
	// "no responders") instead of after the search timeout.
	SearchSubject = "bm.search.face"
	// SearchWireVersion is the version of the search request and reply.
	SearchWireVersion = 1
	// DefaultSearchTimeout bounds a coordinator's wait for the partitions
	// when its context has no earlier deadline.
	DefaultSearchTimeout = 5 * time.Second
	// kindStaleEpoch is the reply kind of a request of another epoch.
	kindStaleEpoch = "stale epoch"
)

// ErrStaleEpoch: a replica's partition-map epoch is not the request's. The
// coordinator's error wraps it together with engine.ErrUnavailable.
var ErrStaleEpoch = errors.New("partition map epoch mismatch")

// PartitionSearchSubject is the subject partition p's replicas answer
// identifications on.
func PartitionSearchSubject(p int) string { return SearchSubject + "." + strconv.Itoa(p) }

// QueueGroup is the queue group of partition p's replicas.
func QueueGroup(p int) string { return "part-" + strconv.Itoa(p) }

type searchRequest struct {
	V          int        `json:"v"`
	Epoch      uint64     `json:"epoch"`
	Template   []byte     `json:"template"`
	TopK       int        `json:"top_k,omitempty"`
	Watchlists []string   `json:"watchlists,omitempty"`
	Threshold  *float32   `json:"threshold,omitempty"`
	MaxFMR     *float64   `json:"max_fmr,omitempty"`
	Token      *wireToken `json:"token,omitempty"`
	// TimeoutMS is the coordinator's remaining wait, which bounds the
	// replica's (a token's wait included); 0: the replica's own default.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

type wireToken struct {
	Shard int    `json:"shard"`
	Seq   uint64 `json:"seq"`
}

type wireCandidate struct {
	SubjectID     string   `json:"subject_id"`
	Name          string   `json:"name,omitempty"`
	Watchlists    []string `json:"watchlists,omitempty"`
	Score         float32  `json:"score"`
	Face          float32  `json:"face"`
	FaceFMR       float64  `json:"face_fmr"`
	HasFace       bool     `json:"has_face"`
	FaceAlgorithm string   `json:"face_algorithm,omitempty"`
	FusedScore    float64  `json:"fused_score"`
	FusedFMR      float64  `json:"fused_fmr"`
	FaceLR        float64  `json:"face_lr,omitempty"`
	DecisionFMR   float64  `json:"decision_fmr,omitempty"`
}

type wireDecision struct {
	Fused      bool               `json:"fused"`
	Threshold  float32            `json:"threshold"`
	Thresholds map[string]float32 `json:"algorithm_thresholds,omitempty"`
	MaxFMR     float64            `json:"max_fmr"`
	// Rule is the partition's engine.Decision.Rule; the merged answer
	// states that of the strictest partition.
	Rule string `json:"rule,omitempty"`
}

// pass re-applies the decision to a candidate, as engine.Decision does.
func (d wireDecision) pass(w wireCandidate) bool {
	if d.Fused {
		return w.FusedFMR <= d.MaxFMR
	}
	thr, ok := d.Thresholds[w.FaceAlgorithm]
	if !ok {
		thr = d.Threshold
	}
	return w.Face >= thr
}

type searchReply struct {
	V          int             `json:"v"`
	Partition  int             `json:"partition"`
	Epoch      uint64          `json:"epoch"`
	Searched   int64           `json:"searched"`
	Candidates []wireCandidate `json:"candidates,omitempty"`
	Decision   wireDecision    `json:"decision"`
	Error      string          `json:"error,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	// Unknown are the request's watchlists this partition has nobody on;
	// Known, sent with them, the lists it has.
	Unknown []string `json:"unknown_watchlists,omitempty"`
	Known   []string `json:"known_watchlists,omitempty"`
	// SearchMicros is the partition's own search, in its process.
	SearchMicros int64 `json:"search_us,omitempty"`
}

// Searcher is what a Responder searches: *engine.Engine.
type Searcher interface {
	Identify(ctx context.Context, req engine.IdentifyRequest) (engine.IdentifyResult, error)
	UnknownWatchlists(lists []string) ([]string, error)
	KnownWatchlists() []string
}

// Responder answers one partition's share of the cluster's identifications.
type Responder struct {
	sub       *nats.Subscription
	eng       Searcher
	partition int
	epoch     atomic.Uint64
	log       zerolog.Logger
	timeout   time.Duration
	sem       chan struct{}
	wg        sync.WaitGroup
	opt       ServeOptions
}

// ServeOptions are a Responder's optional parts.
type ServeOptions struct {
	// Wait waits until this node has applied shard up to seq, or ctx ends
	// (Replica.WaitApplied). Nil: tokens are not waited for.
	Wait func(ctx context.Context, shard int, seq uint64) error
	// Owns reports whether this node applies shard; a token of a shard it
	// does not own is not waited for. Nil: owns none (tokens ignored).
	Owns func(shard int) bool
}

// Serve subscribes eng to SearchSubject in the queue group of
// cfg.Partition, answering requests of the given partition-map epoch.
// Requests are searched concurrently (at most 4×GOMAXPROCS at once, so the
// engine's coalescer can batch them); Close stops it.
func Serve(nc *nats.Conn, cfg Config, eng Searcher, epoch uint64) (*Responder, error) {
	return ServeWith(nc, cfg, eng, epoch, ServeOptions{})
}

// ServeWith is Serve with options: with Wait and Owns set, a request's
// consistency token of an owned shard is waited for before searching.
func ServeWith(nc *nats.Conn, cfg Config, eng Searcher, epoch uint64, opt ServeOptions) (*Responder, error) {
	if cfg.Partition < 0 || cfg.Partitions < 1 || cfg.Partition >= cfg.Partitions {
		return nil, fmt.Errorf("cluster: serve: partition %d of %d", cfg.Partition, cfg.Partitions)
	}
	r := &Responder{
		eng:       eng,
		partition: cfg.Partition,
		log:       cfg.Logger.With().Str("component", "search").Int("partition", cfg.Partition).Logger(),
		timeout:   DefaultSearchTimeout,
		sem:       make(chan struct{}, 4*runtime.GOMAXPROCS(0)),
		opt:       opt,
	}
	r.epoch.Store(epoch)
	sub, err := nc.QueueSubscribe(PartitionSearchSubject(cfg.Partition), QueueGroup(cfg.Partition), r.handle)
	if err != nil {
		return nil, fmt.Errorf("cluster: serve: %w", err)
	}
	r.sub = sub
	return r, nil
}

// SetEpoch changes the partition-map epoch the responder answers.
func (r *Responder) SetEpoch(e uint64) { r.epoch.Store(e) }

// Close unsubscribes and waits for the searches under way.
func (r *Responder) Close() error {
	err := r.sub.Unsubscribe()
	r.wg.Wait()
	return err
}

func (r *Responder) handle(m *nats.Msg) {
	r.sem <- struct{}{}
	r.wg.Add(1)
	go func() {
		defer func() { <-r.sem; r.wg.Done() }()
		r.answer(m)
	}()
}

func (r *Responder) answer(m *nats.Msg) {
	rep := searchReply{V: SearchWireVersion, Partition: r.partition, Epoch: r.epoch.Load()}
	fail := func(kind string, err error) {
		rep.Kind, rep.Error = kind, err.Error()
	}
	var req searchRequest
	switch err := json.Unmarshal(m.Data, &req); {
	case err != nil:
		r.log.Warn().Err(err).Int("bytes", len(m.Data)).Msg("search request does not decode")
		fail(engine.ErrInvalid.Error(), fmt.Errorf("search request: %w", err))
	case req.V != SearchWireVersion:
		r.log.Warn().Int("version", req.V).Msg("search request of another version")
		fail(engine.ErrInvalid.Error(), fmt.Errorf("search request version %d, this replica speaks %d", req.V, SearchWireVersion))
	case req.Epoch != rep.Epoch:
		fail(kindStaleEpoch, fmt.Errorf("%w: request epoch %d, partition %d is at %d", ErrStaleEpoch, req.Epoch, r.partition, rep.Epoch))
	case req.Token != nil && (req.Token.Seq == 0 || req.Token.Shard < 0 || req.Token.Shard >= MaxShards):
		fail(engine.ErrInvalid.Error(), fmt.Errorf("search request: token shard %d seq %d", req.Token.Shard, req.Token.Seq))
	default:
		timeout := r.timeout
		if d := time.Duration(req.TimeoutMS) * time.Millisecond; d > 0 && d < timeout {
			timeout = d
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if t := req.Token; t != nil && r.opt.Wait != nil && r.opt.Owns != nil && r.opt.Owns(t.Shard) {
			if err := r.opt.Wait(ctx, t.Shard, t.Seq); err != nil {
				cancel()
				tok := Token{Shard: t.Shard, Seq: t.Seq}
				fail(engine.ErrUnavailable.Error(), fmt.Errorf("%w: partition %d has not applied token %s: %v",
					engine.ErrUnavailable, r.partition, tok, err))
				break
			}
		}
		t0 := time.Now()
		unknown, err := r.eng.UnknownWatchlists(req.Watchlists)
		if err != nil {
			cancel()
			fail(kindText(err), err)
			break
		}
		if len(unknown) > 0 {
			rep.Unknown, rep.Known = unknown, r.eng.KnownWatchlists()
		}
		res, err := r.eng.Identify(ctx, engine.IdentifyRequest{
			Probe:     engine.Probe{Sample: &engine.Sample{Template: req.Template}},
			Query:     engine.Query{TopK: req.TopK, Watchlists: req.Watchlists, Threshold: req.Threshold, MaxFMR: req.MaxFMR},
			Partition: true,
		})
		rep.SearchMicros = time.Since(t0).Microseconds()
		cancel()
		if err != nil {
			fail(kindText(err), err)
			break
		}
		rep.Searched = res.Searched
		d := res.Decision
		rep.Decision = wireDecision{Fused: d.Fused, Threshold: d.Threshold, MaxFMR: d.MaxFMR, Rule: d.Rule}
		if len(d.AlgorithmThresholds) > 0 {
			rep.Decision.Thresholds = make(map[string]float32, len(d.AlgorithmThresholds))
			for a, t := range d.AlgorithmThresholds {
				rep.Decision.Thresholds[a.String()] = t
			}
		}
		rep.Candidates = make([]wireCandidate, len(res.Candidates))
		for i, c := range res.Candidates {
			w := wireCandidate{SubjectID: c.SubjectID, Name: c.Name, Watchlists: c.Watchlists, Score: c.Score,
				Face: c.Face, FaceFMR: c.FaceFMR, HasFace: c.HasFace, FusedScore: c.FusedScore, FusedFMR: c.FusedFMR,
				FaceLR: c.FaceLR, DecisionFMR: c.DecisionFMR}
			if c.HasFace {
				w.FaceAlgorithm = c.FaceAlgorithm.String()
			}
			rep.Candidates[i] = w
		}
	}
	b, err := json.Marshal(rep)
	if err != nil { // cannot happen: plain fields only
		r.log.Error().Err(err).Msg("search reply does not encode")
		return
	}
	if m.Reply == "" {
		return
	}
	if err := m.Respond(b); err != nil {
		r.log.Warn().Err(err).Msg("search reply not sent")
	}
}

// kindText is the wire name of an engine error's kind.
func kindText(err error) string {
	for _, k := range engine.Kinds {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return engine.ErrInternal.Error()
}

// kindError is the engine kind a wire name names (ErrInternal if none).
func kindError(kind string) error {
	for _, k := range engine.Kinds {
		if k.Error() == kind {
			return k
		}
	}
	return engine.ErrInternal
}

// Coordinator sends identifications to every partition and merges them.
type Coordinator struct {
	NC *nats.Conn
	// Partitions is the number of partitions that must answer.
	Partitions int
	// Epoch is the partition-map epoch requests carry.
	Epoch uint64
	// Timeout bounds the wait when the context has no earlier deadline
	// (0: DefaultSearchTimeout).
	Timeout time.Duration
}

// SearchRequest is one cluster-wide identification by a face template.
type SearchRequest struct {
	// Template is an encoded templates.Template (MarshalBinary).
	Template []byte
	engine.Query
	// AllowPartial returns the merged answer of the partitions that did
	// answer (Result.Partial) instead of an unavailable error.
	AllowPartial bool
	// Token, when set, is the client's last write: the partition owning
	// its shard answers only once it has applied it (read-your-writes).
	Token Token
}

// Coverage is how many partitions answered of how many.
type Coverage struct {
	Answered, Total int
}

// Result is a merged identification.
type Result struct {
	// Candidates are the merged top-K, best first (ties by subject id),
	// ranked 1…; Scores carries the face evidence only.
	Candidates []engine.Candidate
	// Searched sums the templates the partitions searched.
	Searched int64
	Coverage Coverage
	// Partial: some partition did not answer (AllowPartial); Missing
	// names them, in order.
	Partial bool
	Missing []int
	// Rule is the decision rule of the merged answer (engine.Decision.Rule
	// of the strictest partition).
	Rule string
	// Slowest is the longest search a partition reported taking in its
	// own process: the merged latency minus it is the coordinator's cost
	// (NATS both ways, decoding, merging).
	Slowest time.Duration
}

// Identify asks every partition and merges their answers. A partition that
// does not answer before the deadline, or answers with an error, makes it
// fail with an error wrapping engine.ErrUnavailable (and ErrStaleEpoch when
// a replica refused the epoch) unless AllowPartial; an invalid request is
// refused whatever AllowPartial says.
func (c *Coordinator) Identify(ctx context.Context, req SearchRequest) (Result, error) {
	if c.Partitions < 1 {
		return Result{}, fmt.Errorf("%w: coordinator has no partitions", engine.ErrInternal)
	}
	q := req.Query
	if err := q.Validate(); err != nil {
		return Result{}, err
	}
	var t templates.Template
	if err := t.UnmarshalBinary(req.Template); err != nil {
		return Result{}, fmt.Errorf("%w: probe template: %v", engine.ErrInvalid, err)
	}
	sr := searchRequest{V: SearchWireVersion, Epoch: c.Epoch, Template: req.Template,
		TopK: q.TopK, Watchlists: q.Watchlists, Threshold: q.Threshold, MaxFMR: q.MaxFMR}
	if !req.Token.IsZero() {
		if req.Token.Shard < 0 || req.Token.Shard >= MaxShards {
			return Result{}, fmt.Errorf("%w: token shard %d, want 0..%d", engine.ErrInvalid, req.Token.Shard, MaxShards-1)
		}
		sr.Token = &wireToken{Shard: req.Token.Shard, Seq: req.Token.Seq}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultSearchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		sr.TimeoutMS = replyBudget(dl).Milliseconds()
	}
	body, err := json.Marshal(sr)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", engine.ErrInternal, err)
	}

	// One request per partition, each with its own reply subject, so that
	// NATS's "no responders" names the partition it is about.
	inbox := c.NC.NewRespInbox()
	ch := make(chan *nats.Msg, 4*c.Partitions)
	sub, err := c.NC.ChanSubscribe(inbox+".*", ch)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	defer sub.Unsubscribe()
	for p := range c.Partitions {
		m := &nats.Msg{Subject: PartitionSearchSubject(p), Reply: inbox + "." + strconv.Itoa(p), Data: body}
		if err := c.NC.PublishMsg(m); err != nil {
			return Result{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
	}

	replies := make(map[int]searchReply, c.Partitions)
	failed := map[int]searchReply{}
	noResponders := map[int]bool{}
gather:
	for len(replies)+len(failed)+len(noResponders) < c.Partitions {
		select {
		case m := <-ch:
			if m.Header.Get("Status") == "503" { // no live replica of the partition
				p, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
				if err == nil && p >= 0 && p < c.Partitions {
					if _, ok := replies[p]; !ok {
						noResponders[p] = true
					}
				}
				continue
			}
			var rep searchReply
			if err := json.Unmarshal(m.Data, &rep); err != nil || rep.V != SearchWireVersion ||
				rep.Partition < 0 || rep.Partition >= c.Partitions {
				continue // not a reply this coordinator can read: the partition stays missing
			}
			if _, dup := replies[rep.Partition]; dup {
				continue
			}
			if rep.Error != "" {
				if rep.Kind == engine.ErrInvalid.Error() {
					return Result{}, fmt.Errorf("%w: partition %d: %s", engine.ErrInvalid, rep.Partition, rep.Error)
				}
				failed[rep.Partition] = rep
				continue
			}
			delete(failed, rep.Partition)
			replies[rep.Partition] = rep
		case <-ctx.Done():
			break gather
		}
	}

	res := Result{Coverage: Coverage{Answered: len(replies), Total: c.Partitions}}
	for p := 0; p < c.Partitions; p++ {
		if _, ok := replies[p]; !ok {
			res.Missing = append(res.Missing, p)
		}
	}
	if len(res.Missing) > 0 && !req.AllowPartial {
		return Result{}, missingError(res.Missing, failed, noResponders, ctx.Err())
	}
	res.Partial = len(res.Missing) > 0
	if err := unknownLists(q.Watchlists, replies, res.Missing); err != nil {
		return Result{}, err
	}
	merge(&res, replies, q.TopK)
	return res, nil
}

// unknownLists refuses the watchlists that every partition that answered
// has nobody on, naming the lists any of them has. A partition that did not
// answer (AllowPartial) may have them: the error says so, but still fails
// closed rather than answer "no hit" from a list nobody could search.
func unknownLists(lists []string, replies map[int]searchReply, missing []int) error {
	if len(lists) == 0 || len(replies) == 0 {
		return nil
	}
	var unknown []string
	known := map[string]bool{}
	for _, l := range lists {
		everywhere := true
		for _, rep := range replies {
			if !slices.Contains(rep.Unknown, l) {
				everywhere = false
				break
			}
		}
		if everywhere && !slices.Contains(unknown, l) {
			unknown = append(unknown, l)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	for _, rep := range replies {
		for _, k := range rep.Known {
			known[k] = true
		}
	}
	err := &engine.UnknownWatchlistsError{Unknown: unknown, Known: slices.Sorted(maps.Keys(known))}
	if len(missing) > 0 {
		return fmt.Errorf("%w (of the partitions that answered; %v did not)", err, missing)
	}
	return err
}

// missingError explains why partitions are missing.
func missingError(missing []int, failed map[int]searchReply, noResponders map[int]bool, ctxErr error) error {
	stale := false
	why := ""
	for _, p := range missing {
		if rep, ok := failed[p]; ok {
			why += fmt.Sprintf("; partition %d: %s", p, rep.Error)
			stale = stale || rep.Kind == kindStaleEpoch
		} else if noResponders[p] {
			why += fmt.Sprintf("; partition %d: no live replica", p)
		} else {
			why += fmt.Sprintf("; partition %d: no answer (%v)", p, ctxErr)
		}
	}
	if stale {
		return fmt.Errorf("%w: %w: %d partitions of the search missing%s", engine.ErrUnavailable, ErrStaleEpoch, len(missing), why)
	}
	return fmt.Errorf("%w: %d partitions of the search missing%s", engine.ErrUnavailable, len(missing), why)
}

// merge keeps the best k of the partitions' candidates that pass the
// strictest of their decisions (the threshold is re-applied: a replica of
// another default cannot let a weaker candidate in), best first, ties by
// subject id.
func merge(res *Result, replies map[int]searchReply, k int) {
	var d wireDecision
	first := true
	for _, rep := range replies {
		res.Searched += rep.Searched
		res.Slowest = max(res.Slowest, time.Duration(rep.SearchMicros)*time.Microsecond)
		if first {
			d, first = rep.Decision, false
			d.Thresholds = maps.Clone(d.Thresholds)
			if d.Thresholds == nil {
				d.Thresholds = map[string]float32{}
			}
			continue
		}
		if rep.Decision.Threshold > d.Threshold || rep.Decision.MaxFMR < d.MaxFMR {
			d.Rule = rep.Decision.Rule
		}
		d.Threshold = max(d.Threshold, rep.Decision.Threshold)
		d.MaxFMR = min(d.MaxFMR, rep.Decision.MaxFMR)
		for a, t := range rep.Decision.Thresholds {
			if u, ok := d.Thresholds[a]; !ok || t > u {
				d.Thresholds[a] = t
			}
		}
	}
	// A subject is in one partition; were it in two (a replica answering
	// from a shard moved away), it is listed once, with its best score.
	best := map[string]int{}
	var all []wireCandidate
	for _, rep := range replies {
		for _, w := range rep.Candidates {
			if !d.pass(w) {
				continue
			}
			if i, ok := best[w.SubjectID]; ok {
				if w.Score > all[i].Score {
					all[i] = w
				}
				continue
			}
			best[w.SubjectID] = len(all)
			all = append(all, w)
		}
	}
	slices.SortFunc(all, func(a, b wireCandidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.SubjectID, b.SubjectID)
	})
	if len(all) > k {
		all = all[:k]
	}
	res.Candidates = make([]engine.Candidate, len(all))
	for i, w := range all {
		res.Candidates[i] = engine.Candidate{Rank: i + 1, SubjectID: w.SubjectID, Name: w.Name, Watchlists: w.Watchlists,
			Score: w.Score, Scores: engine.Scores{Face: w.Face, FaceFMR: w.FaceFMR, HasFace: w.HasFace,
				FaceAlgorithm: algorithmOf(w.FaceAlgorithm), FusedScore: w.FusedScore, FusedFMR: w.FusedFMR, FaceLR: w.FaceLR},
			DecisionFMR: w.DecisionFMR}
	}
	res.Rule = d.Rule
}

// algorithmOf reads an Algorithm's String form, "id/vN" (zero if it is not).
func algorithmOf(s string) templates.Algorithm {
	i := strings.LastIndex(s, "/v")
	if i <= 0 {
		return templates.Algorithm{}
	}
	v, err := strconv.ParseUint(s[i+2:], 10, 16)
	if err != nil {
		return templates.Algorithm{}
	}
	return templates.Algorithm{ID: s[:i], Version: uint16(v)}
}
