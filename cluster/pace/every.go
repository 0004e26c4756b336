package pace

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends: the shape of a node's
// periodic work. A pass that outlasts the interval delays the next tick
// rather than queueing passes.
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}
