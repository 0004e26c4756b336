package erasure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// ShardWriter writes one shard file: the header, then one checksummed frame
// per stripe, in stripe order. It checks every block's length against the
// layout so that a writer fed the wrong number of bytes fails at once rather
// than producing a file that only fails when read.
type ShardWriter struct {
	w      io.Writer
	h      Header
	stripe int   // next stripe to write
	err    error // sticky: a failed write leaves the file in an unknown state
}

// NewShardWriter validates h and writes it to w. The caller must know the
// object's digest and size up front (placement needs the digest anyway); an
// upload of unknown length has to be staged first.
func NewShardWriter(w io.Writer, h Header) (*ShardWriter, error) {
	var buf [HeaderSize]byte
	hb, err := h.AppendBinary(buf[:0])
	if err != nil {
		return nil, fmt.Errorf("write header of shard %d: %w", h.Index, err)
	}
	if _, err := w.Write(hb); err != nil {
		return nil, fmt.Errorf("write header of shard %d: %w", h.Index, err)
	}
	return &ShardWriter{w: w, h: h}, nil
}

// WriteBlock appends the block of the next stripe. Its length must be
// Layout.BlockLen(stripe).
func (sw *ShardWriter) WriteBlock(block []byte) error {
	if sw.err != nil {
		return sw.err
	}
	l := sw.h.Layout
	if sw.stripe >= l.Stripes() {
		return fmt.Errorf("write block %d of shard %d: object has only %d stripes", sw.stripe, sw.h.Index, l.Stripes())
	}
	if want := l.BlockLen(sw.stripe); len(block) != want {
		return fmt.Errorf("write block %d of shard %d: block is %d bytes, layout says %d", sw.stripe, sw.h.Index, len(block), want)
	}
	var sum [ChecksumSize]byte
	binary.LittleEndian.PutUint32(sum[:], blockChecksum(sw.stripe, block))
	// One vectored write where w is a socket, so the 4-byte trailer does
	// not go out as its own packet; plain writes otherwise.
	frame := net.Buffers{block, sum[:]}
	if _, err := frame.WriteTo(sw.w); err != nil {
		sw.err = fmt.Errorf("write block %d of shard %d: %w", sw.stripe, sw.h.Index, err)
		return sw.err
	}
	sw.stripe++
	return nil
}

// Close reports an error, wrapping io.ErrShortWrite, if fewer blocks than the
// layout needs were written, so that an aborted encode cannot be committed as
// a complete shard. Like gzip.Writer, it does not close the underlying writer.
func (sw *ShardWriter) Close() error {
	if sw.err != nil {
		return sw.err
	}
	if n := sw.h.Layout.Stripes(); sw.stripe != n {
		return fmt.Errorf("close shard %d: wrote %d of %d blocks: %w", sw.h.Index, sw.stripe, n, io.ErrShortWrite)
	}
	return nil
}

// BlockReader returns verified shard blocks by stripe number. ShardReader
// implements it; Decode consumes it so that callers can supply remote shards.
type BlockReader interface {
	// ReadBlock returns the block of the given stripe, reading into dst when
	// its capacity suffices. Errors wrap ErrCorrupt for a failed checksum and
	// ErrTruncated for a short file.
	ReadBlock(stripe int, dst []byte) ([]byte, error)
}

// ShardReader reads and verifies blocks of one shard file, either at random
// (over an io.ReaderAt) or front to back (over an io.Reader). In random-access
// mode ReadBlock may be called concurrently, as io.ReaderAt allows; Next and
// the sequential mode are for one goroutine at a time.
type ShardReader struct {
	h    Header
	ra   io.ReaderAt // random-access mode
	r    io.Reader   // sequential mode
	next int         // sequential mode: next stripe in r
	dead error       // sequential mode: r is at an unknown position
}

// NewShardReaderAt reads the header of a shard file through ra and checks it
// against want (digest, index and layout must all match). Blocks can then be
// read in any order; a file cut short still serves the blocks before the cut.
func NewShardReaderAt(ra io.ReaderAt, want Header) (*ShardReader, error) {
	h, err := ReadHeader(io.NewSectionReader(ra, 0, HeaderSize))
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", want.Index, err)
	}
	if err := h.Check(want); err != nil {
		return nil, fmt.Errorf("open shard %d: %w", want.Index, err)
	}
	return &ShardReader{h: h, ra: ra}, nil
}

// NewShardReader reads the header of a shard file from r and checks it
// against want. Blocks are then read in stripe order with Next, or with
// ReadBlock for increasing stripes (skipped blocks are read and discarded).
// It suits shard files streamed over the network.
func NewShardReader(r io.Reader, want Header) (*ShardReader, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", want.Index, err)
	}
	if err := h.Check(want); err != nil {
		return nil, fmt.Errorf("open shard %d: %w", want.Index, err)
	}
	return &ShardReader{h: h, r: r}, nil
}

// Header returns the verified header of the shard file.
func (sr *ShardReader) Header() Header { return sr.h }

