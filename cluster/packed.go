package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// Packed objects. A push up to InlineSize is stored as M+1 full copies, and
// each copy is one record appended to a pack file on its node (chunk/pack)
// instead of a shard file of its own: creating, fsyncing and renaming a file
// per copy, and fsyncing its directory, cost more than the copy is worth.
// Copies bound for the same node travel together, one request per node at a
// time (packSender), and each node makes a request's records durable with
// one fdatasync. The push needs K+1 durable copies, as a streamed one needs
// K+1 durable shards, before it commits its metadata, so its bytes never
// enter the raft log. (They did, for a while: a push's bytes rode in its
// raft entry and nodes packed them on apply. raft.db then held hundreds of
// MiB under small pushes, and bolt's freelist work and the garbage it made
// grew with it until the nodes spent more on that than on the pushes; and
// raft drops entries only after a snapshot, whose cost grows with the
// number of artifacts. Entries written then still apply: see blobs.go.)

// maxPackBatch caps the images in one request to a node.
const maxPackBatch = 4 << 20

// storePacked writes data as the copies of object ref on their nodes, all
// at once, and returns the indexes whose copy failed. It fails, with the
// copies that were written deleted, when fewer than need are durable.
func (n *Node) storePacked(ctx context.Context, ref fsm.ObjectRef, data []byte, need int) ([]int, error) {
	obj := fsm.Object{ObjectRef: ref, Size: int64(len(data))}
	errs := make([]error, len(ref.Placement))
	var wg sync.WaitGroup
	for i, node := range ref.Placement {
		wg.Go(func() { errs[i] = n.packOn(ctx, node, obj, i, data) })
	}
	wg.Wait()
	var missing []int
	for i, err := range errs {
		if err != nil {
			missing = append(missing, i)
			errs[i] = fmt.Errorf("copy %d on %s: %w", i, ref.Placement[i], err)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	err := errors.Join(errs...)
	if durable := len(ref.Placement) - len(missing); durable < need {
		n.deleteShards(context.Background(), ref)
		return nil, fmt.Errorf("%w: %d copies durable, %d needed: %w", ErrUnavailable, durable, need, err)
	}
	n.log.Warn("lost copies of a small object", "object", ref.ID, "error", err)
	return missing, nil
}

// imagePool recycles the buffers copies are built in: under a load of
// small pushes they were a third of all the bytes a node allocated, and the
// garbage collector's work grows with that.
var imagePool sync.Pool

// packOn stores copy i of obj on node.
func (n *Node) packOn(ctx context.Context, node string, obj fsm.Object, i int, data []byte) error {
	bp, _ := imagePool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	img, err := erasure.AppendShardImage((*bp)[:0], headerOf(obj, i), data)
	if err != nil {
		return err
	}
	ps := PackedShard{ID: obj.ID, Index: i, Image: img}
	if node == n.cfg.ID {
		err = n.ReceivePacked([]PackedShard{ps})
	} else {
		s := n.packSender(node)
		var sent bool
		if sent, err = s.send(ctx, ps); !sent {
			return err // the image may still be read: not reusable
		}
	}
	*bp = img
	imagePool.Put(bp)
	return err
}

// ReceivePacked stores shards of small objects in this node's packs,
// durably when it returns nil, with one fdatasync for all of them.
func (n *Node) ReceivePacked(shards []PackedShard) error {
	release, err := n.hold()
	if err != nil {
		return err
	}
	defer release()
	if err = n.checkSpace(); err != nil {
		return err
	}
	for _, s := range shards {
		if err = n.shards.Pack(s.ID, s.Index, s.Image); err != nil {
			break
		}
	}
	if err == nil {
		if err = n.shards.Sync(); err != nil {
			// Records acknowledged before may be lost with these.
			n.spawn(func(context.Context) { n.checkPlaced("after a failed sync of the packs") })
		}
	}
	if isNoSpace(err) {
		n.disk.sawNoSpace()
	}
	return err
}

// packSender returns the sender of copies bound for node. After the node
// stopped, a new one is closed already, so its sends fail at once.
func (n *Node) packSender(node string) *packSender {
	n.packMu.Lock()
	defer n.packMu.Unlock()
	s := n.packSenders[node]
	if s == nil {
		s = newPackSender(n, node)
		if n.packSenders == nil {
			s.sends.Close()
			return s
		}
		n.packSenders[node] = s
	}
	return s
}

// stopPackSenders refuses further copies and waits for the requests out.
func (n *Node) stopPackSenders() {
	n.packMu.Lock()
	senders := n.packSenders
	n.packSenders = nil
	n.packMu.Unlock()
	for _, s := range senders {
		s.sends.Close()
	}
	for _, s := range senders {
		s.sends.Wait()
	}
}

// packSender sends the copies bound for one node: one request at a time,
// with every copy that queued while the previous one was out. Under load
// that is one request, and one fdatasync on the node, for many pushes.
type packSender struct {
	n     *Node
	node  string
	sends *batch.Batcher[PackedShard, struct{}]
}

func newPackSender(n *Node, node string) *packSender {
	s := &packSender{n: n, node: node}
	s.sends = batch.New(s.post, takeImages)
	return s
}

// takeImages bounds a request by maxPackBatch bytes of images.
func takeImages(q []PackedShard) int {
	size, k := 0, 0
	for k < len(q) && (k == 0 || size+len(q[k].Image) <= maxPackBatch) {
		size += len(q[k].Image)
		k++
	}
	return k
}

// send queues ps and returns its outcome; sent is false when ctx ended the
// wait first, the request that carries ps maybe still running.
func (s *packSender) send(ctx context.Context, ps PackedShard) (sent bool, err error) {
	_, err = s.sends.Do(ctx, ps)
	if err != nil && ctx.Err() != nil {
		// The copy may still land; the push fails and GC takes it.
		return false, err
	}
	return true, err
}

func (s *packSender) post(shards []PackedShard) ([]struct{}, error) {
	n := s.n
	m, ok := n.pool.Get(s.node)
	if !ok || m.Meta.HTTP == "" {
		return nil, fmt.Errorf("node %s unknown to gossip", s.node)
	}
	// Not any one push's context: the batch serves many.
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StallTimeout)
	defer cancel()
	err := n.cfg.Peers.PutPacked(ctx, m.Meta.HTTP, shards)
	switch {
	case err == nil:
		n.pool.MarkReached(s.node)
	case errors.Is(err, ErrPeerUnreachable) && n.ctx.Err() == nil:
		n.pool.MarkUnreachable(s.node)
	}
	if err != nil {
		return nil, err
	}
	return make([]struct{}, len(shards)), nil
}
