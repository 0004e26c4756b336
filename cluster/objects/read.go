package objects

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// Open streams length bytes from offset off of an artifact's content. Per
// stripe it reads K shard blocks, data shards first (for a whole stripe, a
// parity shard on this node's disk before a remote data shard); a shard that is
// missing, unreachable, slower than HedgeAfter per read, or corrupt is
// replaced by a parity shard and the stripe is rebuilt. Range reads touch
// only the stripes they cover.
func (o *Store) Open(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	release, err := o.hold()
	if err != nil {
		return nil, err
	}
	ctx, cancel := o.bound(ctx)
	r, err := o.open(countPeerReads(ctx), a, off, length)
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	return held(r, func() { cancel(); release() }), nil
}

func (o *Store) open(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	return o.openVia(ctx, a, off, length, true)
}

// openDirect opens content without the pull cache.
func (o *Store) openDirect(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	return o.openVia(ctx, a, off, length, false)
}

func (o *Store) openVia(ctx context.Context, a fsm.Artifact, off, length int64, cached bool) (io.ReadCloser, error) {
	obj, ok := o.fsm.Object(a.Digest)
	if !ok {
		return nil, fmt.Errorf("%w: no object record for %s", ErrUnavailable, a.Digest)
	}
	if obj.Corrupt != "" {
		return nil, fmt.Errorf("%w: %s is corrupt: %s; push its bytes again to heal it", ErrUnavailable, a.Digest, obj.Corrupt)
	}
	l := layoutOf(obj)
	if _, _, err := l.StripesFor(off, length); err != nil {
		return nil, fmt.Errorf("%w: %w", fsm.ErrInvalid, err)
	}
	if length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if cached {
		if rc, ok := o.openCached(ctx, a, obj, off, length); ok {
			return rc, nil
		}
	}
	// Refuse up front, with a clean retryable error, what cannot be read:
	// once bytes flow the client can only see a short body. Gossip's view
	// is not proof a node is gone (a loaded node is sometimes declared dead
	// for a moment), so only shards known lost count here.
	if have := len(obj.Placement) - len(obj.Missing); have < obj.K {
		return nil, fmt.Errorf("%w: %s has %d of the %d shards it needs", ErrUnavailable, a.Digest, have, obj.K)
	}
	if obj.Size <= int64(o.cfg.SmallObjectSize) {
		return o.readSmall(ctx, obj, l, off, length)
	}
	return &decodeStream{o: o, ctx: ctx, obj: obj, l: l, off: off, length: length}, nil
}

// decodeStream is an object's content being decoded. WriteTo decodes
// straight into the destination, whole blocks per write; Read, for callers
// that pull, runs the decoder in a goroutine behind a pipe.
type decodeStream struct {
	o           *Store
	ctx         context.Context
	obj         fsm.Object
	l           erasure.Layout
	off, length int64
	pr          *io.PipeReader
	used        bool
}

func (d *decodeStream) WriteTo(w io.Writer) (int64, error) {
	if d.used || d.pr != nil {
		return 0, errors.New("decode stream already read")
	}
	d.used = true
	cw := &countingWriter{w: w}
	err := d.o.decodeTo(d.ctx, d.obj, d.l, d.off, d.length, cw)
	return cw.n, err
}

func (d *decodeStream) Read(p []byte) (int, error) {
	if d.pr == nil {
		if d.used {
			return 0, io.EOF
		}
		pr, pw := io.Pipe()
		d.pr = pr
		if !d.o.spawn(func(context.Context) { pw.CloseWithError(d.o.decodeTo(d.ctx, d.obj, d.l, d.off, d.length, pw)) }) {
			pw.CloseWithError(ErrShutdown)
		}
	}
	return d.pr.Read(p)
}

