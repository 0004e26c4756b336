// Package batch gathers concurrent calls into batches, one batch in flight:
// while one runs, the next fills, so the batch size follows the load. The
// committer (one raft entry per batch), the small-object copy senders (one
// request and one fdatasync per batch) and read barriers (one read-index
// round trip per batch) are all this one shape.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is the outcome of items still queued when the batcher closes,
// and of items submitted after.
var ErrClosed = errors.New("batcher closed")

// Func runs one batch and returns one result per item, in order, or an
// error that is every item's outcome.
type Func[T, R any] func(items []T) ([]R, error)

// Batcher runs Func on queued items, one batch at a time, on a goroutine
// it starts when items arrive and that ends when the queue is empty, so an
// idle batcher holds no goroutine; Wait waits for it.
type Batcher[T, R any] struct {
	run Func[T, R]
	// take returns how many of the queued items (at least one) go in the
	// next batch; nil takes them all.
	take func(queued []T) int
	// hold, when set, runs before each batch is taken (SetHold).
	hold func()

	mu      sync.Mutex
	queue   []*call[T, R]
	running bool
	closed  bool
	idle    *sync.Cond // signalled when the runner ends
}

type call[T, R any] struct {
	item T
	done chan struct{}
	res  R
	err  error
}

// New returns a batcher that runs run. take, when not nil, bounds a batch:
// given the queue it returns how many items from its head to take (values
// below 1 take one).
func New[T, R any](run Func[T, R], take func(queued []T) int) *Batcher[T, R] {
	b := &Batcher[T, R]{run: run, take: take}
	b.idle = sync.NewCond(&b.mu)
	return b
}

// SetHold makes the batcher call hold, with nothing locked, before it takes
// each batch from the queue: a wait for items known to be on their way
// (Gate.Drain), so they go in this batch rather than the next. Call it
// before the first Submit.
func (b *Batcher[T, R]) SetHold(hold func()) {
	b.mu.Lock()
	b.hold = hold
	b.mu.Unlock()
}

// Pending is the outcome of submitted items, in submission order.
type Pending[T, R any] struct {
	calls []*call[T, R]
}

// Submit queues items, in order and adjacent, to go in the next batches.
func (b *Batcher[T, R]) Submit(items ...T) *Pending[T, R] {
	p := &Pending[T, R]{calls: make([]*call[T, R], len(items))}
	for i, it := range items {
		p.calls[i] = &call[T, R]{item: it, done: make(chan struct{})}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		for _, c := range p.calls {
			c.err = ErrClosed
			close(c.done)
		}
		return p
	}
	b.queue = append(b.queue, p.calls...)
	if !b.running && len(b.queue) > 0 {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	return p
}

// Do submits one item and waits for its outcome or for ctx to end; an item
// whose wait ctx ended may still run.
func (b *Batcher[T, R]) Do(ctx context.Context, item T) (R, error) {
	res, err := b.Submit(item).Wait(ctx)
	if err != nil {
		var zero R
		return zero, err
	}
	return res[0], nil
}

// Wait returns the results of every item, or the first error, once all
// are done or ctx ends (ctx.Err(); the items may still run).
func (p *Pending[T, R]) Wait(ctx context.Context) ([]R, error) {
	out := make([]R, len(p.calls))
	for i, c := range p.calls {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			return nil, c.err
		}
		out[i] = c.res
	}
	return out, nil
}

// loop runs batches until the queue is empty.
func (b *Batcher[T, R]) loop() {
	for {
		b.mu.Lock()
		hold := b.hold
		b.mu.Unlock()
		if hold != nil {
			hold()
		}
		b.mu.Lock()
		batch := b.next()
		if len(batch) == 0 {
			b.running = false
			b.idle.Broadcast()
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.runBatch(batch)
	}
}

// next removes the next batch from the queue; mu is held.
func (b *Batcher[T, R]) next() []*call[T, R] {
	if len(b.queue) == 0 {
		b.queue = nil
		return nil
	}
	k := len(b.queue)
	if b.take != nil {
		items := make([]T, len(b.queue))
		for i, c := range b.queue {
			items[i] = c.item
		}
		k = min(max(b.take(items), 1), len(b.queue))
	}
	batch := b.queue[:k:k]
	b.queue = b.queue[k:]
	return batch
}

func (b *Batcher[T, R]) runBatch(batch []*call[T, R]) {
	items := make([]T, len(batch))
	for i, c := range batch {
		items[i] = c.item
	}
	res, err := b.run(items)
	if err == nil && len(res) != len(batch) {
		err = fmt.Errorf("batch of %d items got %d results", len(batch), len(res))
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}

// Queued returns how many items wait for a batch.
func (b *Batcher[T, R]) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Close fails every queued item with ErrClosed and refuses new ones. A
// batch in flight runs on: Wait waits for it, once what it waits on (raft,
// a peer) has been told to stop.
func (b *Batcher[T, R]) Close() {
	b.mu.Lock()
	b.closed = true
	q := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, c := range q {
		c.err = ErrClosed
		close(c.done)
	}
}

// Wait blocks until no batch runs. After Close, none starts again.
func (b *Batcher[T, R]) Wait() {
	b.mu.Lock()
	for b.running {
		b.idle.Wait()
	}
	b.mu.Unlock()
}
