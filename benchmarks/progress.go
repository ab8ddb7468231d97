package benchmarks

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on a terminal and nothing elsewhere (a log
// file or CI output gains nothing from hundreds of redraws). A nil
// *progress is valid and silent, so evaluations take one without checks.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress starts a bar of total steps on w if w is a terminal.
func newProgress(w io.Writer, total int64, what string) *progress {
	f, ok := w.(*os.File)
	if !ok || total <= 0 {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("it"),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionClearOnFinish())}
}

func (p *progress) add(n int) {
	if p != nil {
		p.bar.Add64(int64(n))
	}
}

func (p *progress) done() {
	if p != nil {
		p.bar.Finish()
	}
}
