package cluster

import (
	"context"
	"time"

	"github.com/pier-registry/pier/chunk"
)

// gc deletes shards that no committed object places on this node:
// shards of failed or duplicate pushes, of deleted objects, and copies left
// behind by repairs and moves. A file must be older than GCDelay, so shards
// of a push or repair that has not committed yet are never taken, and only a
// node whose state holds every acknowledged write (after a read barrier)
// judges: a lagging follower would take new objects for garbage.
func (n *Node) gc(ctx context.Context) {
	if n.halted() {
		return // see halt.go
	}
	ctx, cancel := context.WithTimeout(ctx, 10*n.electionTimeout())
	err := n.Barrier(ctx)
	cancel()
	if err == nil {
		n.collect(n.cfg.Now())
	}
}

func (n *Node) collect(now time.Time) {
	err := n.shards.Walk(func(si chunk.ShardInfo) error {
		if obj, ok := n.fsm.ObjectByID(si.ID); ok && si.Index < len(obj.Placement) && obj.Placement[si.Index] == n.cfg.ID {
			return nil
		}
		if now.Sub(si.Modified) < n.cfg.GCDelay {
			return nil
		}
		if err := n.shards.Remove(si.ID, si.Index); err != nil {
			n.log.Warn("gc: remove shard", "object", si.ID, "shard", si.Index, "error", err)
			return nil
		}
		n.stats.gcRemoved.Add(1)
		n.stats.gcBytes.Add(si.Size)
		n.log.Debug("gc: removed unreferenced shard", "object", si.ID, "shard", si.Index)
		return nil
	})
	if err != nil {
		n.log.Warn("gc: walk shards", "error", err)
	}
	// Removed packed shards leave dead records; reclaim packs that are
	// mostly dead.
	if removed, err := n.shards.Compact(); err != nil {
		n.log.Warn("gc: compact packs", "error", err)
	} else if removed > 0 {
		n.log.Debug("gc: compacted packs", "removed", removed)
	}
}
