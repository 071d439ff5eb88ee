package chaossim

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress is the campaign's progress bar: redrawn in place on a terminal, or a plain
// line every few seconds with --progress always elsewhere.
type progress struct {
	w        io.Writer
	on, tty  bool
	total    int           // seeds to run, or 0
	duration time.Duration // or the time to run for
	start    time.Time
	last     time.Time
	drawn    bool
}

func newProgress(w io.Writer, mode string, total int, d time.Duration, start time.Time) *progress {
	p := &progress{w: w, total: total, duration: d, start: start}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	p.on = mode == "always" || (mode == "auto" && p.tty)
	return p
}

const barWidth = 30

func (p *progress) update(ran, failed int) {
	if !p.on {
		return
	}
	now := time.Now()
	if !p.tty && now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	frac := 0.0
	if p.total > 0 {
		frac = float64(ran) / float64(p.total)
	}
	if p.duration > 0 {
		frac = max(frac, min(1, el.Seconds()/p.duration.Seconds()))
	}
	n := int(frac * barWidth)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", barWidth-n)
	of := ""
	if p.total > 0 {
		of = fmt.Sprintf("/%d", p.total)
	}
	line := fmt.Sprintf("[%s] %d%s seeds  %.1f seeds/s  violations so far: %d seed(s)  %v", bar, ran, of,
		float64(ran)/max(el.Seconds(), 1e-3), failed, el.Round(time.Second))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// clear removes the bar before other output.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}
