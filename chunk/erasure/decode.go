package erasure

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/reedsolomon"
)

// Decoder rebuilds and writes out the stripes of one object.
type Decoder struct {
	l  Layout
	rs reedsolomon.Encoder // nil when M == 0: nothing can be rebuilt
}

// NewDecoder returns a decoder for an object with layout l. It is cheap: the
// Reed-Solomon codec is shared between all objects of the same scheme and
// block size.
func NewDecoder(l Layout) (*Decoder, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{l: l}
	if l.Scheme.M > 0 {
		rs, err := rsFor(l.Scheme, l.BlockSize)
		if err != nil {
			return nil, err
		}
		d.rs = rs
	}
	return d, nil
}

// ReconstructData rebuilds every missing data block of stripe from the
// blocks present. blocks has K+M entries, data first; a missing (or corrupt)
// block is nil or empty. An empty entry with capacity of at least
// Layout.BlockLen(stripe) is filled in place; a nil one is allocated. Parity
// blocks are left as they are. It needs K present blocks, otherwise the
// error wraps ErrTooFewShards.
func (d *Decoder) ReconstructData(stripe int, blocks [][]byte) error {
	return d.reconstruct(stripe, blocks, 0, d.l.Scheme.K-1)
}

// reconstruct rebuilds the missing data blocks j0..j1 of stripe, and only
// those, so a range read that lost an unrelated data block pays nothing.
func (d *Decoder) reconstruct(stripe int, blocks [][]byte, j0, j1 int) error {
	k, n := d.l.Scheme.K, d.l.Scheme.Shards()
	if len(blocks) != n {
		return fmt.Errorf("reconstruct stripe %d: got %d blocks, scheme %v has %d", stripe, len(blocks), d.l.Scheme, n)
	}
	bl := d.l.BlockLen(stripe)
	present, missing := 0, 0
	for i, b := range blocks {
		switch {
		case len(b) == 0:
			if i >= j0 && i <= j1 {
				missing++
			}
		case len(b) != bl:
			return fmt.Errorf("reconstruct stripe %d: block %d is %d bytes, layout says %d", stripe, i, len(b), bl)
		default:
			present++
		}
	}
	if missing == 0 {
		return nil
	}
	if present < k || d.rs == nil {
		return fmt.Errorf("reconstruct stripe %d: %w: %d of %d blocks intact, %d needed", stripe, ErrTooFewShards, present, n, k)
	}
	required := make([]bool, k)
	for j := j0; j <= j1; j++ {
		required[j] = len(blocks[j]) == 0
	}
	if err := d.rs.ReconstructSome(blocks, required); err != nil {
		if errors.Is(err, reedsolomon.ErrTooFewShards) {
			err = ErrTooFewShards
		}
		return fmt.Errorf("reconstruct stripe %d: %w", stripe, err)
	}
	return nil
}

// DecodeStripe writes the object bytes of stripe that fall inside the object
// range [off, off+n) to w, first rebuilding the data blocks that range needs
// if they are missing (see ReconstructData for the form of blocks). Padding
// of the last stripe is never written.
func (d *Decoder) DecodeStripe(w io.Writer, stripe int, blocks [][]byte, off, n int64) error {
	if err := d.rebuildFor(stripe, blocks, off, n); err != nil {
		return err
	}
	return d.writeStripe(w, stripe, blocks, off, n)
}

// rebuildFor rebuilds the missing data blocks of stripe that the object
// range [off, off+n) covers.
func (d *Decoder) rebuildFor(stripe int, blocks [][]byte, off, n int64) error {
	a, b, ok := d.clip(stripe, off, n)
	if !ok {
		return nil
	}
	bl := d.l.BlockLen(stripe)
	return d.reconstruct(stripe, blocks, int(a)/bl, int(b-1)/bl)
}

