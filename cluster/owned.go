package cluster

import (
	"context"
	"sync"
)

// Every goroutine and every request's work on a node is owned: Shutdown
// waits for it (bg) before it closes raft, bolt and the shard store, and
// once the node is stopping none starts. Work runs under a context that
// ends when the node stops, so waiting for it is short.

// background runs fn on its own goroutine with a context that ends when the
// node stops, unless the node is stopping already. It is counted as a
// cleanup for /metrics (pier_cleanups_running).
func (n *Node) background(fn func(ctx context.Context)) {
	n.spawn(func(ctx context.Context) {
		n.bgRunning.Add(1)
		defer n.bgRunning.Add(-1)
		fn(ctx)
	})
}

// spawn runs fn on a goroutine Shutdown waits for, with a context that ends
// when the node stops. It reports false, and runs nothing, once the node is
// stopping.
func (n *Node) spawn(fn func(ctx context.Context)) bool {
	release, err := n.hold()
	if err != nil {
		return false
	}
	go func() {
		defer release()
		fn(n.ctx)
	}()
	return true
}

// hold registers work a caller runs on its own goroutine (a request's), so
// that Shutdown waits for it; release ends it and may be called more than
// once. It fails with ErrShutdown once the node is stopping.
func (n *Node) hold() (release func(), err error) {
	n.bgMu.Lock()
	defer n.bgMu.Unlock()
	if n.stopping {
		return nil, ErrShutdown
	}
	n.bg.Add(1)
	var once sync.Once
	return func() { once.Do(n.bg.Done) }, nil
}

// bound returns ctx, also ended when the node stops: a push's context
// outlives its client on purpose (writeContext in httpapi), not the node.
func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// waitWired waits until New has set up every part of the node; false when
// the node stopped first.
func (n *Node) waitWired() bool {
	select {
	case <-n.wired:
		return true
	case <-n.stop:
		return false
	}
}
