// Package capture reads frames from gate cameras and picks the best face
// shot from them. A Source is any frame producer — a V4L2 device, an RTSP or
// HTTP stream, a video file, a folder of images replayed at a frame rate —
// read by its own goroutine, which reconnects dropped streams with backoff
// and keeps only the newest frames, so that a slow consumer (the face
// detector, the matcher) never blocks the camera and never makes memory grow.
//
// Frames carry OpenCV Mats. Whoever receives a Frame owns its Mat and closes
// it (Frame.Close); the package closes every Mat it drops. Run tests with
// `-tags matprofile` to check that with gocv.MatProfile.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// Frame is one picture from a Source.
type Frame struct {
	// Mat is the picture, 8-bit BGR. The receiver of the Frame owns it.
	Mat gocv.Mat
	// Seq numbers the frames a Source read, from 1; a gap means frames were
	// dropped in between.
	Seq uint64
	// Time is when the frame was read.
	Time time.Time
}

// Close frees the frame's Mat. Closing twice is harmless.
func (f *Frame) Close() error {
	if f.Mat.Ptr() == nil {
		return nil
	}
	return f.Mat.Close()
}

// Source is a camera, stream, file or folder that frames come from. Its
// methods are safe for concurrent use.
type Source interface {
	// Next returns the oldest frame held (with the default Queue of 1: the
	// newest frame read and not yet returned), waiting until there is one.
	// It fails with ctx's error, ErrClosed after Close, io.EOF once a finite
	// source (file, folder, without Loop) has been read to the end, or an
	// error wrapping ErrFailed once the source has given up reconnecting.
	Next(ctx context.Context) (Frame, error)
	// Status reports the connection state and the counters.
	Status() Status
	// Name says what the source reads (a device, a URL with any password
	// removed, a path).
	Name() string
	// Close stops reading and frees held frames. It does not wait for a
	// read stuck inside a driver: that one ends within ReadTimeout and
	// frees its resources then.
	Close() error
}

// State is a Source's connection state.
type State int

const (
	// StateConnecting: opening the device or stream for the first time.
	StateConnecting State = iota
	// StateConnected: frames are being read.
	StateConnected
	// StateReconnecting: the stream dropped (or stalled, or failed to
	// open again); the reader is waiting out its backoff or reopening.
	StateReconnecting
	// StateFailed: the source gave up (MaxReconnects reached, or a
	// permanent error such as a missing device or file).
	StateFailed
	// StateEnded: a finite source (file, folder) was read to the end.
	StateEnded
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateFailed:
		return "failed"
	case StateEnded:
		return "ended"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Counters count what a Source did since it was opened.
type Counters struct {
	// FramesRead counts the frames decoded (each got a Seq).
	FramesRead uint64
	// FramesDropped counts frames read but discarded because the consumer
	// had not taken them before newer ones arrived.
	FramesDropped uint64
	// DecodeErrors counts frames (or images of a folder) that could not be
	// decoded and were skipped.
	DecodeErrors uint64
	// Reconnects counts the times the stream was reopened after a drop.
	Reconnects uint64
}

// Status is a snapshot of a Source.
type Status struct {
	State State
	Counters
	// Since is when State was entered.
	Since time.Time
	// LastError describes the last failure (open, read, decode), if any.
	LastError string
}

// Errors of a Source.
var (
	// ErrClosed: the Source was closed.
	ErrClosed = errors.New("capture: source is closed")
	// ErrFailed: the source gave up; the error wrapping it says why.
	ErrFailed = errors.New("capture: source failed")
	// ErrNoDevice: the V4L2 device does not exist.
	ErrNoDevice = errors.New("capture: no such video device")
	// ErrOpen: the device, stream or file could not be opened.
	ErrOpen = errors.New("capture: cannot open")
	// ErrBadURI: the source description is not understood.
	ErrBadURI = errors.New("capture: bad source")
)

// Options configure a Source. The zero value is usable.
type Options struct {
	// FPS is the replay rate of a folder of images (default 10) and of a
	// video file (default: the file's own rate). A negative FPS reads a
	// file or folder as fast as the consumer takes frames (and then nothing
	// is dropped: the reader waits for the consumer). Devices and streams
	// deliver at their own rate.
	FPS float64
	// Loop restarts a file or folder at its end instead of ending.
	Loop bool
	// OpenTimeout bounds each attempt to open a stream (default 5s).
	OpenTimeout time.Duration
	// ReadTimeout is how long without a frame counts as a dropped stream
	// (default 5s).
	ReadTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between reconnection
	// attempts, which doubles from min to max (defaults 250ms, 5s).
	ReconnectMin, ReconnectMax time.Duration
	// MaxReconnects is how many failed reopen attempts in a row make the
	// source give up (StateFailed); 0 means never give up.
	MaxReconnects int
	// Queue is how many frames are held for the consumer (default 1: only
	// the newest). When it is full the oldest held frame is dropped.
	Queue int
	// OnState, when set, is called with the new status at every state
	// change, from the reader goroutine; it must not block.
	OnState func(Status)
}

func (o *Options) defaults() {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 5 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 250 * time.Millisecond
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = 5 * time.Second
		if o.ReconnectMax < o.ReconnectMin {
			o.ReconnectMax = o.ReconnectMin
		}
	}
	if o.Queue <= 0 {
		o.Queue = 1
	}
}

