package objects

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/chunk/placement"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// framesInFlight bounds the frames queued per shard stream: enough to keep
// every peer busy while the next stripe is encoded, few enough that a push
// holds at most (K+M) * framesInFlight blocks of memory.
const framesInFlight = 4

// framePool recycles frame buffers; see DESIGN.md on fresh memory.
var framePool sync.Pool

func getFrame(n int) *[]byte {
	if p, ok := framePool.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, n)
	return &b
}

func putFrame(p *[]byte) { framePool.Put(p) }

// headPool holds the buffers that tell a small object from a large one.
var headPool sync.Pool

// StoreBody streams a body into shards on the cluster's nodes and returns
// its digest and where the shards are. Every successful StoreBody must be
// followed by one Release.
//
// The body is hashed, cut into stripes, Reed-Solomon encoded and streamed
// as one shard file per node, with a bounded number of frames in flight per
// node (backpressure, not buffering). Objects up to SmallObjectSize are
// stored as 1+M: M+1 full copies, the same fault tolerance with one read per
// pull. The push is durable when at least K+1 shard files (all of them for
// M = 0) are; shards that failed are recorded as missing for repair.
func (o *Store) StoreBody(ctx context.Context, body io.Reader, expect string) (Stored, error) {
	release, err := o.hold()
	if err != nil {
		return Stored{}, err
	}
	defer release()
	ctx, cancel := o.bound(ctx)
	defer cancel()
	return o.storeBody(ctx, body, expect)
}

func (o *Store) storeBody(ctx context.Context, body io.Reader, expect string) (Stored, error) {
	body = strictBody{body}
	if o.cfg.MaxObjectSize > 0 {
		body = &limitReader{r: body, left: o.cfg.MaxObjectSize}
	}
	if expect != "" {
		// A corrupt object is no place to deduplicate onto: the push
		// stores the bytes anew, and its commit heals the object.
		if obj, ok := o.fsm.Object(expect); ok && obj.Corrupt == "" {
			return o.storeShared(body, expect, obj)
		}
	}
	return o.storeNew(ctx, body, expect, o.reachable(ctx, o.c.Live()), false)
}

