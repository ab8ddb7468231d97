package capture

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gocv.io/x/gocv"
)

// OpenFolder replays the images of a directory (JPEG, PNG, BMP, in name
// order) as a camera would: at opt.FPS (default 10) frames a second, from
// the start again at the end when opt.Loop, else ending with io.EOF. With a
// negative FPS it goes as fast as the consumer takes frames and drops
// nothing. Images that do not decode are counted as decode errors and
// skipped. It serves tests and demos.
func OpenFolder(ctx context.Context, dir string, opt Options) (Source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w folder %s: %v", ErrOpen, dir, err)
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && isImage(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%w folder %s: no images (.jpg, .jpeg, .png, .bmp) in it", ErrOpen, dir)
	}
	fps := opt.FPS
	if fps == 0 {
		fps = 10
	}
	s := newSource("folder:"+dir, opt, nil)
	s.block = fps < 0
	s.open = func() (grabber, error) {
		return &folderGrabber{files: files, fps: fps, loop: opt.Loop, start: time.Now()}, nil
	}
	return s.start(ctx)
}

type folderGrabber struct {
	files []string
	fps   float64
	loop  bool
	next  int // index into files
	n     int // frames delivered, for pacing
	start time.Time
}

func (g *folderGrabber) grab(m *gocv.Mat) error {
	if g.next >= len(g.files) {
		if !g.loop {
			return io.EOF
		}
		g.next = 0
	}
	if g.fps > 0 {
		// Pace against the start time, not the previous frame, so that slow
		// decoding does not lower the rate.
		due := g.start.Add(time.Duration(float64(g.n) / g.fps * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
	}
	f := g.files[g.next]
	g.next++
	g.n++
	img := gocv.IMRead(f, gocv.IMReadColor)
	if img.Empty() {
		img.Close()
		return fmt.Errorf("%w: %s", errDecode, f)
	}
	img.CopyTo(m)
	img.Close()
	return nil
}

func (g *folderGrabber) close() {}
