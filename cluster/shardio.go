package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// stats are counters for /metrics.
type stats struct {
	corruptBlocks atomic.Int64
	degradedReads atomic.Int64
}

// Stats is a snapshot of a node's counters.
type Stats struct {
	CorruptBlocks int64
	DegradedReads int64
	ShardFiles    int
	ShardBytes    int64
}

// Stats returns the node's counters and local shard usage.
func (n *Node) Stats() Stats {
	files, bytes, _ := n.shards.Usage()
	return Stats{
		CorruptBlocks: n.stats.corruptBlocks.Load(),
		DegradedReads: n.stats.degradedReads.Load(),
		ShardFiles:    files,
		ShardBytes:    bytes,
	}
}

// liveNodes returns the ids of alive members of the datacenter, sorted:
// the candidates for a new object's shards.
func (n *Node) liveNodes() []string {
	var ids []string
	for _, m := range n.members.alive(n.cfg.Datacenter) {
		if m.Meta.HTTP != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// putShard stores one shard stream on node: locally without a network hop,
// else through the node's peer service.
func (n *Node) putShard(ctx context.Context, node, id string, index int, r io.Reader) error {
	if node == n.cfg.ID {
		_, err := n.shards.Receive(ctx, id, index, r)
		return err
	}
	m, ok := n.members.get(node)
	if !ok || m.Meta.HTTP == "" {
		return fmt.Errorf("node %s unknown to gossip", node)
	}
	return n.cfg.Peers.PutShard(ctx, m.Meta.HTTP, id, index, r)
}

// deleteShards removes an object's shards from its nodes, best effort:
// what a down node keeps is left to garbage collection.
func (n *Node) deleteShards(ctx context.Context, ref fsm.ObjectRef) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, node := range ref.Placement {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if node == n.cfg.ID {
				err = n.shards.Remove(ref.ID, i)
			} else if m, ok := n.members.get(node); ok && m.State == StateAlive {
				err = n.cfg.Peers.DeleteShard(ctx, m.Meta.HTTP, ref.ID, i)
			}
			if err != nil {
				n.log.Debug("delete shard", "object", ref.ID, "shard", i, "node", node, "error", err)
			}
		}()
	}
	wg.Wait()
}

// ReceiveShard stores a shard streamed by another node's push.
func (n *Node) ReceiveShard(ctx context.Context, id string, index int, r io.Reader) (int64, error) {
	return n.shards.Receive(ctx, id, index, r)
}

// OpenShard serves length bytes at off of a local shard file to a peer.
func (n *Node) OpenShard(id string, index int, off, length int64) (io.ReadCloser, error) {
	f, err := n.shards.Open(id, index)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat shard %s.%d: %w", id, index, err)
	}
	if off < 0 || length < 0 || off+length > st.Size() {
		f.Close()
		return nil, fmt.Errorf("%w: range %d+%d outside shard of %d bytes", fsm.ErrInvalid, off, length, st.Size())
	}
	return sectionCloser{io.NewSectionReader(f, off, length), f}, nil
}

// RemoveShard deletes a local shard file.
func (n *Node) RemoveShard(id string, index int) error { return n.shards.Remove(id, index) }

type sectionCloser struct {
	io.Reader
	f *os.File
}

func (s sectionCloser) Close() error { return s.f.Close() }
