package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// progressInterval caps redraws at about ten per second: the callback fires
// for every buffer read, and repainting a terminal that often costs more
// than the transfer and flickers.
const progressInterval = 100 * time.Millisecond

// progressBar draws a one-line transfer status on a terminal. A nil
// *progressBar is valid and draws nothing, so callers need not check whether
// stderr is a terminal at every use.
type progressBar struct {
	mu       sync.Mutex
	w        io.Writer
	label    string
	total    int64 // <= 0 when unknown
	width    int   // terminal columns
	now      func() time.Time
	start    time.Time
	lastDraw time.Time
	done     int64
	drawn    bool
	lastLen  int // runes of the previous line, to blank out leftovers
	closed   bool
}

// newProgressBar returns nil when w is nil, i.e. when progress should not be
// shown at all.
func newProgressBar(w io.Writer, label string, total int64, width int, now func() time.Time) *progressBar {
	if w == nil {
		return nil
	}
	if width <= 0 {
		width = 80
	}
	if now == nil {
		now = time.Now
	}
	return &progressBar{w: w, label: label, total: total, width: width, now: now, start: now()}
}

// Set records that done bytes have been transferred. It is safe to call
// from several goroutines, as the HTTP transport reports upload progress from
// its own.
func (p *progressBar) Set(done int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.done = done
	t := p.now()
	if p.drawn && t.Sub(p.lastDraw) < progressInterval {
		return
	}
	p.draw(t)
}

// Finish draws the final state and ends the line, so whatever is printed
// next starts on a fresh line and the summary stays visible.
func (p *progressBar) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.draw(p.now())
	fmt.Fprint(p.w, "\n")
	p.closed = true
}

// Clear erases the bar without leaving a line behind; used on failure, where
// a half-full bar next to the error message would only confuse.
func (p *progressBar) Clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.drawn {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.lastLen)+"\r")
	}
	p.closed = true
}

func (p *progressBar) draw(t time.Time) {
	line := renderProgress(p.label, p.done, p.total, t.Sub(p.start), p.width)
	n := utf8.RuneCountInString(line)
	pad := ""
	if n < p.lastLen {
		pad = strings.Repeat(" ", p.lastLen-n)
	}
	fmt.Fprint(p.w, "\r"+line+pad)
	p.lastLen = n
	p.lastDraw = t
	p.drawn = true
}

// renderProgress formats one status line that fits in width columns
// (minus one, so the cursor never wraps to the next line):
//
//	label [=========>          ]  45%  12.3 MB / 27.0 MB  5.1 MB/s
//
// With an unknown total only the byte count and rate are shown. The bar is
// the first thing dropped when space is short, then the label is shortened.
func renderProgress(label string, done, total int64, elapsed time.Duration, width int) string {
	// Before one redraw interval has passed the rate is mostly noise.
	rate := "-- MB/s"
	if elapsed >= progressInterval {
		rate = fmt.Sprintf("%.1f MB/s", float64(done)/1e6/elapsed.Seconds())
	}
	// Fields are padded to fixed widths so the bar does not change length
	// (and the line does not jitter) as the numbers grow.
	var stats string
	frac := -1.0
	if total > 0 {
		frac = float64(done) / float64(total)
		frac = min(max(frac, 0), 1)
		stats = fmt.Sprintf("%3d%%  %8s / %s  %10s", int(frac*100), humanBytes(done), humanBytes(total), rate)
	} else {
		stats = fmt.Sprintf("%8s  %10s", humanBytes(done), rate)
	}

	avail := width - 1
	statsLen := utf8.RuneCountInString(stats)
	labelMax := max(avail-statsLen-1, 0)
	if labelMax > 30 {
		labelMax = 30
	}
	if labelMax < 8 {
		// A label cut to a few characters identifies nothing.
		labelMax = 0
	}
	label = truncateRunes(label, labelMax)
	labelLen := utf8.RuneCountInString(label)

	used := statsLen
	if labelLen > 0 {
		used += labelLen + 1
	}
	bar := ""
	// Brackets plus a space on each side leave barCells for the fill.
	if barCells := min(avail-used-4, 40); frac >= 0 && barCells >= 10 {
		bar = " [" + barFill(frac, barCells) + "] "
	} else {
		bar = " "
	}
	line := label + bar + stats
	if labelLen == 0 {
		line = strings.TrimLeft(bar, " ") + stats
	}
	// Only a terminal narrower than the stats themselves gets here.
	if utf8.RuneCountInString(line) > avail {
		line = truncateRunes(line, max(avail, 0))
	}
	return line
}

func barFill(frac float64, cells int) string {
	full := int(frac * float64(cells))
	switch {
	case full >= cells:
		return strings.Repeat("=", cells)
	case full == 0:
		return strings.Repeat(" ", cells)
	default:
		return strings.Repeat("=", full-1) + ">" + strings.Repeat(" ", cells-full)
	}
}

// truncateRunes shortens s to at most n runes, marking the cut with "..."
// at the front: for artifact names the end (file name, version) is the
// informative part.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 3 {
		return strings.Repeat(".", n)
	}
	r := []rune(s)
	return "..." + string(r[len(r)-(n-3):])
}

// humanBytes formats a byte count with decimal units, matching the MB/s of
// the rate so the two can be compared at a glance.
func humanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	const units = "kMGTPE"
	v := float64(n)
	i := -1
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, units[i])
}

// progressReader reports the bytes read through it to a progress bar.
type progressReader struct {
	r   io.Reader
	bar *progressBar
	n   int64
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	r.bar.Set(r.n)
	return n, err
}
