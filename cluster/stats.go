package cluster

import (
	"sync/atomic"

	"github.com/pier-registry/pier/fsm"
)

// stats are counters for /metrics (repair, scrub and GC keep theirs in
// package maintenance).
type stats struct {
	// retentionDeleted and retentionBytes count what this node's
	// retention runs deleted (as leader).
	retentionDeleted atomic.Int64
	retentionBytes   atomic.Int64
}

// Stats is a snapshot of a node's counters.
type Stats struct {
	CorruptBlocks  int64 `json:"corrupt_blocks"`
	DegradedReads  int64 `json:"degraded_reads"`
	RepairedShards int64 `json:"repaired_shards"`
	RepairFailures int64 `json:"repair_failures"`
	MovedBytes     int64 `json:"moved_bytes"`
	ScrubbedBytes  int64 `json:"scrubbed_bytes"`
	ScrubCorrupt   int64 `json:"scrub_corrupt"`
	// CorruptObjects counts objects this node's scrubber marked corrupt:
	// read whole, their bytes did not hash to their digest.
	CorruptObjects int64 `json:"corrupt_objects"`
	GCRemoved      int64 `json:"gc_removed"`
	// GCBytes is what the shard files GC removed held: disk reclaimed
	// from deleted artifacts and failed pushes.
	GCBytes int64 `json:"gc_removed_bytes"`
	// RetentionDeleted and RetentionBytes count the artifacts, and their
	// bytes, retention runs on this node deleted (the leader's scheduled
	// runs and pier retention run sent here).
	RetentionDeleted int64 `json:"retention_deleted"`
	RetentionBytes   int64 `json:"retention_deleted_bytes"`
	CacheHits        int64 `json:"cache_hits"`
	CacheBytes       int64 `json:"cache_bytes"`
	// PullCache* describe the disk cache of whole objects this node
	// served (cluster/pullcache); PeerReadBytes the shard bytes its reads
	// streamed from other nodes.
	PullCacheHits      int64 `json:"pull_cache_hits"`
	PullCacheBytes     int64 `json:"pull_cache_bytes"`
	PullCacheEntries   int   `json:"pull_cache_entries"`
	PullCacheFills     int64 `json:"pull_cache_fills"`
	PullCacheFillFails int64 `json:"pull_cache_fill_failures"`
	PullCacheCorrupt   int64 `json:"pull_cache_corrupt"`
	PeerReadBytes      int64 `json:"peer_read_bytes"`
	PackFailures       int64 `json:"pack_failures"`
	// Cleanups counts deletions of a refused or deduplicated push's shards
	// still running after its answer (Release).
	Cleanups   int64 `json:"cleanups_running"`
	ShardFiles int   `json:"shard_files"`
	ShardBytes int64 `json:"shard_bytes"`
	DiskFree   int64 `json:"disk_free"`
}

// Stats returns the node's counters and local shard usage.
func (n *Node) Stats() Stats {
	files, bytes, _ := n.shards.Usage()
	oc := n.objects.Counters()
	mc := n.maint.Counters()
	free, err := n.cfg.FreeSpace(n.cfg.DataDir)
	if err != nil {
		free = 0
	}
	return Stats{
		CorruptBlocks:      oc.CorruptBlocks,
		DegradedReads:      oc.DegradedReads,
		RepairedShards:     mc.RepairedShards,
		RepairFailures:     mc.RepairFailures,
		MovedBytes:         mc.MovedBytes,
		ScrubbedBytes:      mc.ScrubbedBytes,
		ScrubCorrupt:       mc.ScrubCorrupt,
		CorruptObjects:     mc.CorruptObjects,
		GCRemoved:          mc.GCRemoved,
		GCBytes:            mc.GCBytes,
		RetentionDeleted:   n.stats.retentionDeleted.Load(),
		RetentionBytes:     n.stats.retentionBytes.Load(),
		CacheHits:          oc.CacheHits,
		CacheBytes:         oc.CacheBytes,
		PullCacheHits:      oc.PullCache.Hits,
		PullCacheBytes:     oc.PullCache.Bytes,
		PullCacheEntries:   oc.PullCache.Entries,
		PullCacheFills:     oc.PullCache.Fills,
		PullCacheFillFails: oc.PullCache.FillFailures,
		PullCacheCorrupt:   oc.PullCache.Corrupt,
		PeerReadBytes:      oc.PeerReadBytes,
		PackFailures:       oc.PackFailures,
		Cleanups:           n.bgRunning.Load(),
		ShardFiles:         files,
		ShardBytes:         bytes,
		DiskFree:           free,
	}
}

// liveNodes returns the ids of alive, active members of the datacenter,
// sorted: the candidates for a new object's shards.
func (n *Node) liveNodes() []string {
	var ids []string
	for _, m := range n.pool.Alive(n.cfg.Datacenter) {
		if m.Meta.HTTP != "" && !m.Meta.Full && !n.pool.RecentlyUnreachable(m.ID) && n.fsm.NodeState(m.ID) == fsm.NodeActive {
			if m.ID == n.cfg.ID && n.DiskFull() {
				continue
			}
			ids = append(ids, m.ID)
		}
	}
	return ids
}