// Open opens a source from a description:
//
//	/dev/video0, v4l2:0, 0        a V4L2 device (path or index)
//	rtsp://…, rtsps://…, http://…, https://…   a network stream
//	file:///path, /path/clip.mp4  a video file
//	folder:/path, /path/dir/      a folder of images (JPEG, PNG, BMP)
//
// It returns once the first frame source is open, or with an error (a
// missing device, an unreachable stream within OpenTimeout, a missing
// file); later drops are handled by reconnecting.
func Open(ctx context.Context, uri string, opt Options) (Source, error) {
	switch {
	case uri == "":
		return nil, fmt.Errorf("%w: empty source", ErrBadURI)
	case strings.HasPrefix(uri, "v4l2:"):
		return OpenDevice(ctx, strings.TrimPrefix(uri, "v4l2:"), opt)
	case strings.HasPrefix(uri, "/dev/video"):
		return OpenDevice(ctx, uri, opt)
	case strings.HasPrefix(uri, "folder:"):
		return OpenFolder(ctx, strings.TrimPrefix(uri, "folder:"), opt)
	case strings.HasPrefix(uri, "file://"):
		return OpenFile(ctx, strings.TrimPrefix(uri, "file://"), opt)
	}
	if _, err := strconv.Atoi(uri); err == nil {
		return OpenDevice(ctx, uri, opt)
	}
	if i := strings.Index(uri, "://"); i > 0 {
		switch strings.ToLower(uri[:i]) {
		case "rtsp", "rtsps", "http", "https":
			return OpenStream(ctx, uri, opt)
		}
		return nil, fmt.Errorf("%w: %q: unsupported scheme %q (rtsp, rtsps, http, https, file, folder, v4l2)", ErrBadURI, redact(uri), uri[:i])
	}
	st, err := os.Stat(uri)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrOpen, uri, err)
	}
	if st.IsDir() {
		return OpenFolder(ctx, uri, opt)
	}
	return OpenFile(ctx, uri, opt)
}

// grabber is one open connection to a frame producer, used by one reader
// goroutine only.
type grabber interface {
	// grab reads the next frame into m. It returns io.EOF at the end of a
	// finite source, an error wrapping errDecode for a frame to skip, and
	// any other error for a lost connection.
	grab(m *gocv.Mat) error
	close()
}

// errDecode marks a frame that could not be decoded: it is counted and
// skipped, the connection stays.
var errDecode = errors.New("capture: frame not decodable")

// source is the reader goroutine and frame queue shared by all adapters.
type source struct {
	name  string
	opt   Options
	open  func() (grabber, error)
	block bool // wait for the consumer instead of dropping (files read at FPS < 0)
	// permanent reports open errors not worth retrying (the file is gone).
	permanent func(error) bool

	mu       sync.Mutex
	status   Status
	queue    []Frame
	wake     chan struct{} // signalled when queue or state changes
	space    chan struct{} // signalled when the consumer took a frame
	done     chan struct{} // closed by Close
	finished chan struct{} // closed when the reader goroutine returns
	endErr   error         // io.EOF or a wrapped ErrFailed, once the reader ended
	closed   bool
	seq      uint64
	free     []gocv.Mat // Mats of dropped frames, reused for reading
}

