package cluster

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/fsm"
)

// scrub re-reads, every ScrubInterval and at no more than ScrubRate, every
// shard this node should hold, and reports the ones that are absent or fail
// their checksums, so repair rebuilds them before a second fault finds the
// object short.
func (n *Node) scrub(ctx context.Context) {
	if n.halted() {
		return // its reports could not commit (halt.go)
	}
	start := time.Now()
	var read int64
	for _, obj := range n.fsm.Objects() {
		for i, node := range obj.Placement {
			if node != n.cfg.ID || ctx.Err() != nil {
				continue
			}
			size, err := n.scrubShard(obj, i)
			read += size
			n.stats.scrubbedBytes.Add(size)
			if err != nil {
				n.stats.scrubCorrupt.Add(1)
				n.log.Warn("scrub found a bad shard", "digest", obj.Digest, "object", obj.ID, "shard", i, "error", err)
				n.reportMissing(ctx, obj, i)
			}
			if n.cfg.ScrubRate > 0 {
				due := time.Duration(float64(read) / float64(n.cfg.ScrubRate) * float64(time.Second))
				select {
				case <-ctx.Done():
					return
				case <-time.After(due - time.Since(start)):
				}
			}
		}
	}
}

// scrubShard verifies every block of one local shard file. A shard already
// marked missing is skipped: repair owns it.
func (n *Node) scrubShard(obj fsm.Object, i int) (int64, error) {
	for _, m := range obj.Missing {
		if m == i {
			return 0, nil
		}
	}
	f, err := n.shards.Open(obj.ID, i)
	if err != nil {
		if errors.Is(err, chunk.ErrNotFound) {
			return 0, err
		}
		return 0, nil // an I/O error is not proof of a bad shard
	}
	defer f.Close()
	sr, err := erasure.NewShardReaderAt(f, headerOf(obj, i))
	if err != nil {
		return erasure.HeaderSize, err
	}
	l := layoutOf(obj)
	buf := getFrame(l.BlockSize + erasure.ChecksumSize)
	defer putFrame(buf)
	var size int64 = erasure.HeaderSize
	for {
		_, b, err := sr.Next((*buf)[:cap(*buf)])
		if err == io.EOF {
			return size, nil
		}
		size += int64(len(b))
		if err != nil {
			return size, err
		}
	}
}

// reportMissing marks a shard missing through raft; repair rebuilds it.
// Each shard is reported once per process, so a corrupt shard read a
// thousand times is proposed to raft once.
func (n *Node) reportMissing(ctx context.Context, obj fsm.Object, i int) {
	key := obj.ID + "." + strconv.Itoa(i)
	if _, dup := n.reported.LoadOrStore(key, true); dup {
		return
	}
	idx := i
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpMarkMissing, Shards: &fsm.ShardChange{
		Digest: obj.Digest, ObjectID: obj.ID, Missing: &idx}})
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		n.reported.Delete(key)
		n.log.Debug("report bad shard", "object", obj.ID, "shard", i, "error", err)
	}
}
