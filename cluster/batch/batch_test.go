package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// gate is a Func whose batches block until released, recording each batch.
type gate struct {
	mu      sync.Mutex
	batches [][]int
	started chan struct{}
	release chan struct{}
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) run(items []int) ([]int, error) {
	g.mu.Lock()
	g.batches = append(g.batches, slices.Clone(items))
	g.mu.Unlock()
	g.started <- struct{}{}
	<-g.release
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = it * 10
	}
	return out, nil
}

func TestNextBatchFillsWhileOneRuns(t *testing.T) {
	g := newGate()
	b := New(g.run, nil)
	first := b.Submit(1)
	<-g.started // batch [1] is in flight
	var wg sync.WaitGroup
	results := make([][]int, 4)
	for i := range 4 {
		p := b.Submit(i + 2)
		wg.Go(func() {
			r, err := p.Wait(context.Background())
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	close(g.release)
	if r, err := first.Wait(context.Background()); err != nil || r[0] != 10 {
		t.Fatalf("first: %v %v", r, err)
	}
	wg.Wait()
	b.Wait()
	if len(g.batches) != 2 || len(g.batches[1]) != 4 {
		t.Fatalf("batches %v, want [1] then the four queued while it ran", g.batches)
	}
	for i, r := range results {
		if r[0] != (i+2)*10 {
			t.Errorf("item %d got %v", i+2, r)
		}
	}
}

func TestTakeBoundsABatch(t *testing.T) {
	// Hold the runner on a first batch so the next five queue together.
	hold, started := make(chan struct{}), make(chan struct{})
	var batches [][]int
	var mu sync.Mutex
	b := New(func(items []int) ([]int, error) {
		if items[0] == 0 {
			close(started)
			<-hold
		}
		mu.Lock()
		batches = append(batches, slices.Clone(items))
		mu.Unlock()
		return items, nil
	}, func(q []int) int { return 2 })
	b.Submit(0)
	<-started
	p := b.Submit(1, 2, 3, 4, 5)
	close(hold)
	res, err := p.Wait(context.Background())
	if err != nil || !slices.Equal(res, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("results %v %v", res, err)
	}
	b.Wait()
	want := [][]int{{0}, {1, 2}, {3, 4}, {5}}
	if !slices.EqualFunc(batches, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", batches, want)
	}
}

func TestErrorIsEveryItemsOutcome(t *testing.T) {
	boom := errors.New("boom")
	b := New(func(items []int) ([]int, error) { return nil, boom }, nil)
	if _, err := b.Do(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	short := New(func(items []int) ([]int, error) { return nil, nil }, nil)
	if _, err := short.Do(context.Background(), 1); err == nil {
		t.Fatal("a batch answered with too few results must fail its items")
	}
}

func TestCloseFailsQueuedAndRefusesNew(t *testing.T) {
	g := newGate()
	b := New(g.run, nil)
	inFlight := b.Submit(1)
	<-g.started
	queued := b.Submit(2)
	b.Close()
	if _, err := queued.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("queued item: %v, want ErrClosed", err)
	}
	if _, err := b.Do(context.Background(), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("item after Close: %v, want ErrClosed", err)
	}
	close(g.release)
	b.Wait()
	if r, err := inFlight.Wait(context.Background()); err != nil || r[0] != 10 {
		t.Fatalf("the batch in flight finishes: %v %v", r, err)
	}
}

func TestWaitGivesUpWithItsContext(t *testing.T) {
	g := newGate()
	b := New(g.run, nil)
	ctx, cancel := context.WithCancel(context.Background())
	p := b.Submit(1)
	<-g.started
	cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	close(g.release)
	b.Wait()
}
