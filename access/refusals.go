package access

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/status"
)

// Reasons a Guard refuses a call, as Config.Refused and the refusal log
// name them.
const (
	ReasonUnauthenticated  = "unauthenticated"
	ReasonPermissionDenied = "permission_denied"
	ReasonRateLimit        = "rate_limit"
	ReasonInFlight         = "in_flight"
)

// Reasons are all the reasons, for a counter that starts every one at 0.
var Reasons = []string{ReasonUnauthenticated, ReasonPermissionDenied, ReasonRateLimit, ReasonInFlight}

// refusal is the error of a call the Guard refused. It carries its gRPC
// status (so status.Code and the transport see the code as before) and the
// reason, so the server's per-call log can leave refusals to the Guard's
// bounded log (RefusalReason).
type refusal struct {
	st     *status.Status
	reason string
}

func (r *refusal) Error() string              { return r.st.Err().Error() }
func (r *refusal) GRPCStatus() *status.Status { return r.st }

func refuse(err error, reason string) error {
	return &refusal{st: status.Convert(err), reason: reason}
}

// RefusalReason returns the reason a Guard refused the call that returned
// err; false for any other error (the handler's own, or none).
func RefusalReason(err error) (string, bool) {
	var r *refusal
	if errors.As(err, &r) {
		return r.reason, true
	}
	return "", false
}

// RefusalLogLimits bound the warnings of refused calls. A client retrying
// a refused call in a loop must not fill the disk with the same line: in
// each Window, a caller's first PerCaller refusals of one reason are
// logged, and at most PerWindow of all callers together; the rest are
// counted, and when the window ends one summary line per caller and reason
// says how many were left out (at most PerWindow such lines, then one for
// the rest). Config.Refused still sees every refusal.
type RefusalLogLimits struct {
	Window    time.Duration
	PerCaller int
	PerWindow int
}

// DefaultRefusalLogLimits: at most 100 lines of refusals and 101 of
// summaries a minute, whatever the callers do.
var DefaultRefusalLogLimits = RefusalLogLimits{Window: time.Minute, PerCaller: 5, PerWindow: 100}

// refusalLog writes the sampled warnings and the window summaries.
type refusalLog struct {
	lim RefusalLogLimits
	log zerolog.Logger

	mu      sync.Mutex
	start   time.Time // of the current window; zero before the first refusal
	lines   int       // refusal lines written in the window
	callers map[refusalKey]*refusalCount
	timer   *time.Timer
}

type refusalKey struct{ caller, reason string }

type refusalCount struct {
	seen, left int
	// What the summary names the caller by.
	identity, keyID, peer string
}

func newRefusalLog(lim RefusalLogLimits, log zerolog.Logger) *refusalLog {
	d := DefaultRefusalLogLimits
	if lim.Window <= 0 {
		lim.Window = d.Window
	}
	if lim.PerCaller <= 0 {
		lim.PerCaller = d.PerCaller
	}
	if lim.PerWindow <= 0 {
		lim.PerWindow = d.PerWindow
	}
	return &refusalLog{lim: lim, log: log, callers: map[refusalKey]*refusalCount{}}
}

// note logs a refusal of caller (the key its limits are kept under) or
// counts it for the window's summary.
func (l *refusalLog) note(caller string, c Caller, method, reason string, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || now.Sub(l.start) >= l.lim.Window {
		l.roll()
		l.start = now
	}
	k := refusalKey{caller, reason}
	n := l.callers[k]
	if n == nil {
		if len(l.callers) >= maxClients {
			// Past this many callers in one window, the newcomers are
			// summed under one entry.
			k = refusalKey{"", reason}
			if n = l.callers[k]; n == nil {
				n = &refusalCount{identity: "(more callers)"}
				l.callers[k] = n
			}
		} else {
			n = &refusalCount{identity: c.Identity, keyID: c.KeyID, peer: c.Peer}
			l.callers[k] = n
		}
	}
	n.seen++
	if n.seen > l.lim.PerCaller || l.lines >= l.lim.PerWindow {
		n.left++
		if l.timer == nil {
			// The summary is due when the window ends, even if no
			// refusal comes after it.
			l.timer = time.AfterFunc(l.start.Add(l.lim.Window).Sub(now), l.flush)
		}
		return
	}
	l.lines++
	ev := l.log.Warn().Str("rpc", method).Str("identity", c.Identity)
	if c.KeyID != "" {
		ev = ev.Str("key_id", c.KeyID)
	}
	ev.Str("role", c.Role).Str("auth", c.Auth).Str("peer", c.Peer).Str("code", status.Code(err).String()).
		Str("reason", reason).Str("error", status.Convert(err).Message()).Int("refused_in_window", n.seen).Msg("call refused")
}

// flush ends the window if it is over (the timer may fire after a
// refusal has already started the next one).
func (l *refusalLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if !l.start.IsZero() && time.Since(l.start) >= l.lim.Window {
		l.roll()
		l.start = time.Time{}
	}
}

// roll writes the summaries of the window and starts afresh; mu held.
func (l *refusalLog) roll() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	var left []refusalKey
	for k, n := range l.callers {
		if n.left > 0 {
			left = append(left, k)
		}
	}
	slices.SortFunc(left, func(a, b refusalKey) int {
		return cmp.Or(cmp.Compare(l.callers[b].left, l.callers[a].left), cmp.Compare(a.caller, b.caller), cmp.Compare(a.reason, b.reason))
	})
	rest, restCallers := 0, 0
	for i, k := range left {
		n := l.callers[k]
		if i >= l.lim.PerWindow {
			rest += n.left
			restCallers++
			continue
		}
		ev := l.log.Warn().Str("identity", n.identity)
		if n.keyID != "" {
			ev = ev.Str("key_id", n.keyID)
		}
		ev.Str("peer", n.peer).Str("reason", k.reason).Int("refused", n.seen).Int("not_logged", n.left).
			Time("since", l.start).Dur("window_ms", l.lim.Window).Msg("calls refused and not logged one by one")
	}
	if restCallers > 0 {
		l.log.Warn().Int("callers", restCallers).Int("not_logged", rest).Time("since", l.start).Dur("window_ms", l.lim.Window).
			Msg("more callers' refused calls not logged one by one")
	}
	l.lines = 0
	clear(l.callers)
}