// writeStripe writes the bytes of stripe inside [off, off+n) from blocks,
// whose data blocks for that range are all present.
func (d *Decoder) writeStripe(w io.Writer, stripe int, blocks [][]byte, off, n int64) error {
	a, b, ok := d.clip(stripe, off, n)
	if !ok {
		return nil
	}
	bl := d.l.BlockLen(stripe)
	for j := int(a) / bl; j <= int(b-1)/bl; j++ {
		lo := max(int(a)-j*bl, 0)
		hi := min(int(b)-j*bl, bl)
		if err := writeAll(w, blocks[j][lo:hi]); err != nil {
			return fmt.Errorf("write stripe %d: %w", stripe, err)
		}
	}
	return nil
}

// clip intersects object range [off, off+n) with stripe's object bytes and
// returns it in stripe-relative offsets.
func (d *Decoder) clip(stripe int, off, n int64) (a, b int64, ok bool) {
	start := d.l.StripeOffset(stripe)
	a = max(off, start) - start
	b = min(off+n, start+d.l.StripeLen(stripe)) - start
	return a, b, a < b
}

func writeAll(w io.Writer, p []byte) error {
	n, err := w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// Fault records a shard block that could not be used. Decode reports faults
// so the caller can log, count and schedule repair; they do not by themselves
// fail a read that parity could cover.
type Fault struct {
	Shard  int   // shard index
	Stripe int   // stripe whose block failed; -1 if the shard could not be opened
	Err    error // wraps ErrCorrupt, ErrTruncated, or the open or I/O error
}

// OpenFunc opens shard i of an object for Decode. It is called at most once
// per shard, only when a block of that shard is needed, and possibly
// concurrently for different shards. Return (nil, nil) for a shard known to be
// unavailable (e.g. its node is down): it is skipped without a Fault. The
// caller owns, and closes after Decode returns, whatever it opened.
type OpenFunc func(shard int) (BlockReader, error)

// readAhead is how many stripes a multi-stripe Decode holds buffers for:
// one being written out while the next is fetched. Without the overlap a
// pull waits for its shard reads and for its client in turn, and ran at
// about half the speed of either (see DESIGN.md).
const readAhead = 2

// Decode writes object bytes [off, off+n) to w, reading only the stripes
// that cover the range and, in each, only the data blocks that cover it.
// When one of those is missing, corrupt or unreadable, it reads further
// blocks (other data shards first, then parity) until it has K intact ones
// and rebuilds what it needs. Blocks of a stripe are fetched concurrently,
// and the next stripe is fetched while the current one is written, so
// memory stays at readAhead stripes of blocks, reused for every stripe.
//
// It returns every Fault met, in the order found, even when it fails. A shard
// that fails with anything but ErrCorrupt is not asked for further blocks;
// a corrupt block only disqualifies itself. If some stripe has fewer than K
// intact blocks, the error wraps ErrTooFewShards; bytes before that stripe
// have already been written to w.
func Decode(l Layout, open OpenFunc, w io.Writer, off, n int64) ([]Fault, error) {
	return DecodePreferring(l, open, nil, w, off, n)
}

// DecodePreferring is Decode for a reader to whom some shards cost less
// than others (cheap reports them: those on its own disk). A stripe read
// whole takes each cheap parity block in place of a data block that is not
// cheap, and rebuilds that data block: a node holding parity only then
// reads K-1 blocks of a stripe from its peers instead of K. On the 2-core
// VM of BENCHMARKS.md a 1 GiB pull on such a node ran at 569-645 MB/s with
// both data shards remote, and at 997-1,092 MB/s with a peer down (its
// parity and one data shard). A range that covers part of a stripe reads
// its data blocks as Decode does: parity would cost K blocks for fewer.
func DecodePreferring(l Layout, open OpenFunc, cheap func(shard int) bool, w io.Writer, off, n int64) ([]Fault, error) {
	d, err := NewDecoder(l)
	if err != nil {
		return nil, err
	}
	first, end, err := l.StripesFor(off, n)
	if err != nil || first == end {
		return nil, err
	}
	ns := l.Scheme.Shards()
	st := &decodeState{
		l:        l,
		d:        d,
		open:     open,
		readers:  make([]BlockReader, ns),
		opened:   make([]bool, ns),
		dead:     make([]bool, ns),
		errs:     make([]error, ns),
		openErrs: make([]bool, ns),
		cheap:    cheap,
	}
	// Only the object's last stripe can have shorter blocks, so the first
	// stripe of the range has the longest ones.
	stride := l.BlockLen(first) + ChecksumSize
	if end-first == 1 {
		// One stripe (every small object, most ranges): nothing to overlap,
		// so no goroutine.
		sb := newStripeBuf(ns, stride)
		defer sb.release()
		if err := st.prepare(sb, first, off, n); err != nil {
			return st.faults, err
		}
		return st.faults, d.writeStripe(w, first, sb.blocks, off, n)
	}

	// The fetcher goroutine owns st; the caller's goroutine only writes.
	// There are exactly readAhead buffers, so neither send below blocks
	// for long: a buffer is either free, ready, or in one goroutine's hands.
	free := make(chan *stripeBuf, readAhead)
	ready := make(chan *stripeBuf, readAhead)
	for range readAhead {
		free <- newStripeBuf(ns, stride)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ready)
		for s := first; s < end; s++ {
			var sb *stripeBuf
			select {
			case <-stop:
				return
			case sb = <-free:
			}
			// The writer closes stop before it frees the buffer it failed
			// on, so a failure is always seen here, whatever select chose.
			select {
			case <-stop:
				free <- sb
				return
			default:
			}
			sb.stripe = s
			sb.err = st.prepare(sb, s, off, n)
			ready <- sb
			if sb.err != nil {
				return
			}
		}
	})
	var werr error
	for sb := range ready {
		if werr == nil {
			werr = sb.err
			if werr == nil {
				werr = d.writeStripe(w, sb.stripe, sb.blocks, off, n)
			}
			if werr != nil {
				close(stop)
			}
		}
		free <- sb
	}
	wg.Wait()
	for range readAhead {
		(<-free).release()
	}
	return st.faults, werr
}