func (d *decodeStream) Close() error {
	if d.pr != nil {
		d.pr.Close()
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readSmall decodes a small object into a pooled buffer before answering:
// no goroutine and pipe per request, and a failed read is a clean error
// rather than a short body.
func (o *Store) readSmall(ctx context.Context, obj fsm.Object, l erasure.Layout, off, length int64) (io.ReadCloser, error) {
	if b, ok := o.cache.get(obj.ID); ok {
		o.stats.cacheHits.Add(1)
		return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
	}
	bp, _ := copyPool.Get().(*bytes.Buffer)
	if bp == nil {
		bp = new(bytes.Buffer)
	}
	bp.Reset()
	// A copy on this node is read before a remote one (decodeGuessing).
	faults, err := o.decodeRange(ctx, obj, l, off, length, bp)
	o.noteFaults(obj, faults)
	if err != nil {
		copyPool.Put(bp)
		return nil, fmt.Errorf("%w: read %s: %w", ErrUnavailable, obj.Digest, err)
	}
	if off == 0 && length == obj.Size {
		// Only bytes that hash to the digest are kept: a copy rewritten
		// with valid checksums is rebuilt under the same ID, and a cached
		// read of it would outlive the repair.
		if sum := sha256.Sum256(bp.Bytes()); fsm.DigestPrefix+hex.EncodeToString(sum[:]) == obj.Digest {
			o.cache.add(obj.ID, bytes.Clone(bp.Bytes()))
		} else {
			o.log.Warn("read an object whose bytes do not hash to its digest", "digest", obj.Digest, "object", obj.ID)
			o.c.ContentBad(obj)
		}
	}
	return &pooledReader{Reader: bytes.NewReader(bp.Bytes()), bp: bp}, nil
}

// pooledReader returns its buffer to the pool when closed.
type pooledReader struct {
	*bytes.Reader
	bp *bytes.Buffer
}

func (p *pooledReader) Close() error {
	if p.bp != nil {
		copyPool.Put(p.bp)
		p.bp = nil
	}
	return nil
}

func layoutOf(obj fsm.Object) erasure.Layout {
	return erasure.Layout{Scheme: erasure.Scheme{K: obj.K, M: obj.M}, BlockSize: obj.BlockSize, Size: obj.Size}
}

func headerOf(obj fsm.Object, index int) erasure.Header {
	var id [32]byte
	hex.Decode(id[:], []byte(obj.ID))
	return erasure.Header{Object: id, Index: index, Layout: layoutOf(obj)}
}

func (o *Store) reachableShards(obj fsm.Object) int {
	avail := 0
	for i, node := range obj.Placement {
		if !slices.Contains(obj.Missing, i) && o.nodeUp(node) {
			avail++
		}
	}
	return avail
}

// nodeUp reports whether a node is this one or alive in gossip.
func (o *Store) nodeUp(id string) bool {
	if id == o.cfg.ID {
		return true
	}
	m, ok := o.pool.Get(id)
	return ok && m.State == membership.StateAlive
}

// decodeTo writes length bytes at off of obj's content to w.
func (o *Store) decodeTo(ctx context.Context, obj fsm.Object, l erasure.Layout, off, length int64, w io.Writer) error {
	faults, err := o.decodeRange(ctx, obj, l, off, length, w)
	o.noteFaults(obj, faults)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) && ctx.Err() == nil {
		// A closed pipe is a reader that stopped early: a range, a client gone.
		o.log.Warn("read failed", "digest", obj.Digest, "object", obj.ID, "error", err)
		// Retryable: a caller that has sent nothing yet answers 503.
		err = fmt.Errorf("%w: read %s: %w", ErrUnavailable, obj.Digest, err)
	}
	return err
}

// decodeRange decodes [off, off+length) of obj into w. When too few shards
// were left because gossip called a node down or a shard was marked
// missing, the rest of the range is decoded again trying every shard:
// right after a kill, gossip can still call the dead node up and a slow
// live one suspect, and the guess would fail a read that can succeed.
//
// When too few shards are left because a repair re-encoded the object
// under a new ID while the read ran, the rest comes from the new object
// (same digest, same bytes): the old shards are garbage the moment the swap
// commits, and GC takes them at its next pass since they are old files, so
// any pull longer than a GC interval could otherwise fail mid-stream. The
// returned faults are obj's; those of a new object are noted here.
func (o *Store) decodeRange(ctx context.Context, obj fsm.Object, l erasure.Layout, off, length int64, w io.Writer) ([]erasure.Fault, error) {
	cw := &countingWriter{w: w}
	faults, err := o.decodeGuessing(ctx, obj, l, off, length, cw)
	cur := obj
	for range maxReplacements {
		if !errors.Is(err, erasure.ErrTooFewShards) {
			break
		}
		// The swap may be committed but not yet applied here.
		if berr := o.c.Barrier(ctx); berr != nil {
			break
		}
		next, ok := o.fsm.Object(obj.Digest)
		if !ok || next.ID == cur.ID {
			break
		}
		o.log.Info("object re-encoded during a read, reading on from the new one",
			"digest", obj.Digest, "old", cur.ID, "new", next.ID, "done", cw.n)
		cur = next
		var more []erasure.Fault
		more, err = o.decodeGuessing(ctx, cur, layoutOf(cur), off+cw.n, length-cw.n, cw)
		o.noteFaults(cur, more)
	}
	return faults, err
}

// maxReplacements bounds how many re-encodings one read follows.
const maxReplacements = 3

// decodeGuessing is decodeRange for one object record: a first try that
// skips the shards gossip calls down, and when that leaves too few, a
// second one over every shard for the rest of the range.
func (o *Store) decodeGuessing(ctx context.Context, obj fsm.Object, l erasure.Layout, off, length int64, cw *countingWriter) ([]erasure.Fault, error) {
	start := cw.n
	first, end, _ := l.StripesFor(off, length)
	open, closeAll, skipped := o.openShards(ctx, obj, l, first, end, nil, true)
	// Shards on this node's disk cost no peer stream: a parity shard here
	// stands in for a remote data shard (erasure.DecodePreferring).
	local := func(i int) bool { return obj.Placement[i] == o.cfg.ID }
	faults, err := erasure.DecodePreferring(l, open, local, cw, off, length)
	closeAll()
	if !errors.Is(err, erasure.ErrTooFewShards) || !skipped.Load() {
		return faults, err
	}
	done := cw.n - start
	off, length = off+done, length-done
	first, end, _ = l.StripesFor(off, length)
	open, closeAll, _ = o.openShards(ctx, obj, l, first, end, nil, false)
	more, err := erasure.DecodePreferring(l, open, local, cw, off, length)
	closeAll()
	return append(faults, more...), err
}

// copyPool holds the buffers small objects are read into (readSmall).
var copyPool sync.Pool

// shardOpener returns the OpenFunc Decode reads obj's stripes [first, end)
// through, skipping shards that are missing, on nodes that are down, or
// for which skip says so, and a function that closes what it opened.
func (o *Store) shardOpener(ctx context.Context, obj fsm.Object, l erasure.Layout, first, end int, skip func(i int) bool) (erasure.OpenFunc, func()) {
	open, closeAll, _ := o.openShards(ctx, obj, l, first, end, skip, true)
	return open, closeAll
}

// openShards is shardOpener; with guess false it skips only what skip
// says, and the returned flag tells whether a guess skipped a shard.
func (o *Store) openShards(ctx context.Context, obj fsm.Object, l erasure.Layout, first, end int, skip func(i int) bool, guess bool) (erasure.OpenFunc, func(), *atomic.Bool) {
	var mu sync.Mutex
	var closers []io.Closer
	skipped := new(atomic.Bool)
	// Shards on nodes gossip calls down are skipped only while enough
	// others remain; otherwise they are tried, since gossip can be wrong.
	// Hedging gives up a slow shard for parity; with no spare shard left
	// there is nothing to hedge to, so a slow shard is waited for.
	reachable := o.reachableShards(obj)
	skipDown := guess && reachable >= obj.K
	hedge := o.cfg.HedgeAfter
	if reachable <= obj.K {
		hedge = 3 * o.cfg.StallTimeout
	}
	// Shards marked missing are skipped only while a spare remains: the
	// mark may predate a repair this node has not applied yet, and the
	// checksums reject a shard that really is bad.
	skipMissing := guess && reachable > obj.K
	open := func(i int) (erasure.BlockReader, error) {
		if skip != nil && skip(i) {
			return nil, nil
		}
		if (skipMissing && slices.Contains(obj.Missing, i)) || (skipDown && !o.nodeUp(obj.Placement[i])) {
			skipped.Store(true)
			return nil, nil
		}
		br, c, err := o.openShard(ctx, obj, i, l, first, end, hedge)
		if c != nil {
			mu.Lock()
			closers = append(closers, c)
			mu.Unlock()
		}
		return br, err
	}
	return open, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range closers {
			c.Close()
		}
	}, skipped
}

