package erasure

import (
	"errors"
	"fmt"
	"io"
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
	a, b, ok := d.clip(stripe, off, n)
	if !ok {
		return nil
	}
	bl := d.l.BlockLen(stripe)
	j0, j1 := int(a)/bl, int(b-1)/bl
	if err := d.reconstruct(stripe, blocks, j0, j1); err != nil {
		return err
	}
	for j := j0; j <= j1; j++ {
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

// Decode writes object bytes [off, off+n) to w, reading only the stripes
// that cover the range and, in each, only the data blocks that cover it.
// When one of those is missing, corrupt or unreadable, it reads further
// blocks (other data shards first, then parity) until it has K intact ones
// and rebuilds what it needs. Blocks of a stripe are fetched concurrently,
// and memory stays at one stripe of blocks, reused for every stripe.
//
// It returns every Fault met, in the order found, even when it fails. A shard
// that fails with anything but ErrCorrupt is not asked for further blocks;
// a corrupt block only disqualifies itself. If some stripe has fewer than K
// intact blocks, the error wraps ErrTooFewShards; bytes before that stripe
// have already been written to w.
func Decode(l Layout, open OpenFunc, w io.Writer, off, n int64) ([]Fault, error) {
	d, err := NewDecoder(l)
	if err != nil {
		return nil, err
	}
	first, end, err := l.StripesFor(off, n)
	if err != nil || first == end {
		return nil, err
	}
	k, ns := l.Scheme.K, l.Scheme.Shards()
	// Only the object's last stripe can have shorter blocks, so the first
	// stripe of the range has the longest ones.
	stride := l.BlockLen(first) + ChecksumSize
	slab := getSlab(ns * stride)
	defer putSlab(slab)
	st := &decodeState{
		l:        l,
		open:     open,
		readers:  make([]BlockReader, ns),
		opened:   make([]bool, ns),
		dead:     make([]bool, ns),
		bufs:     make([][]byte, ns),
		blocks:   make([][]byte, ns),
		errs:     make([]error, ns),
		openErrs: make([]bool, ns),
	}
	for i := range ns {
		st.bufs[i] = (*slab)[i*stride : (i+1)*stride : (i+1)*stride]
	}

	want := make([]int, 0, ns)
	order := make([]int, 0, ns)
	for s := first; s < end; s++ {
		a, b, _ := d.clip(s, off, n)
		bl := l.BlockLen(s)
		j0, j1 := int(a)/bl, int(b-1)/bl
		for i := range st.blocks {
			st.blocks[i] = nil
		}
		want = want[:0]
		for j := j0; j <= j1; j++ {
			want = append(want, j)
		}
		st.fetch(s, want)
		have := 0
		for j := j0; j <= j1; j++ {
			if st.blocks[j] != nil {
				have++
			}
		}
		if have < j1-j0+1 {
			// Degraded: any K intact blocks will do and the rebuild costs
			// the same whichever they are; other data shards are tried
			// before parity only so parity is touched as rarely as possible.
			next := 0
			order = order[:0]
			for i := range ns {
				if i < j0 || i > j1 {
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
				st.fetch(s, want)
				for _, i := range want {
					if st.blocks[i] != nil {
						have++
					}
				}
			}
			for i, blk := range st.blocks {
				if blk == nil {
					st.blocks[i] = st.bufs[i][:0] // rebuilt in place, no allocation
				}
			}
		}
		if err := d.DecodeStripe(w, s, st.blocks, off, n); err != nil {
			return st.faults, err
		}
	}
	return st.faults, nil
}

// decodeState is Decode's per-shard bookkeeping across stripes.
type decodeState struct {
	l        Layout
	open     OpenFunc
	readers  []BlockReader
	opened   []bool
	dead     []bool   // never ask this shard again
	bufs     [][]byte // per-shard read buffer, reused for every stripe
	blocks   [][]byte // current stripe: verified block or nil
	errs     []error
	openErrs []bool
	faults   []Fault
}

// fetch reads the given shards' blocks of stripe concurrently, because with
// remote shards one stripe would otherwise cost K sequential round trips.
func (st *decodeState) fetch(stripe int, shards []int) {
	var wg sync.WaitGroup
	for n, i := range shards {
		if st.dead[i] {
			continue
		}
		if n == len(shards)-1 {
			st.fetchOne(stripe, i)
			break
		}
		wg.Go(func() { st.fetchOne(stripe, i) })
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
func (st *decodeState) fetchOne(stripe, i int) {
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
	b, err := st.readers[i].ReadBlock(stripe, st.bufs[i])
	if err == nil && len(b) != st.l.BlockLen(stripe) {
		err = fmt.Errorf("read block %d of shard %d: got %d bytes, layout says %d", stripe, i, len(b), st.l.BlockLen(stripe))
	}
	if err != nil {
		st.errs[i] = err
		return
	}
	st.blocks[i] = b
}
