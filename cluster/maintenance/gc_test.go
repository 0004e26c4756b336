package maintenance

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/fsm"
)

// GC deletes a shard file only when no object places it on this node and
// it is older than GCDelay: a young one may belong to a push or a repair
// whose commit is still on its way.
func TestGCDeletesOnlyOldUnreferencedShards(t *testing.T) {
	held := object("da", "n1", "n2", "n3")
	moved := object("db", "n2", "n3", "n4") // shard 0 used to be here
	w := newWorld(held, moved)
	r := newRig(t, w, "n1", "n2", "n3", "n4")
	old, young := t0.Add(-time.Hour), t0.Add(-time.Minute)
	r.sh.files = []chunk.ShardInfo{
		{ID: held.ID, Index: 0, Size: 10, Modified: old},  // referenced
		{ID: moved.ID, Index: 0, Size: 20, Modified: old}, // left behind by a move
		{ID: "gone", Index: 1, Size: 30, Modified: old},   // deleted or failed push
		{ID: "inflight", Index: 2, Size: 40, Modified: young},
		{ID: held.ID, Index: 1, Size: 50, Modified: young}, // placed on n2, young
	}

	r.m.gc(t.Context())

	want := []string{shardKey(moved.ID, 0), shardKey("gone", 1)}
	if !slices.Equal(r.sh.removed, want) {
		t.Fatalf("removed %v, want %v", r.sh.removed, want)
	}
	if c := r.m.Counters(); c.GCRemoved != 2 || c.GCBytes != 50 {
		t.Fatalf("counters %+v", c)
	}
	if r.sh.compact != 1 || w.barriers != 1 {
		t.Fatalf("%d compactions after %d barriers, want one after one", r.sh.compact, w.barriers)
	}

	// Once GCDelay has passed, the in-flight push never committed: its
	// shard is garbage too.
	r.clk.now = t0.Add(time.Hour)
	r.m.gc(t.Context())
	if !slices.Contains(r.sh.removed, shardKey("inflight", 2)) || slices.Contains(r.sh.removed, shardKey(held.ID, 0)) {
		t.Fatalf("removed %v", r.sh.removed)
	}
}

// GC judges nothing without a read barrier (a lagging node would take new
// objects for garbage) or when the state machine has halted.
func TestGCNeedsABarrierAndNoHalt(t *testing.T) {
	w := newWorld()
	r := newRig(t, w, "n1")
	r.sh.files = []chunk.ShardInfo{{ID: "gone", Index: 0, Modified: t0.Add(-time.Hour)}}
	w.barrier = errors.New("no leader")
	r.m.gc(t.Context())
	w.barrier = nil
	w.halt = &fsm.Halt{Index: 7, Err: errors.New("unknown entry")}
	r.m.gc(t.Context())
	if len(r.sh.removed) != 0 || r.sh.compact != 0 {
		t.Fatalf("removed %v, compacted %d times", r.sh.removed, r.sh.compact)
	}
}

// Each loop runs its pass every interval and returns when its context
// ends.
func TestLoopsStopWhenTheirContextEnds(t *testing.T) {
	w := newWorld(object("da", "n1", "n2", "n3"))
	r := newRig(t, w, "n1", "n2", "n3")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){r.m.RunRepair, r.m.RunScrub, r.m.RunGC} {
		wg.Go(func() { run(ctx) })
	}
	eventually(t, "every loop ran twice", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		// Repair and scrub each range over the objects once a pass.
		return w.barriers >= 2 && len(w.since) >= 4
	})
	cancel()
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("loops still running after their context ended")
	}
}
