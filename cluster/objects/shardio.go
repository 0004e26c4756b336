package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// pingAfter is how long a node may go without a successful call before a
// push checks that it still answers.
const pingAfter = time.Second

// reachable drops from ids the nodes that do not answer a ping, pinging in
// parallel only those not heard from lately: under load that is none of
// them, after a node died it is one round trip per push until gossip or
// the unreachable mark takes the node out.
func (o *Store) reachable(ctx context.Context, ids []string) []string {
	// Generous: a node that misses it is left out of placements for
	// membership.UnreachableFor, and a busy node is not a dead one.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	down := make([]bool, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if id == o.cfg.ID {
			continue
		}
		if o.pool.ReachedWithin(id, pingAfter) {
			continue
		}
		m, ok := o.pool.Get(id)
		if !ok {
			down[i] = true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o.cfg.Peers.Ping(ctx, m.Meta.HTTP); err != nil {
				o.log.Debug("node does not answer, leaving it out of the placement", "node", id, "error", err)
				o.pool.MarkUnreachable(id)
				down[i] = true
				return
			}
			o.pool.MarkReached(id)
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
func (o *Store) putShard(ctx context.Context, node, id string, index int, parity bool, r io.Reader) error {
	if node == o.cfg.ID {
		_, err := o.ReceiveShard(ctx, id, index, parity, r)
		return err
	}
	m, ok := o.pool.Get(node)
	if !ok || m.Meta.HTTP == "" {
		return fmt.Errorf("node %s unknown to gossip", node)
	}
	err := o.cfg.Peers.PutShard(ctx, m.Meta.HTTP, id, index, parity, r)
	if err == nil {
		o.pool.MarkReached(node)
	}
	return err
}

// deleteShards removes an object's shards from its nodes, best effort:
// what a down node keeps is left to garbage collection.
func (o *Store) deleteShards(ctx context.Context, ref fsm.ObjectRef) {
	o.dropCached(ref.ID)
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
			if node == o.cfg.ID {
				err = o.shards.Remove(ref.ID, i)
			} else if m, ok := o.pool.Get(node); ok && m.State == membership.StateAlive {
				err = o.cfg.Peers.DeleteShard(ctx, m.Meta.HTTP, ref.ID, i)
			}
			if err != nil {
				o.log.Debug("delete shard", "object", ref.ID, "shard", i, "node", node, "error", err)
			}
		}()
	}
	wg.Wait()
}

// ReceiveShard stores a shard streamed by another node's push; a parity
// shard is written around the page cache (chunk.ShardStore.Receive).
func (o *Store) ReceiveShard(ctx context.Context, id string, index int, parity bool, r io.Reader) (int64, error) {
	release, err := o.hold()
	if err != nil {
		return 0, err
	}
	defer release()
	ctx, cancel := o.bound(ctx)
	defer cancel()
	if err := o.checkSpace(); err != nil {
		return 0, err
	}
	size, err := o.shards.Receive(ctx, id, index, parity, r)
	if errs.IsNoSpace(err) {
		o.sawNoSpace()
	}
	return size, err
}

// OpenShard serves length bytes at off of a local shard to a peer whose
// state has applied index after.
func (o *Store) OpenShard(ctx context.Context, id string, index int, off, length int64, after uint64) (io.ReadCloser, error) {
	release, err := o.hold()
	if err != nil {
		return nil, err
	}
	r, err := o.openLocalShard(ctx, id, index, off, length, after)
	if err != nil {
		release()
		return nil, err
	}
	return held(r, release), nil
}

func (o *Store) openLocalShard(ctx context.Context, id string, index int, off, length int64, after uint64) (io.ReadCloser, error) {
	f, err := o.shards.Open(id, index)
	if errors.Is(err, chunk.ErrNotFound) && after > o.fsm.Applied() {
		// The reader found the object; a copy that came in the push's
		// raft entry (blobs.go) is packed only when this node applies it,
		// which it may not have yet.
		if werr := o.c.WaitApplied(ctx, after); werr == nil {
			f, err = o.shards.Open(id, index)
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
func (o *Store) RemoveShard(id string, index int) error {
	release, err := o.hold()
	if err != nil {
		return err
	}
	defer release()
	// Asked when the object is collected (and when a shard moves away,
	// where dropping the cached copy costs one decode at most).
	o.dropCached(id)
	return o.shards.Remove(id, index)
}

type sectionCloser struct {
	io.Reader
	f io.Closer
}

func (s sectionCloser) Close() error { return s.f.Close() }

// WriteTo hands the section itself to io.Copy, so that the copy of a shard
// file to an HTTP response reaches sendfile(2).
func (s sectionCloser) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, s.Reader) }
