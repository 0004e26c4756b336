package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/cluster/repairplan"
	"github.com/pier-registry/pier/fsm"
)

// Redundancy is how an object's shards stand (repairplan decides).
type Redundancy = repairplan.Redundancy

// Redundancy states, from best to worst.
const (
	Full        = repairplan.Full
	Degraded    = repairplan.Degraded
	AtRisk      = repairplan.AtRisk
	Unavailable = repairplan.Unavailable
)

// nodeView shows repairplan the nodes as this node sees them.
type nodeView struct{ n *Node }

func (v nodeView) State(id string) fsm.NodeState { return v.n.fsm.NodeState(id) }
func (v nodeView) Up(id string) bool             { return v.n.nodeUp(id) }
func (v nodeView) DownSince(id string) time.Time { return v.n.downSince(id) }

// readable reports whether shard i of obj can serve as a source.
func (n *Node) readable(obj fsm.Object, i int) bool { return repairplan.Readable(obj, nodeView{n}, i) }

// redundancy classifies an object for status and metrics.
func (n *Node) redundancy(obj fsm.Object) Redundancy { return repairplan.Classify(obj, nodeView{n}) }

// downSince returns when a node was first seen not alive; a node this
// process never saw counts from when the process started.
func (n *Node) downSince(id string) time.Time {
	if m, ok := n.pool.Get(id); ok && !m.Since.IsZero() {
		return m.Since
	}
	return n.started
}

// activeNodes are the nodes that may receive shards: alive, reachable and
// neither draining nor gone.
func (n *Node) activeNodes(ctx context.Context) []string {
	return n.objects.Reachable(ctx, n.liveNodes())
}

// repairMemo is what the last repair pass left settled: with the members
// seen as they were then (sig), every object whose record was written up to
// index applied needed nothing. The next pass, if the members still look
// the same, looks only at objects written since; a pass over every object
// every RepairInterval cost the leader 19% of its CPU under a 10 KiB push
// load once it held 60,000 objects.
type repairMemo struct {
	sig     string
	applied uint64
}

// repairPass runs on the leader every RepairInterval: one pass over every
// object (or every object changed since the last settled pass), one object
// at a time, reading at most RepairRate bytes per second.
func (n *Node) repairPass(ctx context.Context) {
	live := n.liveNodes()
	sig := n.repairSignature(live)
	var since uint64
	if n.repairMemo.sig == sig {
		since = n.repairMemo.applied
	}
	n.repairMemo = repairMemo{}
	upTo := n.fsm.Applied()
	objs := n.fsm.ObjectsChangedSince(since)
	sort.Slice(objs, func(i, j int) bool { return objs[i].Digest < objs[j].Digest })
	now := n.cfg.Now()
	settled := true
	for _, obj := range objs {
		if ctx.Err() != nil || !n.IsLeader() {
			return
		}
		ok, err := n.repairObject(ctx, obj, now, live)
		if err != nil {
			n.stats.repairFailures.Add(1)
			n.log.Warn("repair failed, will retry", "digest", obj.Digest, "object", obj.ID, "error", err)
		}
		settled = settled && ok
	}
	if settled && sig == n.repairSignature(n.liveNodes()) {
		n.repairMemo = repairMemo{sig: sig, applied: upTo}
	}
}

// repairSignature sums up every input of repairObject that is not in an
// object's own record: the members, their gossip and agreed states, and
// the nodes new placements may use (live, as liveNodes returns them).
func (n *Node) repairSignature(live []string) string {
	var b strings.Builder
	for _, m := range n.pool.List() {
		fmt.Fprintf(&b, "%s %s %s %s %t;", m.ID, m.State, n.fsm.NodeState(m.ID), m.Meta.HTTP, m.Meta.Full)
	}
	b.WriteString("|")
	b.WriteString(strings.Join(live, ","))
	return b.String()
}

// repairObject restores one object's redundancy, or moves one shard
// towards the placement the live nodes imply. Every change writes new
// shards before the placement points at them, so redundancy never drops
// during a repair or a move. It reports settled when the object needed
// nothing and has nothing pending (no shard on a node that is down).
func (n *Node) repairObject(ctx context.Context, obj fsm.Object, now time.Time, live []string) (settled bool, err error) {
	if obj.Corrupt != "" {
		// Nothing to rebuild from: every rebuild would fail its digest
		// check. A push of the real bytes heals it, and changes the record.
		return true, nil
	}
	v := repairplan.Assess(obj, nodeView{n}, now, n.cfg.RepairAfter)
	if len(v.Bad) == 0 {
		if len(v.Down) > 0 {
			return false, nil
		}
		moved, err := n.rebalance(ctx, obj, live)
		return !moved && err == nil, err
	}
	if src := repairplan.Sources(obj, nodeView{n}); src < obj.K {
		return false, fmt.Errorf("%w: %d shards readable, %d needed to rebuild", ErrUnavailable, src, obj.K)
	}
	active := n.activeNodes(ctx)
	targets, rewrite := repairplan.Targets(obj, v.Bad, active)
	if rewrite {
		// Not enough distinct nodes for this scheme: re-encode the object
		// for the nodes there are.
		return false, n.rewrite(ctx, obj, active)
	}
	return false, n.rebuildOnto(ctx, obj, targets, "repair")
}

