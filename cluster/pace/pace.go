// Package pace spaces the reads of repair and the scrubber so that they
// average at most a rate of bytes per second (golang.org/x/time/rate), and
// gives up when their context ends.
package pace

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// Pacer paces reads; the zero value, and a nil one, do not wait.
type Pacer struct {
	lim *rate.Limiter // nil: no cap
}

// burst is the most a pacer lets through at once: a few blocks, so
// that a paced scrub still reads whole blocks but never floods the disk.
const burst = 1 << 20

// New returns a pacer of bytesPerSec; 0 or less is no cap.
func New(bytesPerSec int64) *Pacer {
	if bytesPerSec <= 0 {
		return &Pacer{}
	}
	return &Pacer{lim: rate.NewLimiter(rate.Limit(bytesPerSec), int(min(bytesPerSec, burst)))}
}

// Wait accounts for size bytes read and waits until they are due. It
// reports false when ctx ended (or would end before they are due).
func (p *Pacer) Wait(ctx context.Context, size int64) bool {
	if p == nil || p.lim == nil {
		return ctx.Err() == nil
	}
	for size > 0 {
		k := min(size, int64(p.lim.Burst()))
		if err := p.lim.WaitN(ctx, int(k)); err != nil {
			return false
		}
		size -= k
	}
	return true
}

// Reader returns r read through p under ctx: a read whose bytes are not
// due before ctx ends fails with ctx's error.
func Reader(ctx context.Context, r io.Reader, p *Pacer) io.Reader {
	return pacedReader{ctx: ctx, r: r, p: p}
}

type pacedReader struct {
	ctx context.Context
	r   io.Reader
	p   *Pacer
}

func (r pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 && !r.p.Wait(r.ctx, int64(n)) && err == nil {
		err = r.ctx.Err()
		if err == nil {
			err = context.DeadlineExceeded
		}
	}
	return n, err
}