// openShard opens shard i for stripes [first, end): the local file, or a
// streamed range of the remote one.
func (o *Store) openShard(ctx context.Context, obj fsm.Object, i int, l erasure.Layout, first, end int, hedge time.Duration) (erasure.BlockReader, io.Closer, error) {
	h := headerOf(obj, i)
	node := obj.Placement[i]
	if node == o.cfg.ID {
		f, err := o.shards.Open(obj.ID, i)
		if err != nil {
			return nil, nil, err
		}
		if o.fault(faultSkipChecksum) {
			return rawBlocks{f, l}, f, nil
		}
		sr, err := erasure.NewShardReaderAt(f, h)
		if err != nil {
			return nil, f, err
		}
		return sr, f, nil
	}
	m, ok := o.pool.Get(node)
	if !ok {
		return nil, nil, fmt.Errorf("node %s unknown", node)
	}
	from := l.FrameOffset(first)
	to := min(l.FrameOffset(end), l.ShardFileSize())
	rc, err := o.cfg.Peers.GetShard(ctx, m.Meta.HTTP, obj.ID, i, from, to-from, o.fsm.Applied())
	if err != nil {
		return nil, nil, err
	}
	sr := &stallReader{rc: rc, after: hedge}
	if ctx.Value(pullKey{}) != nil {
		sr.count = &o.stats.peerReadBytes
	}
	return erasure.NewFrameReader(sr, h, first), sr, nil
}

