package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/chunk/placement"
	"github.com/pier-registry/pier/fsm"
)

// Redundancy is how an object's shards stand.
type Redundancy string

// Redundancy states, from best to worst.
const (
	// Full: every shard is healthy on a serving node.
	Full Redundancy = "full"
	// Degraded: shards are missing but more than K remain.
	Degraded Redundancy = "degraded"
	// AtRisk: exactly K shards remain; one more loss makes it unreadable.
	AtRisk Redundancy = "at_risk"
	// Unavailable: fewer than K shards are reachable now.
	Unavailable Redundancy = "unavailable"
)

// shardView classifies the shards of one object: bad shards are repaired
// now (missing, on a node that left or is draining, or on a node dead for
// longer than RepairAfter); down shards are on nodes that are not alive but
// still within their grace period.
type shardView struct {
	bad, down []int
}

func (n *Node) assess(obj fsm.Object, now time.Time) shardView {
	var v shardView
	for i, node := range obj.Placement {
		switch {
		case slices.Contains(obj.Missing, i):
			v.bad = append(v.bad, i)
		case n.fsm.NodeState(node) != fsm.NodeActive:
			v.bad = append(v.bad, i)
		case !n.nodeUp(node):
			if now.Sub(n.downSince(node)) > n.cfg.RepairAfter {
				v.bad = append(v.bad, i)
			} else {
				v.down = append(v.down, i)
			}
		}
	}
	return v
}

// readable reports whether shard i of obj can serve as a source: not
// marked missing, on a node that has not left and that gossip calls up.
// Shards on draining nodes are readable.
func (n *Node) readable(obj fsm.Object, i int) bool {
	node := obj.Placement[i]
	return !slices.Contains(obj.Missing, i) && n.fsm.NodeState(node) != fsm.NodeLeft && n.nodeUp(node)
}

// sources counts obj's readable shards.
func (n *Node) sources(obj fsm.Object) int {
	c := 0
	for i := range obj.Placement {
		if n.readable(obj, i) {
			c++
		}
	}
	return c
}

// redundancy classifies an object for status and metrics. A shard on a
// draining node still serves, so it counts as available.
func (n *Node) redundancy(obj fsm.Object) Redundancy {
	if obj.Corrupt != "" {
		return Unavailable // no node serves it
	}
	avail := 0
	healthy := true
	for i, node := range obj.Placement {
		st := n.fsm.NodeState(node)
		switch {
		case slices.Contains(obj.Missing, i), st == fsm.NodeLeft, !n.nodeUp(node):
			healthy = false
		case st == fsm.NodeDraining:
			healthy = false
			avail++
		default:
			avail++
		}
	}
	switch {
	case avail < obj.K:
		return Unavailable
	case avail < obj.K+1 && obj.M > 0:
		return AtRisk
	case !healthy:
		return Degraded
	}
	return Full
}

// downSince returns when a node was first seen not alive; a node this
// process never saw counts from when the process started.
func (n *Node) downSince(id string) time.Time {
	if m, ok := n.members.get(id); ok && !m.Since.IsZero() {
		return m.Since
	}
	return n.started
}

