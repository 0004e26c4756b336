package batch

import (
	"context"
	"sync"
	"time"
)

// Gate counts work on its way into a batcher, so that the batcher can wait
// for it and send it in the batch it is about to take instead of the next
// one. It is PostgreSQL's commit_delay with commit_siblings: wait only when
// others are known to be about to commit, and never longer than a bound.
//
// The committer uses it for small pushes: each one stores its copies (a
// pack write and fdatasync on every copy's node) and then commits. With one
// batch in flight, the pushes that finished storing while a batch commits
// make the next batch, and the ones still storing wait a whole raft round
// for the one after. Under 16 connections of 10 KiB pushes that was about
// six pushes a batch and two fdatasyncs a push over the cluster (each raft
// append is two fdatasyncs of raft.db on every node); waiting for the
// pushes storing when the batch is taken cut that to about 1.5
// (2026-12-05, cluster/DESIGN.md).
type Gate struct {
	mu   sync.Mutex
	next uint64
	open map[uint64]struct{}
	// changed is closed, and replaced, whenever a ticket leaves.
	changed chan struct{}
	// marked, when set (tests), runs once Drain knows what it waits for.
	marked func()
}

// NewGate returns an empty gate.
func NewGate() *Gate {
	return &Gate{open: map[uint64]struct{}{}, changed: make(chan struct{})}
}

// Ticket is one piece of work in a gate.
type Ticket struct {
	g    *Gate
	id   uint64
	once sync.Once
}

// Enter counts a piece of work in; Leave counts it out. A nil gate gives a
// nil ticket, whose Leave does nothing.
func (g *Gate) Enter() *Ticket {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &Ticket{g: g, id: g.next}
	g.next++
	g.open[t.id] = struct{}{}
	return t
}

// Leave counts the ticket's work out of its gate; calls after the first do
// nothing.
func (t *Ticket) Leave() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		g := t.g
		g.mu.Lock()
		delete(g.open, t.id)
		close(g.changed)
		g.changed = make(chan struct{})
		g.mu.Unlock()
	})
}

// Drain returns once every ticket that entered before the call has left,
// or after max. Work that enters meanwhile is not waited for: under a
// steady stream the gate is never empty, and waiting for it would only
// stop at the bound.
func (g *Gate) Drain(max time.Duration) {
	if g == nil {
		return
	}
	g.mu.Lock()
	mark, marked := g.next, g.marked
	g.mu.Unlock()
	if marked != nil {
		marked()
	}
	var timeout <-chan time.Time
	for {
		g.mu.Lock()
		waiting := false
		for id := range g.open {
			if id < mark {
				waiting = true
				break
			}
		}
		changed := g.changed
		g.mu.Unlock()
		if !waiting {
			return
		}
		if timeout == nil {
			t := time.NewTimer(max)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return
		}
	}
}

// Slot carries a request's ticket through its context, from the code that
// knows the request is about to commit (a small push whose body is in
// memory) to the code that queues its commit, and lets the request's owner
// make sure it leaves whatever happens in between.
type Slot struct {
	mu sync.Mutex
	t  *Ticket
}

type slotKey struct{}

// WithSlot returns a context carrying a new empty slot, and the slot; its
// owner calls Leave when the request ends.
func WithSlot(ctx context.Context) (context.Context, *Slot) {
	s := &Slot{}
	return context.WithValue(ctx, slotKey{}, s), s
}

// SlotFrom returns the slot ctx carries, or nil, whose methods do nothing.
func SlotFrom(ctx context.Context) *Slot {
	s, _ := ctx.Value(slotKey{}).(*Slot)
	return s
}

// Enter enters g unless the slot holds a ticket already.
func (s *Slot) Enter(g *Gate) {
	if s == nil || g == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t == nil {
		s.t = g.Enter()
	}
}

// Leave leaves the gate the slot entered, if any.
func (s *Slot) Leave() {
	if s == nil {
		return
	}
	s.mu.Lock()
	t := s.t
	s.mu.Unlock()
	t.Leave()
}