// noteFaults logs and counts what a read found wrong. Corrupt blocks are
// what the scrubber and repair act on; the rest are nodes that were down
// or slow.
func (o *Store) noteFaults(obj fsm.Object, faults []erasure.Fault) {
	// A reader that went away (a client that closed its pull early)
	// cancels the shard reads in flight: that is no fault of the shards.
	faults = slices.DeleteFunc(slices.Clone(faults), func(f erasure.Fault) bool {
		return errors.Is(f.Err, context.Canceled)
	})
	if len(faults) == 0 {
		return
	}
	o.stats.degradedReads.Add(1)
	for _, f := range faults {
		if errors.Is(f.Err, erasure.ErrCorrupt) || errors.Is(f.Err, erasure.ErrTruncated) ||
			errors.Is(f.Err, erasure.ErrBadHeader) || errors.Is(f.Err, erasure.ErrWrongShard) {
			o.stats.corruptBlocks.Add(1)
			o.log.Warn("corrupt shard, rebuilt from parity", "digest", obj.Digest, "object", obj.ID,
				"shard", f.Shard, "stripe", f.Stripe, "node", obj.Placement[f.Shard], "error", f.Err)
			o.spawn(func(ctx context.Context) { o.c.ShardBad(ctx, obj, f.Shard) })
			continue
		}
		o.log.Info("shard unavailable, read from parity", "digest", obj.Digest, "shard", f.Shard,
			"node", obj.Placement[f.Shard], "error", f.Err)
	}
}

// pullKey marks the context of a client's read, whose shard bytes from
// peers count in PeerReadBytes; maintenance's reads do not.
type pullKey struct{}

func countPeerReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, pullKey{}, true)
}

// errStalled marks a remote shard that stopped sending; the read hedges to
// parity instead of waiting on it.
var errStalled = errors.New("shard stream stalled")

// stallReader fails a read that takes longer than after, by closing the
// stream under it, and counts the bytes it reads in count, when set.
type stallReader struct {
	rc    io.ReadCloser
	after time.Duration
	count *atomic.Int64
}

func (s *stallReader) Read(p []byte) (int, error) {
	t := time.AfterFunc(s.after, func() { s.rc.Close() })
	n, err := s.rc.Read(p)
	if s.count != nil {
		s.count.Add(int64(n))
	}
	if !t.Stop() {
		return n, errStalled
	}
	return n, err
}

func (s *stallReader) Close() error { return s.rc.Close() }

// rawBlocks reads shard blocks without verifying them. Only the
// skip-checksum planted fault uses it.
type rawBlocks struct {
	f io.ReaderAt
	l erasure.Layout
}

func (r rawBlocks) ReadBlock(stripe int, dst []byte) ([]byte, error) {
	b := make([]byte, r.l.BlockLen(stripe))
	if _, err := r.f.ReadAt(b, r.l.FrameOffset(stripe)); err != nil {
		return nil, err
	}
	return b, nil
}