// rebalance moves one shard of a healthy object onto a node that the
// placement over the live nodes prefers, e.g. after a join, and reports
// whether it tried.
func (n *Node) rebalance(ctx context.Context, obj fsm.Object, live []string) (bool, error) {
	targets, ok := repairplan.Rebalance(obj, live)
	if !ok {
		return false, nil
	}
	return true, n.rebuildOnto(ctx, obj, targets, "rebalance")
}

// rebuildOnto writes shard i of obj to targets[i] for every non-empty
// target, rebuilt from the other shards, then points the placement at them.
func (n *Node) rebuildOnto(ctx context.Context, obj fsm.Object, targets []string, why string) error {
	// A shard being moved off a draining node, or rebalanced, still serves
	// as a source; only those known bad are not read.
	skip := func(i int) bool { return targets[i] != "" && !n.readable(obj, i) }
	if err := n.objects.Rebuild(ctx, obj, targets, skip); err != nil {
		return fmt.Errorf("%s %s: %w", why, obj.ID, err)
	}
	var moves []fsm.ShardMove
	for i, t := range targets {
		if t != "" {
			moves = append(moves, fsm.ShardMove{Index: i, From: obj.Placement[i], To: t})
		}
	}
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpMoveShards, Shards: &fsm.ShardChange{
		Digest: obj.Digest, ObjectID: obj.ID, Moves: moves}})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		// New copies a stale move made are garbage for GC on their nodes.
		return fmt.Errorf("%s %s: commit moves: %w", why, obj.ID, err)
	}
	n.stats.repairedShards.Add(int64(len(moves)))
	n.stats.movedBytes.Add(int64(len(moves)) * objects.LayoutOf(obj).ShardFileSize())
	n.log.Info("shards rebuilt", "why", why, "digest", obj.Digest, "object", obj.ID, "moves", moves)
	return nil
}

// rewrite re-encodes an object for the active nodes under a new object ID
// and swaps it in: the repair when there are too few distinct nodes left
// for the object's scheme.
func (n *Node) rewrite(ctx context.Context, obj fsm.Object, active []string) error {
	body, stop := n.objects.DecodeAll(ctx, obj, nil)
	defer stop()
	st, err := n.objects.StoreNew(ctx, body, obj.Digest, active, true)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", obj.ID, err)
	}
	if st.Size != obj.Size {
		n.deleteShards(ctx, st.Object)
		return fmt.Errorf("rewrite %s: %d bytes, want %d", obj.ID, st.Size, obj.Size)
	}
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpReplaceObject, Shards: &fsm.ShardChange{
		Digest: obj.Digest, ObjectID: obj.ID, Replace: &st.Object}})
	if err == nil {
		err = res.Err()
	}
	if err != nil && !n.replaced(ctx, obj.Digest, st.Object) {
		return fmt.Errorf("rewrite %s: commit: %w", obj.ID, err)
	}
	n.stats.repairedShards.Add(int64(len(st.Object.Placement)))
	n.stats.movedBytes.Add(st.Size * int64(st.Object.K+st.Object.M) / int64(st.Object.K))
	n.log.Info("object re-encoded", "digest", obj.Digest, "old", obj.ID, "new", st.Object.ID,
		"scheme", fmt.Sprintf("%d+%d", st.Object.K, st.Object.M), "placement", st.Object.Placement)
	return nil
}

// replaced decides a rewrite whose commit failed. A try that committed
// before a leadership change or a lost answer is retried by apply, and the
// retry is refused as not current, because the object now is the new copy:
// deleting its shards then lost the object (seen in clustertest: every
// shard of a re-encoded object gone). So the state decides, after a
// barrier: the new copy is kept if it is current, deleted if not, and left
// to garbage collection if the barrier fails too.
func (n *Node) replaced(ctx context.Context, digest string, ref fsm.ObjectRef) bool {
	if err := n.Barrier(ctx); err != nil {
		return false
	}
	if cur, ok := n.fsm.Object(digest); ok && cur.ID == ref.ID {
		return true
	}
	n.deleteShards(ctx, ref)
	return false
}
