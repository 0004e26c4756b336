// Package erasure turns an object's bytes into Reed-Solomon shard files and
// back.
//
// An object is cut into stripes of K*BlockSize bytes. Each stripe is encoded
// into K data blocks and M parity blocks; block i of every stripe is appended
// to shard file i, which lives on one node. Any K intact blocks of a stripe
// are enough to rebuild it, so an object survives the loss or corruption of
// up to M shard files (or of up to M blocks per stripe spread over more
// files).
//
// Every block in a shard file carries a CRC32C that is checked on every read:
// a block whose checksum fails is reported (so the caller can count and
// repair it) and is then treated exactly like a missing one.
//
// Memory per transfer is bounded by one stripe's worth of blocks, taken from a
// pool, whatever the object size. See DESIGN.md for the reasoning behind the
// layout and the checksum choice.
package erasure

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and add which shard, stripe or field was at fault.
var (
	// ErrCorrupt means a block's bytes do not match its stored checksum.
	// The block must be treated as missing and rebuilt from parity.
	ErrCorrupt = errors.New("erasure: corrupt block")

	// ErrTruncated means a shard file ended before the header or block being
	// read. Blocks before the cut are still usable.
	ErrTruncated = errors.New("erasure: truncated shard file")

	// ErrBadHeader means the bytes are not a shard header this version can
	// read: wrong magic, unknown format version, failed header checksum or an
	// impossible field value.
	ErrBadHeader = errors.New("erasure: bad shard header")

	// ErrWrongShard means a well-formed header describes a different object,
	// shard index or layout than the caller expected: the file was misplaced
	// or misnamed, and its blocks must not be mixed into this object.
	ErrWrongShard = errors.New("erasure: shard header does not match")

	// ErrTooFewShards means fewer than K intact blocks of a stripe could be
	// read, so the stripe cannot be rebuilt.
	ErrTooFewShards = errors.New("erasure: too few intact shards")

	// ErrInvalidScheme means a Scheme is outside the supported bounds.
	ErrInvalidScheme = errors.New("erasure: invalid scheme")

	// ErrInvalidLayout means a Layout has an invalid scheme, block size or
	// object size.
	ErrInvalidLayout = errors.New("erasure: invalid layout")

	// ErrRange means a requested byte range is not inside the object.
	ErrRange = errors.New("erasure: range out of bounds")
)