// activeNodes are the nodes that may receive shards: alive, reachable and
// neither draining nor gone.
func (n *Node) activeNodes(ctx context.Context) []string {
	return n.reachable(ctx, n.liveNodes())
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
	now := time.Now()
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
	for _, m := range n.members.list() {
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
	v := n.assess(obj, now)
	if len(v.bad) == 0 {
		if len(v.down) > 0 {
			return false, nil
		}
		moved, err := n.rebalance(ctx, obj, live)
		return !moved && err == nil, err
	}
	if src := n.sources(obj); src < obj.K {
		return false, fmt.Errorf("%w: %d shards readable, %d needed to rebuild", ErrUnavailable, src, obj.K)
	}
	active := n.activeNodes(ctx)
	holding := map[string]bool{}
	for i, node := range obj.Placement {
		if !slices.Contains(v.bad, i) {
			holding[node] = true
		}
	}
	var spare []string
	for _, id := range placement.Place(obj.ID, active, len(active)) {
		if !holding[id] {
			spare = append(spare, id)
		}
	}
	targets := make([]string, len(obj.Placement))
	for _, i := range v.bad {
		h := obj.Placement[i]
		if slices.Contains(spare, h) {
			// A missing or corrupt shard on a serving node is rebuilt in
			// place.
			targets[i] = h
			spare = slices.DeleteFunc(spare, func(s string) bool { return s == h })
		}
	}
	for _, i := range v.bad {
		if targets[i] != "" {
			continue
		}
		if len(spare) == 0 {
			// Not enough distinct nodes for this scheme: re-encode the
			// object for the nodes there are.
			return false, n.rewrite(ctx, obj, active)
		}
		targets[i], spare = spare[0], spare[1:]
	}
	return false, n.rebuildOnto(ctx, obj, targets, "repair")
}

// rebalance moves one shard of a healthy object onto a node that the
// placement over the live nodes prefers, e.g. after a join, and reports
// whether it tried.
func (n *Node) rebalance(ctx context.Context, obj fsm.Object, live []string) (bool, error) {
	if len(live) < len(obj.Placement) {
		return false, nil
	}
	ideal := placement.Place(obj.ID, live, len(obj.Placement))
	var in string
	for _, id := range ideal {
		if !slices.Contains(obj.Placement, id) {
			in = id
			break
		}
	}
	if in == "" {
		return false, nil
	}
	for i, node := range obj.Placement {
		if !slices.Contains(ideal, node) {
			targets := make([]string, len(obj.Placement))
			targets[i] = in
			return true, n.rebuildOnto(ctx, obj, targets, "rebalance")
		}
	}
	return false, nil
}

// rebuildOnto writes shard i of obj to targets[i] for every non-empty
// target, rebuilt from the other shards, then points the placement at them.
func (n *Node) rebuildOnto(ctx context.Context, obj fsm.Object, targets []string, why string) error {
	l := layoutOf(obj)
	// A shard being moved off a draining node, or rebalanced, still serves
	// as a source; only those known bad are not read.
	skip := func(i int) bool { return targets[i] != "" && !n.readable(obj, i) }
	body, stop := n.decodeAll(ctx, obj, l, skip)
	defer stop()
	need := 0
	for _, t := range targets {
		if t != "" {
			need++
		}
	}
	w := n.newStripeWriter(ctx, obj.ID, l.Scheme, targets, need)
	enc, err := erasure.NewEncoder(l.Scheme, obj.BlockSize)
	if err != nil {
		w.abort()
		return err
	}
	h := sha256.New()
	size, err := enc.Encode(io.TeeReader(body, h), w.emit)
	if err == nil {
		err = checkContent(obj, size, h.Sum(nil))
	}
	if err != nil {
		w.abortKeeping(obj)
		return fmt.Errorf("%s %s: %w", why, obj.ID, err)
	}
	if _, err := w.finish(l); err != nil {
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
	n.stats.movedBytes.Add(int64(len(moves)) * l.ShardFileSize())
	n.log.Info("shards rebuilt", "why", why, "digest", obj.Digest, "object", obj.ID, "moves", moves)
	return nil
}

// rewrite re-encodes an object for the active nodes under a new object ID
// and swaps it in: the repair when there are too few distinct nodes left
// for the object's scheme.
func (n *Node) rewrite(ctx context.Context, obj fsm.Object, active []string) error {
	l := layoutOf(obj)
	body, stop := n.decodeAll(ctx, obj, l, nil)
	defer stop()
	st, err := n.storeNew(ctx, body, obj.Digest, active, true)
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

// decodeAll streams an object's whole content from its readable shards,
// skipping those skip names, at no more than RepairRate bytes per second.
func (n *Node) decodeAll(ctx context.Context, obj fsm.Object, l erasure.Layout, skip func(int) bool) (io.Reader, func()) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	open, closeAll := n.shardOpener(ctx, obj, l, 0, l.Stripes(), skip)
	go func() {
		faults, err := erasure.Decode(l, open, pw, 0, obj.Size)
		closeAll()
		n.noteFaults(obj, faults)
		pw.CloseWithError(err)
	}()
	var r io.Reader = pr
	if n.cfg.RepairRate > 0 {
		r = &rateReader{r: pr, rate: n.cfg.RepairRate, start: time.Now()}
	}
	return r, func() { cancel(); pr.Close() }
}

// checkContent refuses a rebuild whose bytes are not the object's: repair
// must never write wrong bytes, whatever the shards it read.
func checkContent(obj fsm.Object, size int64, sum []byte) error {
	if size != obj.Size {
		return fmt.Errorf("rebuilt %d bytes, object has %d", size, obj.Size)
	}
	if got := fsm.DigestPrefix + hex.EncodeToString(sum); got != obj.Digest {
		return fmt.Errorf("%w: rebuilt content hashes to %s", ErrDigestMismatch, got)
	}
	return nil
}

// abortKeeping stops a repair's streams and removes what they wrote, except
// on nodes whose shard of the same index is still the object's current one:
// an in-place rebuild must not delete the copy it failed to replace.
func (w *stripeWriter) abortKeeping(obj fsm.Object) {
	for i, node := range w.nodes {
		if node != "" && obj.Placement[i] == node {
			w.nodes[i] = ""
		}
	}
	w.abort()
}

// rateReader slows a stream to rate bytes per second on average.
type rateReader struct {
	r     io.Reader
	rate  int64
	start time.Time
	read  int64
}

func (r *rateReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.read += int64(n)
	due := time.Duration(float64(r.read) / float64(r.rate) * float64(time.Second))
	if wait := due - time.Since(r.start); wait > 0 {
		time.Sleep(wait)
	}
	return n, err
}
