package fprint

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bordermatch/bordermatch/capture/fpimage"
)

// ImageExtensions are the file names a Folder replays (case-insensitive):
// the formats templates/finger decodes.
var ImageExtensions = []string{".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".wsq"}

// FolderConfig configures OpenFolder.
type FolderConfig struct {
	// DPI is the resolution of images that declare none (FVC's TIFFs
	// declare 1×1 dpi; FVC2002 DB2 is 569). 0: 500.
	DPI int
	// Loop starts again from the first image after the last; otherwise
	// Capture returns io.EOF there.
	Loop bool
}

// Folder replays the fingerprint images of a directory as scans, in the
// order of their file names: a stand-in for a scanner in tests and
// demonstrations, and a way to re-run a session's scans. It is safe for
// concurrent use; each image goes to one Capture.
type Folder struct {
	dir   string
	cfg   FolderConfig
	files []string

	mu     sync.Mutex
	next   int
	closed bool
}

var _ Scanner = (*Folder)(nil)

// OpenFolder lists dir's images (not its subdirectories). A directory
// without any is an error.
func OpenFolder(dir string, cfg FolderConfig) (*Folder, error) {
	if cfg.DPI < 0 {
		return nil, fmt.Errorf("fprint: folder %s: negative resolution %d dpi", dir, cfg.DPI)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fprint: folder: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && slices.Contains(ImageExtensions, strings.ToLower(filepath.Ext(e.Name()))) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("fprint: folder %s has no fingerprint images (%s)", dir, strings.Join(ImageExtensions, " "))
	}
	// os.ReadDir sorts by name already; the order is part of the contract.
	slices.Sort(files)
	return &Folder{dir: dir, cfg: cfg, files: files}, nil
}

// Name is the directory.
func (f *Folder) Name() string { return f.dir }

// Files lists the images in replay order.
func (f *Folder) Files() []string { return slices.Clone(f.files) }

// Capture decodes the next image. An image that cannot be read or decoded
// is an error naming the file, and the replay moves past it.
func (f *Folder) Capture(ctx context.Context) (Scan, error) {
	if err := ctx.Err(); err != nil {
		return Scan{}, fmt.Errorf("fprint: folder %s: %w", f.dir, err)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return Scan{}, ErrClosed
	}
	if f.next == len(f.files) {
		if !f.cfg.Loop {
			f.mu.Unlock()
			return Scan{}, io.EOF
		}
		f.next = 0
	}
	path := f.files[f.next]
	f.next++
	f.mu.Unlock()

	b, err := os.ReadFile(path)
	if err != nil {
		return Scan{}, fmt.Errorf("fprint: folder: %w", err)
	}
	img, info, err := fpimage.Decode(b)
	if err != nil {
		return Scan{}, fmt.Errorf("fprint: %s: %w", path, err)
	}
	dpi := info.DPI // 0 when the file declares none or an implausible one
	if dpi == 0 {
		dpi = f.cfg.DPI
	}
	if dpi == 0 {
		dpi = fpimage.DefaultDPI
	}
	return Scan{Image: img, DPI: dpi, Device: f.dir, Source: path, Time: time.Now()}, nil
}

// Rewind starts the replay again from the first image.
func (f *Folder) Rewind() {
	f.mu.Lock()
	f.next = 0
	f.mu.Unlock()
}

// State: open (and listed) until closed.
func (f *Folder) State() DeviceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return DeviceState{Open: !f.closed, Listed: true, Closed: f.closed}
}

// Close ends the replay; further Captures return ErrClosed.
func (f *Folder) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}
