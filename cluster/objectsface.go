package cluster

import (
	"context"
	"io"
	"time"

	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/fsm"
)

// PackedShard is one shard of a small object sent whole (objects).
type PackedShard = objects.PackedShard

// objectsFace is the node as package objects sees it: the decisions that
// take the metadata log or membership policy.
type objectsFace struct{ n *Node }

func (f objectsFace) Live() []string                    { return f.n.liveNodes() }
func (f objectsFace) Servers() int                      { return f.n.raftServers() }
func (f objectsFace) Barrier(ctx context.Context) error { return f.n.Barrier(ctx) }
func (f objectsFace) WaitApplied(ctx context.Context, index uint64) error {
	return f.n.waitApplied(ctx, index)
}
func (f objectsFace) ShardBad(ctx context.Context, obj fsm.Object, i int) {
	f.n.reportMissing(ctx, obj, i)
}
func (f objectsFace) ContentBad(obj fsm.Object) { f.n.maint.CheckContentSoon(obj) }
func (f objectsFace) PacksLost() {
	f.n.spawn(func(context.Context) { f.n.checkPlaced("after a failed sync of the packs") })
}

// lazyMembers reaches the gossip pool, which starts after the objects
// store exists (it needs raft's state first); objects calls it only once
// the node is wired.
type lazyMembers struct{ n *Node }

func (m lazyMembers) Get(id string) (membership.Member, bool) { return m.n.pool.Get(id) }
func (m lazyMembers) MarkUnreachable(id string)               { m.n.pool.MarkUnreachable(id) }
func (m lazyMembers) MarkReached(id string)                   { m.n.pool.MarkReached(id) }
func (m lazyMembers) ReachedWithin(id string, d time.Duration) bool {
	return m.n.pool.ReachedWithin(id, d)
}

// owner tracks the work objects starts (owned.go).
type owner struct{ n *Node }

func (o owner) Spawn(fn func(ctx context.Context)) bool { return o.n.spawn(fn) }
func (o owner) Hold() (func(), error)                   { return o.n.hold() }
func (o owner) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return o.n.bound(ctx)
}
func (o owner) Context() context.Context { return o.n.ctx }

// Open streams length bytes from offset off of an artifact's content.
func (n *Node) Open(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	return n.objects.Open(ctx, a, off, length)
}

// StoreBody streams a body into shards on the cluster's nodes and returns
// its digest and where the shards are. Every successful StoreBody must be
// followed by one Release.
func (n *Node) StoreBody(ctx context.Context, body io.Reader, expect string) (Stored, error) {
	return n.objects.StoreBody(ctx, body, expect)
}

// ReceiveShard stores a shard streamed by another node's push.
func (n *Node) ReceiveShard(ctx context.Context, id string, index int, parity bool, r io.Reader) (int64, error) {
	return n.objects.ReceiveShard(ctx, id, index, parity, r)
}

// OpenShard serves length bytes at off of a local shard to a peer whose
// state has applied index after.
func (n *Node) OpenShard(ctx context.Context, id string, index int, off, length int64, after uint64) (io.ReadCloser, error) {
	return n.objects.OpenShard(ctx, id, index, off, length, after)
}

// RemoveShard deletes a local shard file.
func (n *Node) RemoveShard(id string, index int) error { return n.objects.RemoveShard(id, index) }

// ReceivePacked stores shards of small objects in this node's packs.
func (n *Node) ReceivePacked(shards []PackedShard) error { return n.objects.ReceivePacked(shards) }

// nodeUp reports whether a node is this one or alive in gossip.
func (n *Node) nodeUp(id string) bool { return n.objects.NodeUp(id) }

// deleteShards removes an object's shards from their nodes, best effort.
func (n *Node) deleteShards(ctx context.Context, ref fsm.ObjectRef) { n.objects.Delete(ctx, ref) }
