package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Feed keeps a gate's camera open and its recent frames at hand: it opens
// the source in the background (retrying with backoff while it cannot be
// opened, giving up on a source it cannot read as described), reads every
// frame, and holds the newest one and, for a lookback, older ones at
// FeedConfig.KeepFPS a second. Consumers take copies of held frames
// (Clone, Newer) while the reader goes on.
//
// Its methods are safe for concurrent use.
type Feed struct {
	cfg  FeedConfig
	name string // cfg.Source with any password masked

	stop     chan struct{} // closed by Close
	finished chan struct{} // closed when the reader returns
	started  bool

	mu        sync.Mutex
	closed    bool
	src       Source
	state     State // before src is open (or once opening gave up)
	since     time.Time
	lastErr   string
	attempts  int64
	retryIn   time.Duration
	permanent bool
	// latest is the newest frame; ring the older frames kept for the
	// lookback, oldest first, at most KeepFPS a second. Each owns its Mat.
	latest   Frame
	ring     []Frame
	newFrame chan struct{} // closed (and replaced) when a frame arrives or the reader stops
	ended    string        // why the reader stopped, once it did
}

// FeedConfig configures a Feed.
type FeedConfig struct {
	// Source is the description Open takes.
	Source string
	// Options open the source; OnState is the Feed's own (see
	// FeedConfig.OnState).
	Options Options
	// Lookback is how long frames are kept; 0 keeps only the newest.
	Lookback time.Duration
	// KeepFPS is how many frames a second are kept for the lookback
	// (0: DefaultKeepFPS).
	KeepFPS int
	// RetryMin and RetryMax bound the wait between attempts to open the
	// source, which doubles from min to max (0: DefaultRetryMin,
	// DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// OnState, when set, is called with the feed's status whenever its
	// state changes: an open attempt starts or fails, the source connects,
	// reconnects, fails or ends, the reader stops. It is called from the
	// feed's goroutines, without the feed's lock held, and must not block.
	OnState func(FeedStatus)
	// OnFrame, when set, sees every frame's seq and read time as it
	// arrives, from the reader goroutine (latency measurements).
	OnFrame func(seq uint64, at time.Time)
}

// FeedStatus is a snapshot of a Feed.
type FeedStatus struct {
	// State is the source's state; before the source is open, Connecting
	// (or Failed once the feed gave up opening it).
	State State
	// Since is when State was entered.
	Since time.Time
	// Opened reports that the source was opened (it may have failed or
	// ended since).
	Opened bool
	// Permanent reports that the source cannot work as described (an
	// unsupported scheme): the feed does not retry it.
	Permanent bool
	// Attempts counts the attempts to open the source.
	Attempts int64
	// RetryIn is the wait before the next attempt to open the source,
	// when one failed and the feed is waiting.
	RetryIn time.Duration
	// LastError is the last failure, without the source's password.
	LastError string
	// Ended says why the reader stopped, once it did (a finite source read
	// to its end, a source that gave up); LastError then says the same.
	Ended string
	// Counters are the source's, once it is open.
	Counters
	// Latest is the newest frame's seq and read time; 0 before any frame.
	Latest     uint64
	LatestTime time.Time
	// Held counts the frames held (the newest and the lookback's).
	Held int
}

// ErrStopped is returned by Newer once the feed's reader has stopped (the
// error wrapping it says why) and no newer frame can come.
var ErrStopped = errors.New("capture: feed stopped")

// Defaults of FeedConfig.
const (
	// DefaultKeepFPS: a traveller does not change pose faster than five
	// frames a second, and each kept frame of a 1080p camera holds 6 MB.
	DefaultKeepFPS = 5
	// DefaultRetryMin and DefaultRetryMax bound the wait between attempts
	// to open a source that could not be opened (a camera not yet up, a
	// stream not reachable).
	DefaultRetryMin = time.Second
	DefaultRetryMax = 30 * time.Second
)