func newSource(name string, opt Options, open func() (grabber, error)) *source {
	opt.defaults()
	return &source{
		name:     name,
		opt:      opt,
		open:     open,
		status:   Status{State: StateConnecting, Since: time.Now()},
		wake:     make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
}

func (s *source) Name() string { return s.name }

func (s *source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// setState records a state change and reports it. Called by the reader.
func (s *source) setState(st State, err error) {
	s.mu.Lock()
	changed := s.status.State != st
	if changed {
		s.status.State = st
		s.status.Since = time.Now()
	}
	if err != nil {
		s.status.LastError = err.Error()
	}
	snap := s.status
	s.mu.Unlock()
	if changed {
		signal(s.wake)
		if s.opt.OnState != nil {
			s.opt.OnState(snap)
		}
	}
}

func (s *source) count(f func(c *Counters)) {
	s.mu.Lock()
	f(&s.status.Counters)
	s.mu.Unlock()
}

func (s *source) Next(ctx context.Context) (Frame, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Frame{}, ErrClosed
		}
		if len(s.queue) > 0 {
			f := s.queue[0]
			copy(s.queue, s.queue[1:])
			s.queue[len(s.queue)-1] = Frame{}
			s.queue = s.queue[:len(s.queue)-1]
			s.mu.Unlock()
			signal(s.space)
			return f, nil
		}
		if s.endErr != nil {
			err := s.endErr
			s.mu.Unlock()
			return Frame{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.done:
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

func (s *source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	for i := range q {
		q[i].Close()
	}
	close(s.done)
	s.setState(StateClosed, nil)
	return nil
}

// push hands a frame to the consumer, dropping the oldest held frame when
// the queue is full (or waiting for room when s.block). It takes ownership
// of m. It reports false when the source was closed.
func (s *source) push(m gocv.Mat) bool {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			m.Close()
			return false
		}
		if len(s.queue) < s.opt.Queue || !s.block {
			break
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.done:
		}
	}
	s.seq++
	s.status.FramesRead++
	if len(s.queue) >= s.opt.Queue {
		old := s.queue[0]
		copy(s.queue, s.queue[1:])
		s.queue = s.queue[:len(s.queue)-1]
		s.status.FramesDropped++
		if len(s.free) < 2 {
			s.free = append(s.free, old.Mat)
		} else {
			old.Close()
		}
	}
	s.queue = append(s.queue, Frame{Mat: m, Seq: s.seq, Time: time.Now()})
	s.mu.Unlock()
	signal(s.wake)
	return true
}

// newMat reuses the Mat of a dropped frame when there is one.
func (s *source) newMat() gocv.Mat {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		m := s.free[n-1]
		s.free = s.free[:n-1]
		return m
	}
	return gocv.NewMat()
}

func (s *source) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// sleep waits d or until Close; it reports false on Close.
func (s *source) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// openWithTimeout runs s.open in its own goroutine so that a driver stuck
// in open cannot hold the caller beyond OpenTimeout (plus a grace period
// for backends that enforce the timeout themselves). A grabber that opens
// after the caller gave up is closed.
func (s *source) openWithTimeout(ctx context.Context) (grabber, error) {
	type res struct {
		g   grabber
		err error
	}
	ch := make(chan res, 1)
	go func() {
		g, err := s.open()
		ch <- res{g, err}
	}()
	t := time.NewTimer(s.opt.OpenTimeout + time.Second)
	defer t.Stop()
	giveUp := func() {
		go func() {
			if r := <-ch; r.g != nil {
				r.g.close()
			}
		}()
	}
	select {
	case r := <-ch:
		return r.g, r.err
	case <-t.C:
		giveUp()
		return nil, fmt.Errorf("%w %s: no answer within %v", ErrOpen, s.name, s.opt.OpenTimeout)
	case <-ctx.Done():
		giveUp()
		return nil, ctx.Err()
	case <-s.done:
		giveUp()
		return nil, ErrClosed
	}
}

// start opens the source once (so that Open can report a bad device or URL)
// and then runs the reader goroutine.
func (s *source) start(ctx context.Context) (Source, error) {
	g, err := s.openWithTimeout(ctx)
	if err != nil {
		s.finish(StateFailed, err)
		return nil, err
	}
	s.setState(StateConnected, nil)
	go s.run(g)
	return s, nil
}

func (s *source) finish(st State, err error) {
	s.mu.Lock()
	if s.endErr == nil {
		if st == StateEnded {
			s.endErr = io.EOF
		} else {
			s.endErr = fmt.Errorf("%w: %s: %v", ErrFailed, s.name, err)
		}
	}
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.setState(st, err)
	}
	signal(s.wake)
	select {
	case <-s.finished:
	default:
		close(s.finished)
	}
}

