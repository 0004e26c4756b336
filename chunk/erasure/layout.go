package erasure

import "fmt"

const (
	// DefaultBlockSize is the shard block size used unless configured
	// otherwise. 1 MiB keeps a 4+2 stripe at 6 MiB of buffers per transfer,
	// makes the per-block checksum and frame overhead negligible (4 bytes per
	// MiB), and is large enough that one block read is one efficient disk or
	// network request.
	DefaultBlockSize = 1 << 20

	// MaxBlockSize bounds BlockSize so that a hostile or corrupt header cannot
	// make a reader allocate unbounded memory.
	MaxBlockSize = 64 << 20

	// maxObjectSize keeps every offset computation far from int64 overflow.
	maxObjectSize = 1 << 62
)

// Layout is everything needed to map object bytes to shard blocks. It is
// recorded in each shard file header and must be stored with the object's
// metadata, because BlockSize may change between versions or per object.
//
// Stripe s covers object bytes [s*K*BlockSize, (s+1)*K*BlockSize). Every
// stripe but the last has blocks of exactly BlockSize bytes. The last stripe
// is shrunk to blocks of ceil(rest/K) bytes and zero-padded to K times that,
// so a small tail never costs a full stripe of disk and parity work.
type Layout struct {
	Scheme    Scheme
	BlockSize int   // bytes per shard block in every full stripe
	Size      int64 // object size in bytes
}

// Validate reports whether the layout is usable.
func (l Layout) Validate() error {
	if err := l.Scheme.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLayout, err)
	}
	if l.BlockSize < 1 || l.BlockSize > MaxBlockSize {
		return fmt.Errorf("%w: block size %d not in [1, %d]", ErrInvalidLayout, l.BlockSize, MaxBlockSize)
	}
	if l.Size < 0 || l.Size > maxObjectSize {
		return fmt.Errorf("%w: object size %d not in [0, %d]", ErrInvalidLayout, l.Size, int64(maxObjectSize))
	}
	return nil
}

// StripeSize returns the object bytes held by one full stripe, K*BlockSize.
func (l Layout) StripeSize() int64 { return int64(l.Scheme.K) * int64(l.BlockSize) }

// Stripes returns the number of stripes; 0 for an empty object.
func (l Layout) Stripes() int {
	ss := l.StripeSize()
	return int((l.Size + ss - 1) / ss)
}

// StripeOf returns the stripe holding object byte off. off is not checked
// against Size, so StripeOf(Size) is the would-be next stripe.
func (l Layout) StripeOf(off int64) int { return int(off / l.StripeSize()) }

// StripeOffset returns the object offset of the first byte of stripe s.
func (l Layout) StripeOffset(s int) int64 { return int64(s) * l.StripeSize() }

// StripeLen returns how many object bytes stripe s holds (the rest of the
// stripe is padding). It is 0 for stripes past the end.
func (l Layout) StripeLen(s int) int64 {
	rest := l.Size - l.StripeOffset(s)
	if rest <= 0 {
		return 0
	}
	return min(rest, l.StripeSize())
}

// BlockLen returns the length of every shard block of stripe s: BlockSize,
// except for a short last stripe where it is ceil(StripeLen/K).
func (l Layout) BlockLen(s int) int {
	n := l.StripeLen(s)
	k := int64(l.Scheme.K)
	return int((n + k - 1) / k)
}

// StripesFor returns the half-open stripe interval [first, end) that object
// range [off, off+n) needs. An empty range needs no stripes (first == end).
func (l Layout) StripesFor(off, n int64) (first, end int, err error) {
	if off < 0 || n < 0 || off > l.Size || n > l.Size-off {
		return 0, 0, fmt.Errorf("%w: [%d, +%d) of object of %d bytes", ErrRange, off, n, l.Size)
	}
	if n == 0 {
		s := l.StripeOf(off)
		return s, s, nil
	}
	return l.StripeOf(off), l.StripeOf(off+n-1) + 1, nil
}

// FrameOffset returns the byte offset of stripe s's block frame in a shard
// file. Frames sit back to back after the header, so any block can be read
// with a single positioned read.
func (l Layout) FrameOffset(s int) int64 {
	return HeaderSize + int64(s)*int64(l.BlockSize+ChecksumSize)
}

// ShardFileSize returns the exact size of each shard file of the object,
// useful for space accounting and for spotting truncation without reading.
func (l Layout) ShardFileSize() int64 {
	n := l.Stripes()
	if n == 0 {
		return HeaderSize
	}
	return l.FrameOffset(n-1) + int64(l.BlockLen(n-1)) + ChecksumSize
}
