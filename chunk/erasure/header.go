package erasure

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	// HeaderSize is the fixed size of a shard file header.
	HeaderSize = 64

	// FormatVersion is the shard file format version written by this package.
	FormatVersion = 1
)

// magic opens every shard file so that stray files, partial uploads of other
// data or a wrong path are rejected before any block is trusted.
var magic = [8]byte{'P', 'I', 'E', 'R', 'S', 'H', 'R', 'D'}

// Header describes one shard file: which object it belongs to, which shard it
// is and the layout needed to find and size its blocks.
//
// On disk (little endian, 64 bytes):
//
//	0   [8]  magic "PIERSHRD"
//	8   u16  format version (1)
//	10  u8   K
//	11  u8   M
//	12  u8   shard index
//	13  [3]  reserved, zero
//	16  u32  block size
//	20  u64  object size
//	28  [32] object ID
//	60  u32  CRC32C of bytes [0, 60)
type Header struct {
	Object [32]byte // identity of the object: a random ID chosen when it was pushed
	Index  int      // shard index in [0, K+M): data shards first
	Layout Layout
}

// Validate reports whether the header could be written and read back.
func (h Header) Validate() error {
	if err := h.Layout.Validate(); err != nil {
		return err
	}
	if h.Index < 0 || h.Index >= h.Layout.Scheme.Shards() {
		return fmt.Errorf("%w: shard index %d out of range for scheme %v", ErrInvalidLayout, h.Index, h.Layout.Scheme)
	}
	return nil
}

// AppendBinary appends the 64-byte encoding of h to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, FormatVersion)
	b = append(b, byte(h.Layout.Scheme.K), byte(h.Layout.Scheme.M), byte(h.Index), 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Layout.BlockSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Layout.Size))
	b = append(b, h.Object[:]...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	return b, nil
}

// MarshalBinary returns the 64-byte encoding of h.
func (h Header) MarshalBinary() ([]byte, error) {
	return h.AppendBinary(make([]byte, 0, HeaderSize))
}

// UnmarshalBinary decodes and verifies a header. Errors wrap ErrBadHeader, or
// ErrTruncated if b is shorter than HeaderSize.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: header is %d bytes, want %d", ErrTruncated, len(b), HeaderSize)
	}
	b = b[:HeaderSize]
	if [8]byte(b[:8]) != magic {
		return fmt.Errorf("%w: magic %q is not a shard file", ErrBadHeader, b[:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != FormatVersion {
		return fmt.Errorf("%w: format version %d, this build reads %d", ErrBadHeader, v, FormatVersion)
	}
	if got, want := crc32.Checksum(b[:60], castagnoli), binary.LittleEndian.Uint32(b[60:]); got != want {
		return fmt.Errorf("%w: header checksum %08x, stored %08x", ErrBadHeader, got, want)
	}
	if b[13]|b[14]|b[15] != 0 {
		return fmt.Errorf("%w: reserved bytes set", ErrBadHeader)
	}
	var nh Header
	nh.Layout = Layout{
		Scheme:    Scheme{K: int(b[10]), M: int(b[11])},
		BlockSize: int(binary.LittleEndian.Uint32(b[16:])),
		Size:      int64(binary.LittleEndian.Uint64(b[20:])),
	}
	nh.Index = int(b[12])
	copy(nh.Object[:], b[28:60])
	if err := nh.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	*h = nh
	return nil
}

// ReadHeader reads and verifies a shard header from r without checking which
// object it belongs to; scrubbers and repair tools use it to learn what a
// file on disk claims to be.
func ReadHeader(r io.Reader) (Header, error) {
	var buf [HeaderSize]byte
	var h Header
	if n, err := io.ReadFull(r, buf[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, fmt.Errorf("%w: header is %d bytes, want %d", ErrTruncated, n, HeaderSize)
		}
		return h, fmt.Errorf("read shard header: %w", err)
	}
	err := h.UnmarshalBinary(buf[:])
	return h, err
}

// Check returns an error wrapping ErrWrongShard if h is not the header the
// caller expected, naming the first differing field.
func (h Header) Check(want Header) error {
	switch {
	case h.Object != want.Object:
		return fmt.Errorf("%w: object %s, want %s", ErrWrongShard, hex.EncodeToString(h.Object[:]), hex.EncodeToString(want.Object[:]))
	case h.Index != want.Index:
		return fmt.Errorf("%w: shard index %d, want %d", ErrWrongShard, h.Index, want.Index)
	case h.Layout != want.Layout:
		return fmt.Errorf("%w: layout %v/%d/%d, want %v/%d/%d", ErrWrongShard,
			h.Layout.Scheme, h.Layout.BlockSize, h.Layout.Size,
			want.Layout.Scheme, want.Layout.BlockSize, want.Layout.Size)
	}
	return nil
}