// run is the reader goroutine: read, hand over, and on a lost connection
// reopen with exponential backoff.
func (s *source) run(g grabber) {
	// A read stuck in a driver ends the connection when the watchdog in
	// readOnce gives up; the stuck grabber is closed once its read returns.
	defer func() {
		s.mu.Lock()
		free := s.free
		s.free = nil
		s.mu.Unlock()
		for _, m := range free {
			m.Close()
		}
	}()
	backoff := s.opt.ReconnectMin
	failures := 0
	for {
		err := s.readLoop(g)
		if s.isDone() {
			return
		}
		if errors.Is(err, io.EOF) {
			s.finish(StateEnded, nil)
			return
		}
		s.setState(StateReconnecting, err)
		for {
			if !s.sleep(backoff) {
				return
			}
			backoff *= 2
			if backoff > s.opt.ReconnectMax {
				backoff = s.opt.ReconnectMax
			}
			g, err = s.openWithTimeout(context.Background())
			if err == nil {
				break
			}
			if s.isDone() {
				return
			}
			failures++
			if (s.permanent != nil && s.permanent(err)) || (s.opt.MaxReconnects > 0 && failures >= s.opt.MaxReconnects) {
				s.finish(StateFailed, err)
				return
			}
			s.setState(StateReconnecting, err)
		}
		failures = 0
		backoff = s.opt.ReconnectMin
		s.count(func(c *Counters) { c.Reconnects++ })
		s.setState(StateConnected, nil)
	}
}

// readLoop reads from g until the connection ends, and closes g.
func (s *source) readLoop(g grabber) error {
	type res struct {
		m   gocv.Mat
		err error
	}
	// One goroutine owns g and reads; this loop waits for it with the read
	// timeout, so a stalled stream is reported without waiting for the
	// driver.
	req := make(chan gocv.Mat)
	out := make(chan res, 1)
	go func() {
		defer g.close()
		for m := range req {
			err := g.grab(&m)
			out <- res{m, err}
		}
	}()
	defer close(req)
	for {
		if s.isDone() {
			return ErrClosed
		}
		m := s.newMat()
		req <- m
		t := time.NewTimer(s.opt.ReadTimeout)
		var r res
		select {
		case r = <-out:
			t.Stop()
		case <-t.C:
			// The reader still owns m; it is closed when the stuck read
			// returns (drained by the goroutine below).
			go func() {
				r := <-out
				r.m.Close()
			}()
			return fmt.Errorf("no frame within %v", s.opt.ReadTimeout)
		case <-s.done:
			t.Stop()
			go func() {
				r := <-out
				r.m.Close()
			}()
			return ErrClosed
		}
		switch {
		case r.err == nil:
			if !s.push(r.m) {
				return ErrClosed
			}
		case errors.Is(r.err, errDecode):
			r.m.Close()
			s.count(func(c *Counters) { c.DecodeErrors++ })
			s.mu.Lock()
			s.status.LastError = r.err.Error()
			s.mu.Unlock()
		default:
			r.m.Close()
			return r.err
		}
	}
}

// redact removes a password from a URL for names and messages.
func redact(uri string) string {
	i := strings.Index(uri, "://")
	if i < 0 {
		return uri
	}
	rest := uri[i+3:]
	at := strings.Index(rest, "@")
	slash := strings.Index(rest, "/")
	if at < 0 || (slash >= 0 && slash < at) {
		return uri
	}
	user := rest[:at]
	if c := strings.Index(user, ":"); c >= 0 {
		user = user[:c] + ":xxxxx"
	}
	return uri[:i+3] + user + rest[at:]
}

// imageExts are the files a folder source replays.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true}

func isImage(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }
