package cluster

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// pacer spaces the reads of repair and the scrubber so that they average
// at most a rate of bytes per second, and gives up when ctx ends.
type pacer struct {
	lim *rate.Limiter // nil: no cap
}

// pacerBurst is the most a pacer lets through at once: a few blocks, so
// that a paced scrub still reads whole blocks but never floods the disk.
const pacerBurst = 1 << 20

// newPacer returns a pacer of bytesPerSec; 0 or less is no cap.
func newPacer(bytesPerSec int64) *pacer {
	if bytesPerSec <= 0 {
		return &pacer{}
	}
	return &pacer{lim: rate.NewLimiter(rate.Limit(bytesPerSec), int(min(bytesPerSec, pacerBurst)))}
}

// wait accounts for size bytes read and waits until they are due. It
// reports false when ctx ended (or would end before they are due).
func (p *pacer) wait(ctx context.Context, size int64) bool {
	if p.lim == nil {
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

// pacedReader reads through a pacer.
type pacedReader struct {
	ctx context.Context
	r   io.Reader
	p   *pacer
}

func (r pacedReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 && !r.p.wait(r.ctx, int64(n)) && err == nil {
		err = r.ctx.Err()
		if err == nil {
			err = context.DeadlineExceeded
		}
	}
	return n, err
}
