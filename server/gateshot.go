package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bordermatch/bordermatch/capture"
	pb "github.com/bordermatch/bordermatch/proto/bordermatch/v1"
)

// shotSelector is capture's best-shot selector, shared by the gates and
// IdentifyFrames: dlib's HOG detector and landmarks per frame, quality
// from size, sharpness, pose and exposure. The landmark model is loaded
// on first use (IdentifyFrames may never be called on a server without
// gates). Its selectors, one per assessment slot, each serialise their
// detector.
type shotSelector struct {
	cfg  capture.SelectorConfig
	n    int
	once sync.Once
	sels []*capture.Selector
	err  error
	next atomic.Uint64
}

func (p *shotSelector) load() error {
	p.once.Do(func() {
		for range p.n {
			sel, err := capture.NewSelector(p.cfg)
			if err != nil {
				p.err = err
				return
			}
			p.sels = append(p.sels, sel)
		}
	})
	return p.err
}

// newWindow starts a series of frames to pick the best face of.
func (p *shotSelector) newWindow() (*shotWindow, error) {
	if err := p.load(); err != nil {
		return nil, status.Errorf(codes.Internal, "best-shot selector: %v", err)
	}
	sel := p.sels[p.next.Add(1)%uint64(len(p.sels))]
	return &shotWindow{w: sel.NewWindow()}, nil
}

func (p *shotSelector) close() {
	// Waits for a load in progress; prevents one later.
	p.once.Do(func() { p.err = errors.New("closed") })
	for _, s := range p.sels {
		s.Close()
	}
}

// shotWindow keeps the best face of the frames offered to it. It is used
// by one goroutine at a time.
type shotWindow struct {
	w *capture.Window
	n int
}

// offer assesses a frame, which stays the caller's. face reports a usable
// face; reject says why a face seen was not usable.
func (w *shotWindow) offer(f capture.Frame) (face bool, reject string, err error) {
	w.n++
	c, ok, _, err := w.w.Offer(f)
	if err != nil || !ok {
		return false, "", err
	}
	if c.Quality.Reject != "" {
		return false, c.Quality.Reject, nil
	}
	return true, "", nil
}

func (w *shotWindow) targetReached() bool { return w.w.TargetReached() }

// frames counts the frames offered.
func (w *shotWindow) frames() int { return w.n }
func (w *shotWindow) close()      { w.w.Close() }

// pickedShot is the best face of a window.
type pickedShot struct {
	// jpeg is the image to extract the face from (and to show).
	jpeg               []byte
	quality            *pb.ShotQuality
	seq                uint64
	time               time.Time
	frames, faceFrames int
	firstFace          time.Time
}

func (w *shotWindow) best() (pickedShot, bool, error) {
	s, ok, err := w.w.Best()
	if err != nil || !ok {
		return pickedShot{}, false, err
	}
	q := s.Quality
	return pickedShot{
		jpeg: s.JPEG, seq: s.Seq, time: s.Time,
		frames: s.Frames, faceFrames: s.FaceFrames, firstFace: s.FirstFace,
		quality: &pb.ShotQuality{
			Score: q.Score, MeetsTarget: q.MeetsTarget, InterEyePixels: q.InterEye,
			Sharpness: q.Sharpness, Yaw: q.Yaw, Roll: q.Roll, Brightness: q.Brightness,
		},
	}, true, nil
}
