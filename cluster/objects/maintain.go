package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/fsm"
)

// ScrubShard verifies every block of one local shard file. A shard already
// marked missing is skipped: repair owns it.
func (o *Store) ScrubShard(obj fsm.Object, i int) (int64, error) {
	for _, m := range obj.Missing {
		if m == i {
			return 0, nil
		}
	}
	f, err := o.shards.Open(obj.ID, i)
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

// HashContent reads obj whole and returns the digest and length of what it
// read. Without skip it reads as a pull does (decodeRange); with skip, it
// leaves out the shards skip names.
func (o *Store) HashContent(ctx context.Context, obj fsm.Object, p *pace.Pacer, skip func(int) bool) (string, int64, error) {
	h := &pacedHash{Hash: sha256.New(), ctx: ctx, p: p}
	var err error
	if obj.Size > 0 {
		l := layoutOf(obj)
		var faults []erasure.Fault
		if skip == nil {
			faults, err = o.decodeRange(ctx, obj, l, 0, obj.Size, h)
		} else {
			open, closeAll := o.shardOpener(ctx, obj, l, 0, l.Stripes(), skip)
			faults, err = erasure.Decode(l, open, h, 0, obj.Size)
			closeAll()
		}
		o.noteFaults(obj, faults)
	}
	if err != nil {
		return "", h.n, err
	}
	return fsm.DigestPrefix + hex.EncodeToString(h.Sum(nil)), h.n, nil
}

// pacedHash hashes what is written to it at the pace of p.
type pacedHash struct {
	hash.Hash
	ctx context.Context
	p   *pace.Pacer
	n   int64
}

func (w *pacedHash) Write(b []byte) (int, error) {
	w.Hash.Write(b)
	w.n += int64(len(b))
	if !w.p.Wait(w.ctx, int64(len(b))) {
		return 0, w.ctx.Err()
	}
	return len(b), nil
}

// decodeAll streams an object's whole content from its readable shards,
// skipping those skip names, at no more than RepairRate bytes per second.
func (o *Store) decodeAll(ctx context.Context, obj fsm.Object, l erasure.Layout, skip func(int) bool) (io.Reader, func()) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	open, closeAll := o.shardOpener(ctx, obj, l, 0, l.Stripes(), skip)
	if !o.spawn(func(context.Context) {
		faults, err := erasure.Decode(l, open, pw, 0, obj.Size)
		closeAll()
		o.noteFaults(obj, faults)
		pw.CloseWithError(err)
	}) {
		closeAll()
		pw.CloseWithError(ErrShutdown)
	}
	return pace.Reader(ctx, pr, pace.New(o.cfg.RepairRate)), func() { cancel(); pr.Close() }
}

// checkContent refuses a rebuild whose bytes are not the object's: repair
// must never write wrong bytes, whatever the shards it read.
func checkContent(obj fsm.Object, size int64, sum []byte) error {
	if size != obj.Size {
		return fmt.Errorf("rebuilt %d bytes, object has %d", size, obj.Size)
	}
	if got := fsm.DigestPrefix + hex.EncodeToString(sum); got != obj.Digest {
		return fmt.Errorf("%w: rebuilt content hashes to %s", ErrDigestMismatch, got)
	}
	return nil
}

// Rebuild writes shard i of obj to targets[i] for every non-empty target,
// rebuilt from the shards skip does not name and checked against the
// object's digest; the caller then points the placement at them.
func (o *Store) Rebuild(ctx context.Context, obj fsm.Object, targets []string, skip func(int) bool) error {
	l := layoutOf(obj)
	body, stop := o.decodeAll(ctx, obj, l, skip)
	defer stop()
	need := 0
	for _, t := range targets {
		if t != "" {
			need++
		}
	}
	w := o.newStripeWriter(ctx, obj.ID, l.Scheme, targets, need)
	// However it fails, an in-place rebuild must not delete the copy it
	// failed to replace: the node's shard of that index is still the
	// object's (a stale missing-report can send a rebuild to a good one).
	w.keep = func(i int, node string) bool { return obj.Placement[i] == node }
	enc, err := erasure.NewEncoder(l.Scheme, obj.BlockSize)
	if err != nil {
		w.abort()
		return err
	}
	h := sha256.New()
	size, err := enc.EncodeHashed(body, h, w.emit)
	if err == nil {
		err = checkContent(obj, size, h.Sum(nil))
	}
	if err != nil {
		w.abort()
		return err
	}
	_, err = w.finish(l)
	return err
}
