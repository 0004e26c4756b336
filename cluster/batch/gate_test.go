package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// never is a bound no test reaches: the gates below drain on their own.
const never = time.Hour

func TestDrainWithNothingInTheGateReturnsAtOnce(t *testing.T) {
	g := NewGate()
	g.Drain(never)
	g.Enter().Leave()
	g.Drain(never)
	var nilGate *Gate
	nilGate.Drain(never)
	nilGate.Enter().Leave()
}

func TestDrainWaitsForEarlierEntriesOnly(t *testing.T) {
	g := NewGate()
	marked := make(chan struct{})
	g.marked = func() { close(marked) }
	early := g.Enter()
	drained := make(chan struct{})
	go func() {
		g.Drain(never)
		close(drained)
	}()
	// An entry made once Drain is waiting is not waited for: Drain ends
	// when early leaves though late stays.
	<-marked
	late := g.Enter()
	defer late.Leave()
	select {
	case <-drained:
		t.Fatal("Drain returned with an earlier ticket still in")
	default:
	}
	early.Leave()
	early.Leave() // a second Leave does nothing
	<-drained
}

func TestDrainStopsAtItsBound(t *testing.T) {
	g := NewGate()
	stuck := g.Enter()
	defer stuck.Leave()
	g.Drain(time.Nanosecond) // returns though stuck never leaves
}

func TestSlotLeavesOnceAndOnlyWhatItEntered(t *testing.T) {
	g := NewGate()
	ctx, s := WithSlot(context.Background())
	if SlotFrom(ctx) != s {
		t.Fatal("SlotFrom lost the slot")
	}
	SlotFrom(context.Background()).Enter(g) // no slot: nothing happens
	SlotFrom(context.Background()).Leave()
	s.Leave() // nothing entered yet
	s.Enter(g)
	s.Enter(g) // holds a ticket already
	if n := len(g.open); n != 1 {
		t.Fatalf("%d tickets in, want 1", n)
	}
	s.Leave()
	s.Leave()
	if n := len(g.open); n != 0 {
		t.Fatalf("%d tickets in after Leave", n)
	}
}

// holdGroup is n items entered in a gate before any is submitted; each
// leaves right after its Submit, as a push leaves once its commit is queued.
func holdGroup(t *testing.T, b *Batcher[int, int], g *Gate, n int) []error {
	t.Helper()
	tickets := make([]*Ticket, n)
	for i := range tickets {
		tickets[i] = g.Enter()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := b.Submit(i)
			tickets[i].Leave()
			res, err := p.Wait(context.Background())
			if err == nil && res[0] != i*10 {
				err = errors.New("wrong result")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	b.Wait()
	return errs
}

func TestHeldItemsShareOneBatch(t *testing.T) {
	const n = 16
	g := NewGate()
	var runs atomic.Int32
	b := New(func(items []int) ([]int, error) {
		runs.Add(1)
		out := make([]int, len(items))
		for i, it := range items {
			out[i] = it * 10
		}
		return out, nil
	}, nil)
	b.SetHold(func() { g.Drain(never) })
	for i, err := range holdGroup(t, b, g, n) {
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	// Without the hold the first item's batch would have gone alone.
	if r := runs.Load(); r != 1 {
		t.Fatalf("%d concurrent items took %d batches, want 1", n, r)
	}
}

func TestAFailedHeldBatchFailsEveryItem(t *testing.T) {
	const n = 16
	g := NewGate()
	errSync := errors.New("fdatasync: input/output error")
	var runs atomic.Int32
	b := New(func(items []int) ([]int, error) {
		runs.Add(1)
		return nil, errSync
	}, nil)
	b.SetHold(func() { g.Drain(never) })
	for i, err := range holdGroup(t, b, g, n) {
		if !errors.Is(err, errSync) {
			t.Errorf("item %d: %v, want the batch's error", i, err)
		}
	}
	if r := runs.Load(); r != 1 {
		t.Fatalf("%d batches, want 1", r)
	}
}