// NewFeed sets up a feed; Start opens its source.
func NewFeed(cfg FeedConfig) *Feed {
	if cfg.KeepFPS <= 0 {
		cfg.KeepFPS = DefaultKeepFPS
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	return &Feed{
		cfg:      cfg,
		name:     redact(cfg.Source),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
		state:    StateConnecting,
		since:    time.Now(),
		newFrame: make(chan struct{}),
	}
}

// Name is the source with any password masked.
func (f *Feed) Name() string { return f.name }

// Start opens the source and reads it in a goroutine of the feed's own,
// until Close.
func (f *Feed) Start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.closed {
		return
	}
	f.started = true
	go func() {
		defer close(f.finished)
		f.run()
	}()
}

// Close stops the reader, waits for it and frees every frame held. Newer
// calls waiting return ErrClosed.
func (f *Feed) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	started := f.started
	src := f.src
	close(f.stop)
	f.wake()
	f.mu.Unlock()
	if src != nil {
		src.Close()
	}
	if started {
		<-f.finished
	}
	f.mu.Lock()
	for i := range f.ring {
		f.ring[i].Close()
	}
	f.ring = nil
	f.latest.Close()
	f.latest = Frame{}
	f.mu.Unlock()
}

// wake tells Newer's waiters that something changed. Called with f.mu held.
func (f *Feed) wake() {
	close(f.newFrame)
	f.newFrame = make(chan struct{})
}

// Status reports the feed.
func (f *Feed) Status() FeedStatus {
	f.mu.Lock()
	src := f.src
	f.mu.Unlock()
	var st *Status
	if src != nil {
		s := src.Status()
		st = &s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked(st)
}

// statusLocked builds the status from the feed's fields and, once the
// source is open, its status st.
func (f *Feed) statusLocked(st *Status) FeedStatus {
	s := FeedStatus{
		State: f.state, Since: f.since, Permanent: f.permanent, Attempts: f.attempts,
		RetryIn: f.retryIn, LastError: f.lastErr, Ended: f.ended,
	}
	if st != nil {
		s.Opened = true
		s.State, s.Since, s.Counters = st.State, st.Since, st.Counters
		s.LastError = scrub(st.LastError, f.cfg.Source)
		if f.ended != "" {
			s.LastError = f.ended
		}
	}
	if f.latest.Mat.Ptr() != nil {
		s.Latest, s.LatestTime = f.latest.Seq, f.latest.Time
		s.Held = len(f.ring) + 1
	}
	return s
}

// report calls OnState with the status built from st (nil: the feed's own
// state). Called without f.mu.
func (f *Feed) report(st *Status) {
	if f.cfg.OnState == nil {
		return
	}
	f.mu.Lock()
	s := f.statusLocked(st)
	f.mu.Unlock()
	f.cfg.OnState(s)
}

// run opens the source, retrying with backoff unless it cannot work as
// described, and reads it until Close or the source ends.
func (f *Feed) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	src := f.open(ctx)
	if src == nil {
		return
	}
	for {
		fr, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			why := scrub(err.Error(), f.cfg.Source)
			if errors.Is(err, io.EOF) {
				why = "the source was read to its end (loop: false)"
			}
			f.mu.Lock()
			f.ended = why
			f.wake()
			f.mu.Unlock()
			st := src.Status()
			f.report(&st)
			return
		}
		f.keep(fr)
	}
}

// open opens the source, retrying until it opens, it cannot work as
// described, or ctx ends; it returns nil in the latter two cases.
func (f *Feed) open(ctx context.Context) Source {
	opt := f.cfg.Options
	opt.OnState = func(st Status) {
		// A failed attempt's Failed is the feed's to report (it retries).
		f.mu.Lock()
		forward := f.src != nil || st.State == StateConnected
		f.mu.Unlock()
		if forward {
			f.report(&st)
		}
	}
	backoff := f.cfg.RetryMin
	for {
		f.mu.Lock()
		f.state, f.since, f.retryIn = StateConnecting, time.Now(), 0
		f.mu.Unlock()
		f.report(nil)
		s, err := Open(ctx, f.cfg.Source, opt)
		f.mu.Lock()
		if ctx.Err() != nil || f.closed {
			f.mu.Unlock()
			if s != nil {
				s.Close()
			}
			return nil
		}
		f.attempts++
		if err == nil {
			f.src, f.lastErr = s, ""
			f.mu.Unlock()
			return s
		}
		f.lastErr = scrub(err.Error(), f.cfg.Source)
		if errors.Is(err, ErrBadURI) {
			f.permanent = true
			f.state, f.since = StateFailed, time.Now()
			f.ended = f.lastErr
			f.wake()
			f.mu.Unlock()
			f.report(nil)
			return nil
		}
		f.retryIn = backoff
		f.mu.Unlock()
		f.report(nil)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		backoff = min(2*backoff, f.cfg.RetryMax)
	}
}

