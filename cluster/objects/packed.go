package objects

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/cluster/errs"
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
func (o *Store) storePacked(ctx context.Context, ref fsm.ObjectRef, data []byte, need int) ([]int, error) {
	obj := fsm.Object{ObjectRef: ref, Size: int64(len(data))}
	errs := make([]error, len(ref.Placement))
	var wg sync.WaitGroup
	for i, node := range ref.Placement {
		wg.Go(func() { errs[i] = o.packOn(ctx, node, obj, i, data) })
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
		o.deleteShards(context.Background(), ref)
		return nil, fmt.Errorf("%w: %d copies durable, %d needed: %w", ErrUnavailable, durable, need, err)
	}
	o.log.Warn("lost copies of a small object", "object", ref.ID, "error", err)
	return missing, nil
}

// imagePool recycles the buffers copies are built in: under a load of
// small pushes they were a third of all the bytes a node allocated, and the
// garbage collector's work grows with that.
var imagePool sync.Pool

// packOn stores copy i of obj on node.
func (o *Store) packOn(ctx context.Context, node string, obj fsm.Object, i int, data []byte) error {
	bp, _ := imagePool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	img, err := erasure.AppendShardImage((*bp)[:0], headerOf(obj, i), data)
	if err != nil {
		return err
	}
	ps := PackedShard{ID: obj.ID, Index: i, Image: img}
	if node == o.cfg.ID {
		err = o.ReceivePacked([]PackedShard{ps})
	} else {
		s := o.packSender(node)
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
func (o *Store) ReceivePacked(shards []PackedShard) error {
	release, err := o.hold()
	if err != nil {
		return err
	}
	defer release()
	if err = o.checkSpace(); err != nil {
		return err
	}
	for _, s := range shards {
		if err = o.shards.Pack(s.ID, s.Index, s.Image); err != nil {
			break
		}
	}
	if err == nil {
		if err = o.shards.Sync(); err != nil {
			// Records acknowledged before may be lost with these.
			o.c.PacksLost()
		}
	}
	if errs.IsNoSpace(err) {
		o.sawNoSpace()
	}
	return err
}

// packSender returns the sender of copies bound for node. After the node
// stopped, a new one is closed already, so its sends fail at once.
func (o *Store) packSender(node string) *packSender {
	o.packMu.Lock()
	defer o.packMu.Unlock()
	s := o.packSenders[node]
	if s == nil {
		s = newPackSender(o, node)
		if o.packSenders == nil {
			s.sends.Close()
			return s
		}
		o.packSenders[node] = s
	}
	return s
}

// Close refuses further copies to other nodes and waits for the requests
// out; the node calls it once no request of its own runs.
func (o *Store) Close() {
	o.packMu.Lock()
	senders := o.packSenders
	o.packSenders = nil
	o.packMu.Unlock()
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
	o     *Store
	node  string
	sends *batch.Batcher[PackedShard, struct{}]
}

func newPackSender(o *Store, node string) *packSender {
	s := &packSender{o: o, node: node}
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
	o := s.o
	m, ok := o.pool.Get(s.node)
	if !ok || m.Meta.HTTP == "" {
		return nil, fmt.Errorf("node %s unknown to gossip", s.node)
	}
	// Not any one push's context: the batch serves many.
	ctx, cancel := context.WithTimeout(o.ctx(), o.cfg.StallTimeout)
	defer cancel()
	err := o.cfg.Peers.PutPacked(ctx, m.Meta.HTTP, shards)
	switch {
	case err == nil:
		o.pool.MarkReached(s.node)
	case errors.Is(err, ErrPeerUnreachable) && o.ctx().Err() == nil:
		o.pool.MarkUnreachable(s.node)
	}
	if err != nil {
		return nil, err
	}
	return make([]struct{}, len(shards)), nil
}

// PackBlob packs copy i of a small object whose bytes came in a raft entry
// (logs from before packed small objects; cluster's blobs.go).
func (o *Store) PackBlob(obj fsm.ObjectRef, i int, blob []byte) error {
	if err := chunk.ValidID(obj.ID); err != nil {
		return err
	}
	h := headerOf(fsm.Object{ObjectRef: obj, Size: int64(len(blob))}, i)
	img, err := erasure.ShardImage(h, blob)
	if err != nil {
		return err
	}
	err = o.shards.Pack(obj.ID, i, img)
	if errs.IsNoSpace(err) {
		o.sawNoSpace()
	}
	return err
}
