package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/fsm"
)

// stats are counters for /metrics.
type stats struct {
	corruptBlocks  atomic.Int64
	degradedReads  atomic.Int64
	repairedShards atomic.Int64
	repairFailures atomic.Int64
	movedBytes     atomic.Int64
	scrubbedBytes  atomic.Int64
	scrubCorrupt   atomic.Int64
	corruptObjects atomic.Int64
	gcRemoved      atomic.Int64
	cacheHits      atomic.Int64
	packFailed     atomic.Int64
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
	CacheHits      int64 `json:"cache_hits"`
	CacheBytes     int64 `json:"cache_bytes"`
	PackFailures   int64 `json:"pack_failures"`
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
	cached, _ := n.cache.bytes()
	free, err := n.cfg.FreeSpace(n.cfg.DataDir)
	if err != nil {
		free = 0
	}
	return Stats{
		CorruptBlocks:  n.stats.corruptBlocks.Load(),
		DegradedReads:  n.stats.degradedReads.Load(),
		RepairedShards: n.stats.repairedShards.Load(),
		RepairFailures: n.stats.repairFailures.Load(),
		MovedBytes:     n.stats.movedBytes.Load(),
		ScrubbedBytes:  n.stats.scrubbedBytes.Load(),
		ScrubCorrupt:   n.stats.scrubCorrupt.Load(),
		CorruptObjects: n.stats.corruptObjects.Load(),
		GCRemoved:      n.stats.gcRemoved.Load(),
		CacheHits:      n.stats.cacheHits.Load(),
		CacheBytes:     cached,
		PackFailures:   n.stats.packFailed.Load(),
		Cleanups:       n.bgRunning.Load(),
		ShardFiles:     files,
		ShardBytes:     bytes,
		DiskFree:       free,
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

// pingAfter is how long a node may go without a successful call before a
// push checks that it still answers.
const pingAfter = time.Second

// reachable drops from ids the nodes that do not answer a ping, pinging in
// parallel only those not heard from lately: under load that is none of
// them, after a node died it is one round trip per push until gossip or
// the unreachable mark takes the node out.
func (n *Node) reachable(ctx context.Context, ids []string) []string {
	// Generous: a node that misses it is left out of placements for
	// membership.UnreachableFor, and a busy node is not a dead one.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	down := make([]bool, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if id == n.cfg.ID {
			continue
		}
		if n.pool.ReachedWithin(id, pingAfter) {
			continue
		}
		m, ok := n.pool.Get(id)
		if !ok {
			down[i] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.cfg.Peers.Ping(ctx, m.Meta.HTTP); err != nil {
				n.log.Debug("node does not answer, leaving it out of the placement", "node", id, "error", err)
				n.pool.MarkUnreachable(id)
				down[i] = true
				return
			}
			n.pool.MarkReached(id)
		}()
	}
	wg.Wait()
	out := ids[:0:0]
	for i, id := range ids {
		if !down[i] {
			out = append(out, id)
		}
	}
	return out
}

// putShard stores one shard stream on node: locally without a network hop,
// else through the node's peer service. parity marks a shard read only when
// a data shard is lost, which the node keeps out of its page cache.
func (n *Node) putShard(ctx context.Context, node, id string, index int, parity bool, r io.Reader) error {
	if node == n.cfg.ID {
		_, err := n.ReceiveShard(ctx, id, index, parity, r)
		return err
	}
	m, ok := n.pool.Get(node)
	if !ok || m.Meta.HTTP == "" {
		return fmt.Errorf("node %s unknown to gossip", node)
	}
	err := n.cfg.Peers.PutShard(ctx, m.Meta.HTTP, id, index, parity, r)
	if err == nil {
		n.pool.MarkReached(node)
	}
	return err
}

// deleteShards removes an object's shards from its nodes, best effort:
// what a down node keeps is left to garbage collection.
func (n *Node) deleteShards(ctx context.Context, ref fsm.ObjectRef) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, node := range ref.Placement {
		if node == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if node == n.cfg.ID {
				err = n.shards.Remove(ref.ID, i)
			} else if m, ok := n.pool.Get(node); ok && m.State == StateAlive {
				err = n.cfg.Peers.DeleteShard(ctx, m.Meta.HTTP, ref.ID, i)
			}
			if err != nil {
				n.log.Debug("delete shard", "object", ref.ID, "shard", i, "node", node, "error", err)
			}
		}()
	}
	wg.Wait()
}

// ReceiveShard stores a shard streamed by another node's push; a parity
// shard is written around the page cache (chunk.ShardStore.Receive).
func (n *Node) ReceiveShard(ctx context.Context, id string, index int, parity bool, r io.Reader) (int64, error) {
	release, err := n.hold()
	if err != nil {
		return 0, err
	}
	defer release()
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.checkSpace(); err != nil {
		return 0, err
	}
	size, err := n.shards.Receive(ctx, id, index, parity, r)
	if isNoSpace(err) {
		n.disk.sawNoSpace()
	}
	return size, err
}

// OpenShard serves length bytes at off of a local shard to a peer whose
// state has applied index after.
func (n *Node) OpenShard(ctx context.Context, id string, index int, off, length int64, after uint64) (io.ReadCloser, error) {
	release, err := n.hold()
	if err != nil {
		return nil, err
	}
	r, err := n.openLocalShard(ctx, id, index, off, length, after)
	if err != nil {
		release()
		return nil, err
	}
	return held(r, release), nil
}

func (n *Node) openLocalShard(ctx context.Context, id string, index int, off, length int64, after uint64) (io.ReadCloser, error) {
	f, err := n.shards.Open(id, index)
	if errors.Is(err, chunk.ErrNotFound) && after > n.fsm.Applied() {
		// The reader found the object; a copy that came in the push's
		// raft entry (blobs.go) is packed only when this node applies it,
		// which it may not have yet.
		if werr := n.waitApplied(ctx, after); werr == nil {
			f, err = n.shards.Open(id, index)
		}
	}
	if err != nil {
		return nil, err
	}
	r, err := chunk.Section(f, off, length)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", fsm.ErrInvalid, err)
	}
	return sectionCloser{r, f}, nil
}

// RemoveShard deletes a local shard file.
func (n *Node) RemoveShard(id string, index int) error {
	release, err := n.hold()
	if err != nil {
		return err
	}
	defer release()
	return n.shards.Remove(id, index)
}

type sectionCloser struct {
	io.Reader
	f io.Closer
}

func (s sectionCloser) Close() error { return s.f.Close() }

// WriteTo hands the section itself to io.Copy, so that the copy of a shard
// file to an HTTP response reaches sendfile(2).
func (s sectionCloser) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, s.Reader) }