// storeNew encodes body into a new object over the nodes live. A push
// accepts K+1 durable shards; a repair (full) wants every one.
func (o *Store) storeNew(ctx context.Context, body io.Reader, expect string, live []string, full bool) (Stored, error) {
	if len(live) == 0 {
		return Stored{}, fmt.Errorf("%w: no live node to store shards", ErrUnavailable)
	}
	// The scheme follows the nodes this node can reach, so a node cut off
	// from most of the cluster would store a push with no redundancy (1+0)
	// and, once the partition heals within the commit's retries,
	// acknowledge it. A push needs a majority of the raft servers, as its
	// commit does.
	if servers := o.c.Servers(); len(live) < servers/2+1 {
		return Stored{}, fmt.Errorf("%w: %d of %d nodes reachable, a push needs a majority", ErrUnavailable, len(live), servers)
	}
	scheme := o.schemeFor(len(live))

	hp, _ := headPool.Get().(*[]byte)
	if hp == nil || len(*hp) != o.cfg.SmallObjectSize+1 {
		b := make([]byte, o.cfg.SmallObjectSize+1)
		hp = &b
	}
	defer headPool.Put(hp)
	got, err := io.ReadFull(body, *hp)
	var src io.Reader
	blockSize := o.cfg.BlockSize
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		scheme = erasure.Scheme{K: 1, M: scheme.M}
		blockSize = max(got, 1)
		src = bytes.NewReader((*hp)[:got])
	case err != nil:
		return Stored{}, fmt.Errorf("read body: %w", err)
	default:
		src = io.MultiReader(bytes.NewReader(*hp), body)
	}

	id := newObjectID()
	nodes := placement.Place(id, live, scheme.Shards())
	need := min(scheme.K+1, scheme.Shards())
	if full {
		need = scheme.Shards()
	}
	if src != nil && got <= o.cfg.InlineSize && !full && !o.fault(faultDropShard) {
		data := (*hp)[:got]
		sum := sha256.Sum256(data)
		digest := fsm.DigestPrefix + hex.EncodeToString(sum[:])
		if err := checkDigest(digest, expect); err != nil {
			return Stored{}, err
		}
		ref := fsm.ObjectRef{ID: id, K: scheme.K, M: scheme.M, BlockSize: blockSize, Placement: nodes}
		// Its commit follows in about one pack round: the committer's next
		// batch waits for it (Config.CommitGate).
		batch.SlotFrom(ctx).Enter(o.cfg.CommitGate)
		missing, err := o.storePacked(ctx, ref, data, need)
		if err != nil {
			return Stored{}, err
		}
		ref.Missing = missing
		return Stored{Digest: digest, Size: int64(got), Object: ref}, nil
	}
	w := o.newStripeWriter(ctx, id, scheme, nodes, need)
	enc, err := erasure.NewEncoder(scheme, blockSize)
	if err != nil {
		w.abort()
		return Stored{}, err
	}
	h := sha256.New()
	size, err := enc.EncodeHashed(src, h, w.emit)
	if err != nil {
		w.abort()
		return Stored{}, fmt.Errorf("store body after %d bytes: %w", size, err)
	}
	digest := fsm.DigestPrefix + hex.EncodeToString(h.Sum(nil))
	if err := checkDigest(digest, expect); err != nil {
		w.abort()
		return Stored{}, err
	}
	missing, err := w.finish(erasure.Layout{Scheme: scheme, BlockSize: blockSize, Size: size})
	if err != nil {
		return Stored{}, err
	}
	return Stored{Digest: digest, Size: size, Object: fsm.ObjectRef{
		ID: id, K: scheme.K, M: scheme.M, BlockSize: blockSize, Placement: nodes, Missing: missing,
	}}, nil
}

// storeShared verifies a body whose digest is already stored: it writes no
// shards, only checks that the bytes are the promised ones.
func (o *Store) storeShared(body io.Reader, expect string, obj fsm.Object) (Stored, error) {
	h := sha256.New()
	bp := getFrame(256 << 10)
	defer putFrame(bp)
	size, err := io.CopyBuffer(h, body, (*bp)[:cap(*bp)])
	if err != nil {
		return Stored{}, fmt.Errorf("read body: %w", err)
	}
	if err := checkDigest(fsm.DigestPrefix+hex.EncodeToString(h.Sum(nil)), expect); err != nil {
		return Stored{}, err
	}
	return Stored{Digest: expect, Size: size, Object: obj.ObjectRef, Shared: true}, nil
}

// schemeFor picks the erasure scheme for a push seen by live nodes: the
// configured one when enough nodes are up, else the default for that many.
func (o *Store) schemeFor(live int) erasure.Scheme {
	if s := o.cfg.EC; s.K > 0 && s.Shards() <= live {
		return s
	}
	return erasure.SchemeFor(live)
}

// newObjectID returns a random object identity. The digest cannot name the
// shards: it is known only once the whole body has streamed through.
func newObjectID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("object id: %v", err)) // the kernel's CSPRNG does not fail
	}
	return hex.EncodeToString(b[:])
}

