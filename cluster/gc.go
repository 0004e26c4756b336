package cluster

import (
	"context"
	"time"

	"github.com/pier-registry/pier/chunk"
)

// gcLoop deletes shard files that no committed object places on this node:
// shards of failed or duplicate pushes, of deleted objects, and copies left
// behind by repairs and moves. A file must be older than GCDelay, so shards
// of a push or repair that has not committed yet are never taken.
func (n *Node) gcLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		// Only a node whose state holds every acknowledged write may judge
		// a shard unreferenced: a lagging follower would take new objects.
		ctx, cancel := context.WithTimeout(context.Background(), 10*n.electionTimeout())
		err := n.Barrier(ctx)
		cancel()
		if err == nil {
			n.collect(time.Now())
		}
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
		n.log.Debug("gc: removed unreferenced shard", "object", si.ID, "shard", si.Index)
		return nil
	})
	if err != nil {
		n.log.Warn("gc: walk shards", "error", err)
	}
}
