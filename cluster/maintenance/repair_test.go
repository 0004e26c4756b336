package maintenance

import (
	"slices"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster/repairplan"
	"github.com/pier-registry/pier/fsm"
)

// A shard on a node that left is rebuilt onto the node repairplan picks,
// from the other shards, and the placement then points at it.
func TestRepairRebuildsALostShardOntoThePlannedTarget(t *testing.T) {
	obj := object("d1", "n1", "n2", "n3")
	w := newWorld(obj)
	w.states["n2"] = fsm.NodeLeft
	r := newRig(t, w, "n1", "n3", "n4", "n5")
	want, rewrite := repairplan.Targets(obj, []int{1}, r.mem.Live())
	if rewrite || want[1] == "" {
		t.Fatalf("plan: %v rewrite %v", want, rewrite)
	}

	r.m.repairPass(t.Context())

	if len(r.st.rebuilds) != 1 {
		t.Fatalf("%d rebuilds, want 1", len(r.st.rebuilds))
	}
	if got := r.st.rebuilds[0]; !slices.Equal(got.targets, want) || !slices.Equal(got.skipped, []int{1}) {
		t.Fatalf("rebuild onto %v leaving out %v; want onto %v leaving out [1]", got.targets, got.skipped, want)
	}
	cur, _ := w.Object("d1")
	if cur.Placement[1] != want[1] {
		t.Fatalf("placement %v, want shard 1 on %s", cur.Placement, want[1])
	}
	if c := r.m.Counters(); c.RepairedShards != 1 || c.MovedBytes != shardFileSize(obj) {
		t.Fatalf("counters %+v", c)
	}
}

// A healthy object moves one shard per pass towards the placement the live
// nodes imply (after a join), every shard still serving as a source.
func TestRebalanceMovesOneShard(t *testing.T) {
	live := []string{"n1", "n2", "n3", "n4"}
	var obj fsm.Object
	var plan []string
	for skip := range live {
		obj = object("d1", slices.Delete(slices.Clone(live), skip, skip+1)...)
		if p, ok := repairplan.Rebalance(obj, live); ok {
			plan = p
			break
		}
	}
	if plan == nil {
		t.Fatal("every placement is ideal")
	}
	w := newWorld(obj)
	r := newRig(t, w, live...)

	r.m.repairPass(t.Context())

	if len(r.st.rebuilds) != 1 {
		t.Fatalf("%d rebuilds, want 1", len(r.st.rebuilds))
	}
	got := r.st.rebuilds[0]
	moved := len(slices.DeleteFunc(slices.Clone(got.targets), func(s string) bool { return s == "" }))
	if moved != 1 || !slices.Equal(got.targets, plan) || len(got.skipped) != 0 {
		t.Fatalf("rebuild onto %v leaving out %v; want one shard onto %v, every shard a source", got.targets, got.skipped, plan)
	}
	if ops := w.ops(); !slices.Equal(ops, []fsm.Op{fsm.OpMoveShards}) {
		t.Fatalf("committed %v", ops)
	}
	// Moved, the placement is ideal: nothing more to move.
	r.m.repairPass(t.Context())
	if len(r.st.rebuilds) != 1 {
		t.Fatalf("moved again: %+v", r.st.rebuilds)
	}
}

// Too few distinct nodes for the scheme: the object is re-encoded for the
// nodes there are and swapped in under its new ID.
func TestRepairReencodesWhenTooFewNodes(t *testing.T) {
	obj := object("d1", "n1", "n2", "n3")
	w := newWorld(obj)
	w.states["n3"] = fsm.NodeLeft
	r := newRig(t, w, "n1", "n2")

	r.m.repairPass(t.Context())

	if len(r.st.reencoded) != 1 || len(r.st.rebuilds) != 0 {
		t.Fatalf("re-encoded %v, rebuilt %v", r.st.reencoded, r.st.rebuilds)
	}
	if cur, _ := w.Object("d1"); cur.ID != r.st.reencoded[0].ID {
		t.Fatalf("object is %s, want the new copy %s", cur.ID, r.st.reencoded[0].ID)
	}
	if len(r.st.deleted) != 0 {
		t.Fatalf("deleted %v", r.st.deleted)
	}
}

// A re-encode whose commit reports failure is fenced through raft: kept
// when its ID turns out bound (a try that committed), deleted when the
// fence came first.
func TestRewriteCommitFailureAsksTheState(t *testing.T) {
	obj := object("d1", "n1", "n2", "n3")
	w := newWorld(obj)
	r := newRig(t, w, "n1", "n2")
	w.refuse = errRefused
	if err := r.m.rewrite(t.Context(), obj, []string{"n1", "n2"}); err == nil {
		t.Fatal("rewrite with a refused commit succeeded")
	}
	if len(r.st.deleted) != 1 || w.fenced != 1 {
		t.Fatalf("refused copy: deleted %v after %d fences, want it deleted after one", r.st.deleted, w.fenced)
	}

	// The commit went through, but its answer was lost.
	w.refuse = nil
	cur := obj
	cur.ObjectRef = fsm.ObjectRef{ID: obj.ID + "-new", K: 1, M: 1, Placement: []string{"n1", "n2"}}
	w.objects["d1"] = cur
	w.refuse = errRefused
	if err := r.m.rewrite(t.Context(), obj, []string{"n1", "n2"}); err != nil {
		t.Fatalf("rewrite that committed: %v", err)
	}
	if len(r.st.deleted) != 1 {
		t.Fatalf("deleted the current copy: %v", r.st.deleted)
	}
}

// A node down within RepairAfter is waited for; after it, its shard is
// rebuilt elsewhere; and an object settled under unchanged members is not
// looked at again until they change.
func TestRepairWaitsThenRemembers(t *testing.T) {
	obj := object("d1", "n1", "n2", "n3")
	w := newWorld(obj)
	r := newRig(t, w, "n1", "n3", "n4")
	r.mem.down["n2"] = t0.Add(-time.Minute)

	r.m.repairPass(t.Context())
	if len(r.st.rebuilds) != 0 {
		t.Fatalf("rebuilt a shard of a node down for a minute: %v", r.st.rebuilds)
	}

	// The clock moves past RepairAfter.
	r.clk.now = t0.Add(10 * time.Minute)
	r.m.repairPass(t.Context())
	if len(r.st.rebuilds) != 1 || r.st.rebuilds[0].targets[1] != "n4" {
		t.Fatalf("rebuilds %+v, want shard 1 onto n4", r.st.rebuilds)
	}

	// Settled: the pass after the one that found so looks only at what
	// changed since.
	r.m.repairPass(t.Context())
	r.m.repairPass(t.Context())
	if n := len(w.since); w.since[n-1] == 0 {
		t.Fatalf("a pass after a settled one scanned everything: since %v", w.since)
	}
	r.mem.live = []string{"n1", "n3"}
	r.m.repairPass(t.Context())
	if n := len(w.since); w.since[n-1] != 0 {
		t.Fatalf("a pass after the members changed did not scan everything: since %v", w.since)
	}
	if len(r.st.rebuilds) != 1 {
		t.Fatalf("rebuilds %+v", r.st.rebuilds)
	}
}
