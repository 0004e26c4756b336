package cluster

import (
	"context"
	"slices"

	"github.com/pier-registry/pier/fsm"
)

// maxInline caps InlineSize: a push up to it is held whole in memory while
// its copies are written.
const maxInline = 64 << 10

// Entries with blobs. For a while a small push's bytes travelled inside its
// raft entry (fsm.Entry.Blob) and each node named in the placement packed
// its copy, without an fsync, when it applied the entry; the raft log was
// the copies' durability until the next snapshot, which synced the packs
// first. Pushes no longer do that (see packed.go), but a log written then
// still holds such entries, and they still apply the same way: a restart
// replays them into the packs, and a node that catches up from a snapshot
// instead reports the copies placed on it that it lacks, for repair.

// blobSink is the FSM's fsm.BlobSink.
type blobSink struct{ n *Node }

// StoreBlob packs this node's shards of an object whose bytes came in its
// raft entry.
func (b blobSink) StoreBlob(obj fsm.ObjectRef, blob []byte) {
	n := b.n
	for i, node := range obj.Placement {
		if node != n.cfg.ID || n.shards.Has(obj.ID, i) {
			continue
		}
		if err := n.packBlob(obj, i, blob); err != nil {
			// The put is in the log either way: the shard is missing,
			// reported once the put is applied (not from this goroutine,
			// which applies it), and rebuilt by repair.
			n.objects.CountPackFailure()
			n.log.Warn("pack inlined shard", "object", obj.ID, "shard", i, "error", err)
			n.spawn(func(context.Context) {
				if n.waitWired() {
					n.reportOnceApplied(obj.ID, i)
				}
			})
		}
	}
}

// Sync makes the packed shards durable before raft drops log entries. When
// that fails the snapshot fails with it, so raft keeps the entries, and the
// shards that did not reach the disk are looked for and reported.
func (b blobSink) Sync() error {
	err := b.n.shards.Sync()
	if err != nil {
		b.n.log.Error("sync packed shards; looking for lost ones", "error", err)
		b.n.spawn(func(context.Context) { b.n.checkPlaced("after a failed sync of the packs") })
	}
	return err
}

// Restored checks, in the background, that every shard the restored state
// places here is held. A node that caught up by snapshot never applied the
// entries it skipped, some of which may have carried its copies, and a
// node restarting from its own snapshot may have lost packs; without this
// check such copies would stay missing until the scrubber's next pass
// (daily by default) or a read.
func (b blobSink) Restored() {
	b.n.spawn(func(context.Context) { b.n.checkPlaced("after a snapshot restore") })
}

// checkPlaced reports missing every shard the state places on this node
// that it does not hold, without reading any.
func (n *Node) checkPlaced(when string) {
	if !n.waitWired() {
		return
	}
	for obj := range n.fsm.AllObjects() {
		for i, node := range obj.Placement {
			if node != n.cfg.ID || slices.Contains(obj.Missing, i) || n.shards.Has(obj.ID, i) {
				continue
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Info("shard placed here is absent "+when, "object", obj.ID, "shard", i)
			n.reportMissing(n.ctx, obj, i)
		}
	}
}

// reportOnceApplied reports shard i of object id missing once the put that
// created the object is applied here; a put that was refused creates none.
func (n *Node) reportOnceApplied(id string, i int) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.electionTimeout())
	defer cancel()
	for {
		advanced := n.fsm.Advanced()
		if obj, ok := n.fsm.ObjectByID(id); ok {
			n.reportMissing(ctx, obj, i)
			return
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) packBlob(obj fsm.ObjectRef, i int, blob []byte) error {
	return n.objects.PackBlob(obj, i, blob)
}