// shardSink streams one shard file to one node.
type shardSink struct {
	index  int
	parity bool // index >= K: read only when a data shard is lost
	node   string
	frames chan *[]byte
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

func (s *shardSink) failed() bool {
	select {
	case <-s.done:
		return s.err != nil
	default:
		return false
	}
}

// stripeWriter fans the frames of each stripe out to one sink per shard.
// A repair writes only some shards: nodes[i] == "" has no sink.
type stripeWriter struct {
	o      *Store
	id     string
	scheme erasure.Scheme
	nodes  []string
	sinks  []*shardSink
	need   int
	timer  *time.Timer
	closed bool
	// keep, when set, names the shards a failed write must leave in
	// place: a rebuild's in-place targets, whose file there is still the
	// object's current one (Rebuild).
	keep func(index int, node string) bool
}

// removable is where the shards a failed write wrote are deleted: every
// node it wrote to but those keep names.
func (w *stripeWriter) removable() fsm.ObjectRef {
	nodes := slices.Clone(w.nodes)
	for i, n := range nodes {
		if n != "" && w.keep != nil && w.keep(i, n) {
			nodes[i] = ""
		}
	}
	return fsm.ObjectRef{ID: w.id, Placement: nodes}
}

// newStripeWriter starts one shard stream per non-empty entry of nodes; the
// write succeeds when need of them end durable.
func (o *Store) newStripeWriter(ctx context.Context, id string, scheme erasure.Scheme, nodes []string, need int) *stripeWriter {
	w := &stripeWriter{o: o, id: id, scheme: scheme, nodes: nodes, need: need, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	w.sinks = make([]*shardSink, len(nodes))
	for i, node := range nodes {
		if node == "" {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		s := &shardSink{index: i, parity: i >= scheme.K, node: node, frames: make(chan *[]byte, framesInFlight), cancel: cancel, done: make(chan struct{})}
		w.sinks[i] = s
		go o.runSink(sctx, id, s)
	}
	return w
}

// runSink streams queued frames into a shard upload to the sink's node.
func (o *Store) runSink(ctx context.Context, id string, s *shardSink) {
	err := o.putShard(ctx, s.node, id, s.index, s.parity, &frameStream{frames: s.frames})
	if errors.Is(err, ErrPeerUnreachable) && ctx.Err() == nil {
		// A stream this push cancelled itself says nothing about the node.
		o.pool.MarkUnreachable(s.node)
	}
	s.err = err
	close(s.done)
	// A failed upload leaves frames queued, and the writer closes the
	// queue only at the end of the push. An HTTP request can also fail
	// while its body is still being read; that reader takes frames from
	// the same queue until it notices.
	for f := range s.frames {
		putFrame(f)
	}
}

// frameStream reads a sink's queued frames as one stream. Being an
// io.WriterTo, it lets net/http write each frame straight to the peer
// connection; an io.Pipe here copied every shard byte once more, about 6%
// of a big push's CPU on its node.
type frameStream struct {
	frames <-chan *[]byte
	cur    *[]byte // the frame being read, from off on
	off    int
}

func (s *frameStream) next() bool {
	if s.cur != nil {
		return true
	}
	f, ok := <-s.frames
	if !ok {
		return false
	}
	s.cur, s.off = f, 0
	return true
}

func (s *frameStream) advance(n int) {
	s.off += n
	if s.off == len(*s.cur) {
		putFrame(s.cur)
		s.cur = nil
	}
}

// Read implements io.Reader.
func (s *frameStream) Read(p []byte) (int, error) {
	if !s.next() {
		return 0, io.EOF
	}
	n := copy(p, (*s.cur)[s.off:])
	s.advance(n)
	return n, nil
}

// WriteTo implements io.WriterTo.
func (s *frameStream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for s.next() {
		n, err := w.Write((*s.cur)[s.off:])
		total += int64(n)
		if err != nil {
			return total, err
		}
		s.advance(n)
	}
	return total, nil
}

// emit queues one stripe's blocks. A sink that cannot take a frame within
// the stall timeout is given up; the push goes on while enough remain.
func (w *stripeWriter) emit(stripe int, shards [][]byte) error {
	for i, blk := range shards {
		s := w.sinks[i]
		if s == nil || s.failed() {
			continue
		}
		f := getFrame(len(blk) + erasure.ChecksumSize)
		*f = erasure.AppendFrame(*f, stripe, blk)
		if w.o.fault(faultDropShard) && i == len(shards)-1 {
			putFrame(f)
			continue
		}
		select {
		case s.frames <- f:
			continue
		default:
		}
		w.timer.Reset(w.o.cfg.StallTimeout)
		select {
		case s.frames <- f:
		case <-s.done:
			putFrame(f)
		case <-w.timer.C:
			putFrame(f)
			w.o.log.Warn("shard stream stalled, giving it up", "object", w.id, "shard", i, "node", s.node)
			s.cancel()
			<-s.done
		}
		w.timer.Stop()
	}
	if ok := w.healthy(); ok < w.need {
		return fmt.Errorf("%w: only %d shard streams left, %d needed", ErrUnavailable, ok, w.need)
	}
	return nil
}

func (w *stripeWriter) healthy() int {
	ok := 0
	for _, s := range w.sinks {
		if s != nil && !s.failed() {
			ok++
		}
	}
	return ok
}

// finish sends each shard's header, waits until the shard files are durable,
// and returns the indexes that are not. If fewer than required made it, it
// removes the rest and fails.
func (w *stripeWriter) finish(l erasure.Layout) ([]int, error) {
	var obj [32]byte
	hex.Decode(obj[:], []byte(w.id))
	for i, s := range w.sinks {
		if s == nil {
			continue
		}
		hdr, err := erasure.Header{Object: obj, Index: i, Layout: l}.MarshalBinary()
		if err != nil {
			w.abort()
			return nil, err
		}
		if !s.failed() {
			f := getFrame(len(hdr))
			*f = append(*f, hdr...)
			select {
			case s.frames <- f:
			case <-s.done:
				putFrame(f)
			}
		}
	}
	w.closeFrames()
	var missing []int
	var errs []error
	durable := 0
	for i, s := range w.sinks {
		if s == nil {
			continue
		}
		<-s.done
		s.cancel()
		if s.err != nil {
			missing = append(missing, i)
			errs = append(errs, fmt.Errorf("shard %d on %s: %w", i, s.node, s.err))
			continue
		}
		durable++
	}
	if len(errs) > 0 {
		w.o.log.Warn("lost shard streams", "object", w.id, "error", errors.Join(errs...))
	}
	if durable < w.need {
		w.o.deleteShards(context.Background(), w.removable())
		return nil, fmt.Errorf("%w: %d shards durable, %d needed: %w",
			ErrUnavailable, durable, w.need, errors.Join(errs...))
	}
	if w.o.fault(faultDropShard) {
		// The planted fault acknowledges the push as if no shard were lost.
		missing = nil
	}
	return missing, nil
}

func (w *stripeWriter) closeFrames() {
	if w.closed {
		return
	}
	w.closed = true
	for _, s := range w.sinks {
		if s != nil {
			close(s.frames)
		}
	}
}

// abort stops every stream and removes whatever shards were written.
func (w *stripeWriter) abort() {
	for _, s := range w.sinks {
		if s != nil {
			s.cancel()
		}
	}
	w.closeFrames()
	for _, s := range w.sinks {
		if s != nil {
			<-s.done
		}
	}
	w.o.deleteShards(context.Background(), w.removable())
}

// checkDigest refuses a body whose digest is not the one the client
// promised; an empty expect promises nothing.
// CheckDigest refuses a body whose digest is not the one the client
// promised (none promised: any).
func CheckDigest(digest, expect string) error { return checkDigest(digest, expect) }

func checkDigest(digest, expect string) error {
	if expect != "" && digest != expect {
		return fmt.Errorf("%w: body hashes to %s, client expected %s", ErrDigestMismatch, digest, expect)
	}
	return nil
}

// strictBody tells a body that ends early from one that ends: an HTTP body
// cut short of its Content-Length reads as io.ErrUnexpectedEOF, which the
// encoder, like io.ReadFull, would take for the end of a short last stripe.
type strictBody struct{ r io.Reader }

func (b strictBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w after a short read", ErrTruncated)
	}
	return n, err
}

// limitReader fails a body longer than the configured maximum, so an
// oversized push stops early instead of filling the disks.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