// ReadBlock returns the verified block of the given stripe. If cap(dst) is at
// least BlockLen+ChecksumSize, the block and its checksum are read with one
// read into dst and the result aliases dst; otherwise a buffer is allocated.
func (sr *ShardReader) ReadBlock(stripe int, dst []byte) ([]byte, error) {
	l := sr.h.Layout
	if stripe < 0 || stripe >= l.Stripes() {
		return nil, fmt.Errorf("read block %d of shard %d: %w: object has %d stripes", stripe, sr.h.Index, ErrRange, l.Stripes())
	}
	n := l.BlockLen(stripe)
	frame := dst[:0]
	if cap(frame) < n+ChecksumSize {
		frame = make([]byte, 0, n+ChecksumSize)
	}
	frame = frame[:n+ChecksumSize]
	if sr.ra != nil {
		got, err := sr.ra.ReadAt(frame, l.FrameOffset(stripe))
		if got < len(frame) {
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = ErrTruncated
			}
			return nil, fmt.Errorf("read block %d of shard %d: %w", stripe, sr.h.Index, err)
		}
	} else if err := sr.readSequential(stripe, frame); err != nil {
		return nil, err
	}
	block := frame[:n]
	if got, want := blockChecksum(stripe, block), binary.LittleEndian.Uint32(frame[n:]); got != want {
		return nil, fmt.Errorf("read block %d of shard %d: %w: checksum %08x, stored %08x", stripe, sr.h.Index, ErrCorrupt, got, want)
	}
	return block, nil
}

func (sr *ShardReader) readSequential(stripe int, frame []byte) error {
	if sr.dead != nil {
		return sr.dead
	}
	if stripe < sr.next {
		return fmt.Errorf("read block %d of shard %d: sequential reader is already at block %d", stripe, sr.h.Index, sr.next)
	}
	fail := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrTruncated
		}
		sr.dead = fmt.Errorf("read block %d of shard %d: %w", stripe, sr.h.Index, err)
		return sr.dead
	}
	if skip := sr.h.Layout.FrameOffset(stripe) - sr.h.Layout.FrameOffset(sr.next); skip > 0 {
		if _, err := io.CopyN(io.Discard, sr.r, skip); err != nil {
			return fail(err)
		}
	}
	if _, err := io.ReadFull(sr.r, frame); err != nil {
		return fail(err)
	}
	sr.next = stripe + 1
	return nil
}

// Next returns the block of the next stripe in file order, and io.EOF after
// the last one. A corrupt block is reported (wrapping ErrCorrupt) and the
// reader moves past it, so a scrubber can count every bad block of a file in
// one pass; any other error is final.
func (sr *ShardReader) Next(dst []byte) (stripe int, block []byte, err error) {
	stripe = sr.next
	if sr.ra != nil {
		if stripe >= sr.h.Layout.Stripes() {
			return stripe, nil, io.EOF
		}
		sr.next++
		block, err = sr.ReadBlock(stripe, dst)
		return stripe, block, err
	}
	if sr.dead == nil && stripe >= sr.h.Layout.Stripes() {
		return stripe, nil, io.EOF
	}
	block, err = sr.ReadBlock(stripe, dst)
	return stripe, block, err
}

// ShardImage returns shard h.Index of an object held whole in memory as the
// bytes of its shard file, header and frames: how the copies of a small
// object are built, to be stored as one record each rather than streamed.
func ShardImage(h Header, data []byte) ([]byte, error) {
	return AppendShardImage(nil, h, data)
}

// AppendShardImage appends ShardImage(h, data) to dst.
func AppendShardImage(dst []byte, h Header, data []byte) ([]byte, error) {
	if int64(len(data)) != h.Layout.Size {
		return dst, fmt.Errorf("shard image: %d bytes of data, layout says %d", len(data), h.Layout.Size)
	}
	if err := h.Validate(); err != nil {
		return dst, fmt.Errorf("shard image: %w", err)
	}
	dst = slices.Grow(dst, int(h.Layout.ShardFileSize()))
	if h.Layout.Scheme.K == 1 {
		// Every shard of a 1+M object is a full copy: with one data block
		// per stripe, Reed-Solomon parity is that block itself. Small
		// objects are all 1+M, so their images skip the encoder.
		dst, _ = h.AppendBinary(dst)
		bs := h.Layout.BlockSize
		for s := range h.Layout.Stripes() {
			dst = AppendFrame(dst, s, data[s*bs:min((s+1)*bs, len(data))])
		}
		return dst, nil
	}
	enc, err := NewEncoder(h.Layout.Scheme, h.Layout.BlockSize)
	if err != nil {
		return dst, fmt.Errorf("shard image: %w", err)
	}
	buf := bytes.NewBuffer(dst)
	sw, err := NewShardWriter(buf, h)
	if err != nil {
		return dst, err
	}
	if _, err := enc.Encode(bytes.NewReader(data), func(_ int, shards [][]byte) error {
		return sw.WriteBlock(shards[h.Index])
	}); err != nil {
		return dst, err
	}
	if err := sw.Close(); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}