// keep makes fr the latest frame; the one it replaces goes to the lookback
// ring when the ring's newest is old enough, and frames beyond the
// lookback leave it.
func (f *Feed) keep(fr Frame) {
	if fr.Time.IsZero() {
		fr.Time = time.Now()
	}
	if f.cfg.OnFrame != nil {
		f.cfg.OnFrame(fr.Seq, fr.Time)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		fr.Close()
		return
	}
	every := time.Second / time.Duration(f.cfg.KeepFPS)
	if prev := f.latest; prev.Mat.Ptr() != nil {
		if n := len(f.ring); f.cfg.Lookback > 0 && (n == 0 || prev.Time.Sub(f.ring[n-1].Time) >= every) {
			f.ring = append(f.ring, prev)
		} else {
			prev.Close()
		}
	}
	f.latest = fr
	limit := int(f.cfg.Lookback.Seconds()*float64(f.cfg.KeepFPS)) + 2
	cut := 0
	for cut < len(f.ring) && (len(f.ring)-cut > limit || fr.Time.Sub(f.ring[cut].Time) > f.cfg.Lookback) {
		f.ring[cut].Close()
		cut++
	}
	if cut > 0 {
		n := copy(f.ring, f.ring[cut:])
		clear(f.ring[n:])
		f.ring = f.ring[:n]
	}
	f.wake()
}

// Lookback returns the seqs of the frames held that were read at or after
// since, newest first, and the seq of the newest frame (0 before any).
func (f *Feed) Lookback(since time.Time) (seqs []uint64, latest uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.latest.Mat.Ptr() == nil {
		return nil, 0
	}
	if !f.latest.Time.Before(since) {
		seqs = append(seqs, f.latest.Seq)
	}
	for i := len(f.ring) - 1; i >= 0; i-- {
		if !f.ring[i].Time.Before(since) {
			seqs = append(seqs, f.ring[i].Seq)
		}
	}
	slices.Sort(seqs)
	slices.Reverse(seqs)
	return slices.Compact(seqs), f.latest.Seq
}

// Clone returns a copy of the held frame of the given seq (the newest or
// one of the lookback), which the caller closes; false when it is no
// longer (or not yet) held.
func (f *Feed) Clone(seq uint64) (Frame, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var fr *Frame
	if f.latest.Seq == seq && f.latest.Mat.Ptr() != nil {
		fr = &f.latest
	} else if i := slices.IndexFunc(f.ring, func(r Frame) bool { return r.Seq == seq }); i >= 0 {
		fr = &f.ring[i]
	}
	if fr == nil {
		return Frame{}, false
	}
	return Frame{Mat: fr.Mat.Clone(), Seq: fr.Seq, Time: fr.Time}, true
}

// Newer returns a copy of the newest frame once its seq is above after,
// waiting for one if need be; the caller closes it. It fails with ctx's
// error, ErrClosed after Close, or an error wrapping ErrStopped once the
// reader has stopped.
func (f *Feed) Newer(ctx context.Context, after uint64) (Frame, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return Frame{}, ErrClosed
		}
		if l := f.latest; l.Mat.Ptr() != nil && l.Seq > after {
			c := Frame{Mat: l.Mat.Clone(), Seq: l.Seq, Time: l.Time}
			f.mu.Unlock()
			return c, nil
		}
		if f.ended != "" {
			why := f.ended
			f.mu.Unlock()
			return Frame{}, fmt.Errorf("%w: %s", ErrStopped, why)
		}
		next := f.newFrame
		f.mu.Unlock()
		select {
		case <-next:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// scrub removes the password of the source uri from a message: OpenCV's
// errors quote the URL they were given.
func scrub(msg, uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return msg
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, uri, redact(uri))
	return strings.ReplaceAll(msg, ":"+pw+"@", ":xxxxx@")
}
