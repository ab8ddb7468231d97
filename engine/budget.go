package engine

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/sync/semaphore"

	"github.com/bordermatch/bordermatch/capture/fpimage"
	"github.com/bordermatch/bordermatch/templates/facerecord"
)

// DefaultMemoryBudget is the memory the images being decoded and extracted
// at once may take, by default: two of the largest images accepted (a 40 MP
// 16-bit photo, a 16 MP fingerprint) at a time, and hundreds of ordinary
// ones.
const DefaultMemoryBudget = 2 << 30

// MinMemoryBudget is the smallest budget Config takes: below it a passport
// scan of ordinary size would wait for the whole budget.
const MinMemoryBudget = 64 << 20

// What a pixel costs beyond its decoded form while a sample is extracted,
// measured from the allocations of each path: a photo is converted to RGBA
// (4) and RGB (3), and copied into OpenCV for the alignment (3) and the
// sharpness (1); a fingerprint becomes grey (1) and the pipeline's pixel
// fields (float32 grey, normalised grey, distances, the structure tensor's
// three sums, bool masks, the skeleton, the labels: about 40).
const (
	facePixelWork   = 12
	fingerPixelWork = 44
)

// budget bounds what the samples being extracted cost at once: a slot of
// the memory budget, weighed from the image's header before any pixel is
// decoded, and (fingers) one of a fixed number of extraction workers. Both
// waits end when the caller's context does, so an abandoned call gives its
// place back at once.
type budget struct {
	size    int64
	mem     *semaphore.Weighted
	fingers *semaphore.Weighted
}

func newBudget(size int64, fingerWorkers int) *budget {
	if size <= 0 {
		size = DefaultMemoryBudget
	}
	if fingerWorkers <= 0 {
		fingerWorkers = runtime.GOMAXPROCS(0)
	}
	return &budget{size: size, mem: semaphore.NewWeighted(size), fingers: semaphore.NewWeighted(int64(fingerWorkers))}
}

// take waits for cost bytes of the budget; release gives them back. An
// image that alone costs more than the whole budget is refused
// (ErrResourceExhausted) rather than waited for forever.
func (b *budget) take(ctx context.Context, hdr fpimage.Header, perPixel int) (release func(), err error) {
	cost := b.size + 1 // past the budget, without overflowing, whatever the header says
	if px := hdr.Pixels(); px <= b.size {
		cost = px * int64(perPixel)
	}
	if cost > b.size {
		return nil, fmt.Errorf("%w: a %d×%d image (%d bytes a pixel) needs about %d MiB to decode and extract, more than the memory budget of %d MiB",
			ErrResourceExhausted, hdr.Width, hdr.Height, hdr.BytesPerPixel, cost>>20, b.size>>20)
	}
	cost = max(cost, 1)
	if err := b.mem.Acquire(ctx, cost); err != nil {
		return nil, err
	}
	return func() { b.mem.Release(cost) }, nil
}

// takeFinger waits for a finger extraction worker and the image's share of
// the memory budget.
func (b *budget) takeFinger(ctx context.Context, img []byte) (release func(), err error) {
	hdr, err := fpimage.DecodeHeader(img)
	if err != nil || hdr.Pixels() > fpimage.MaxPixels {
		// fpimage.Decode refuses it from the same header, with the reason.
		return func() {}, nil
	}
	freeMem, err := b.take(ctx, hdr, hdr.BytesPerPixel+fingerPixelWork)
	if err != nil {
		return nil, err
	}
	if err := b.fingers.Acquire(ctx, 1); err != nil {
		freeMem()
		return nil, err
	}
	return func() { b.fingers.Release(1); freeMem() }, nil
}

// takeFace waits for a photo's share of the memory budget. A photo whose
// header cannot be read costs nothing here: the extractor refuses it from
// the same header.
func (b *budget) takeFace(ctx context.Context, img []byte) (release func(), err error) {
	hdr, err := fpimage.DecodeHeader(img)
	if err != nil {
		// JPEG 2000 (Go has no decoder): OpenCV decodes it to 8-bit BGR,
		// converted to RGBA on the way to Go.
		_, w, h, jerr := facerecord.ImageInfo(img)
		if jerr != nil || w <= 0 || h <= 0 {
			return func() {}, nil
		}
		hdr = fpimage.Header{Format: "jpeg2000", Width: w, Height: h, BytesPerPixel: 3 + 4}
	}
	return b.take(ctx, hdr, hdr.BytesPerPixel+facePixelWork)
}