// stripeBuf holds one stripe's blocks: a per-shard read buffer cut from a
// pooled slab, and the verified (or rebuilt) block of each shard, or nil.
type stripeBuf struct {
	slab   *[]byte
	bufs   [][]byte
	blocks [][]byte
	stripe int
	err    error
}

func newStripeBuf(ns, stride int) *stripeBuf {
	sb := &stripeBuf{slab: getSlab(ns * stride), bufs: make([][]byte, ns), blocks: make([][]byte, ns)}
	for i := range ns {
		sb.bufs[i] = (*sb.slab)[i*stride : (i+1)*stride : (i+1)*stride]
	}
	return sb
}

func (sb *stripeBuf) release() { putSlab(sb.slab) }

// decodeState is Decode's per-shard bookkeeping across stripes.
type decodeState struct {
	l        Layout
	d        *Decoder
	open     OpenFunc
	readers  []BlockReader
	opened   []bool
	dead     []bool // never ask this shard again
	errs     []error
	openErrs []bool
	faults   []Fault
	// want and order are prepare's scratch lists, reused for every stripe.
	want, order []int
	cheap       func(shard int) bool // nil: every shard costs the same
}

// prepare fills sb with the blocks of stripe s that [off, off+n) needs,
// reading spare shards and rebuilding when one of those fails.
func (st *decodeState) prepare(sb *stripeBuf, s int, off, n int64) error {
	a, b, _ := st.d.clip(s, off, n)
	bl := st.l.BlockLen(s)
	j0, j1 := int(a)/bl, int(b-1)/bl
	k, ns := st.l.Scheme.K, st.l.Scheme.Shards()
	for i := range sb.blocks {
		sb.blocks[i] = nil
	}
	want := st.want[:0]
	defer func() { st.want = want }()
	for j := j0; j <= j1; j++ {
		want = append(want, j)
	}
	if st.cheap != nil && len(want) == k {
		st.preferCheap(want)
	}
	st.fetch(sb, s, want)
	whole := true
	for j := j0; j <= j1; j++ {
		whole = whole && sb.blocks[j] != nil
	}
	if !whole {
		// Degraded, or a cheap parity block stood in: any K intact blocks
		// will do and the rebuild costs the same whichever they are;
		// other data shards are tried before parity only so parity is
		// touched as rarely as possible.
		have := 0
		for _, blk := range sb.blocks {
			if blk != nil {
				have++
			}
		}
		next := 0
		order := st.order[:0]
		defer func() { st.order = order }()
		for i := range ns {
			if !slices.Contains(want, i) {
				order = append(order, i)
			}
		}
		for have < k {
			want = want[:0]
			for ; next < len(order) && len(want) < k-have; next++ {
				if !st.dead[order[next]] {
					want = append(want, order[next])
				}
			}
			if len(want) == 0 {
				break
			}
			st.fetch(sb, s, want)
			for _, i := range want {
				if sb.blocks[i] != nil {
					have++
				}
			}
		}
		for i, blk := range sb.blocks {
			if blk == nil {
				sb.blocks[i] = sb.bufs[i][:0] // rebuilt in place, no allocation
			}
		}
	}
	return st.d.rebuildFor(s, sb.blocks, off, n)
}

