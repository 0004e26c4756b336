package maintenance

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
func (m *Maintainer) gc(ctx context.Context) {
	if m.halted() {
		return // entries after the halt may bind the files
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.BarrierTimeout)
	err := m.cfg.Log.Barrier(ctx)
	cancel()
	if err == nil {
		m.collect(m.cfg.Clock.Now())
	}
}

// collect removes the unreferenced shard files older than GCDelay at now,
// then compacts the packs.
func (m *Maintainer) collect(now time.Time) {
	err := m.cfg.Shards.Walk(func(si chunk.ShardInfo) error {
		if obj, ok := m.cfg.State.ObjectByID(si.ID); ok && si.Index < len(obj.Placement) && obj.Placement[si.Index] == m.cfg.ID {
			return nil
		}
		if now.Sub(si.Modified) < m.cfg.GCDelay {
			return nil
		}
		if err := m.cfg.Shards.Remove(si.ID, si.Index); err != nil {
			m.log.Warn("gc: remove shard", "object", si.ID, "shard", si.Index, "error", err)
			return nil
		}
		m.stats.gcRemoved.Add(1)
		m.stats.gcBytes.Add(si.Size)
		m.log.Debug("gc: removed unreferenced shard", "object", si.ID, "shard", si.Index)
		return nil
	})
	if err != nil {
		m.log.Warn("gc: walk shards", "error", err)
	}
	// Removed packed shards leave dead records; reclaim packs that are
	// mostly dead.
	if removed, err := m.cfg.Shards.Compact(); err != nil {
		m.log.Warn("gc: compact packs", "error", err)
	} else if removed > 0 {
		m.log.Debug("gc: compacted packs", "removed", removed)
	}
}