// preferCheap replaces, in want (a whole stripe's data shards), each data
// shard that is not cheap by a cheap parity shard still in use, while
// there are such.
func (st *decodeState) preferCheap(want []int) {
	k, ns := st.l.Scheme.K, st.l.Scheme.Shards()
	p := k
	for n, j := range want {
		if st.cheap(j) {
			continue
		}
		for p < ns && (st.dead[p] || !st.cheap(p)) {
			p++
		}
		if p == ns {
			return
		}
		want[n] = p
		p++
	}
}

// fetch reads the given shards' blocks of stripe into sb concurrently,
// because with remote shards one stripe would otherwise cost K sequential
// round trips.
func (st *decodeState) fetch(sb *stripeBuf, stripe int, shards []int) {
	var wg sync.WaitGroup
	for n, i := range shards {
		if st.dead[i] {
			continue
		}
		if n == len(shards)-1 {
			st.fetchOne(sb, stripe, i)
			break
		}
		wg.Go(func() { st.fetchOne(sb, stripe, i) })
	}
	wg.Wait()
	for _, i := range shards {
		err := st.errs[i]
		if err == nil {
			continue
		}
		f := Fault{Shard: i, Stripe: stripe, Err: err}
		if st.openErrs[i] {
			f.Stripe = -1
		}
		st.faults = append(st.faults, f)
		st.errs[i] = nil
		if !errors.Is(err, ErrCorrupt) {
			st.dead[i] = true
		}
	}
}

// fetchOne touches only index i of the state slices, so concurrent calls for
// distinct shards do not race.
func (st *decodeState) fetchOne(sb *stripeBuf, stripe, i int) {
	if !st.opened[i] {
		st.opened[i] = true
		r, err := st.open(i)
		if err != nil {
			st.errs[i] = fmt.Errorf("open shard %d: %w", i, err)
			st.openErrs[i] = true
			return
		}
		if r == nil {
			st.dead[i] = true // known unavailable: not a fault
			return
		}
		st.readers[i] = r
	}
	b, err := st.readers[i].ReadBlock(stripe, sb.bufs[i])
	if err == nil && len(b) != st.l.BlockLen(stripe) {
		err = fmt.Errorf("read block %d of shard %d: got %d bytes, layout says %d", stripe, i, len(b), st.l.BlockLen(stripe))
	}
	if err != nil {
		st.errs[i] = err
		return
	}
	sb.blocks[i] = b
}
