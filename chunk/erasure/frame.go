package erasure

import (
	"encoding/binary"
	"io"
)

// AppendFrame appends the on-disk frame of a block (the block, then its
// checksum) to dst. A writer that learns the object's size only at the end
// of a stream sends frames first and the header last (see cluster's shard
// protocol), so it frames blocks without a ShardWriter.
func AppendFrame(dst []byte, stripe int, block []byte) []byte {
	dst = append(dst, block...)
	return binary.LittleEndian.AppendUint32(dst, blockChecksum(stripe, block))
}

// NewFrameReader reads the frames of a shard file from r in stripe order,
// starting at stripe first, without a header: h comes from the object's
// metadata. It serves range reads streamed from another node, which send
// only the frames a range needs.
func NewFrameReader(r io.Reader, h Header, first int) *ShardReader {
	return &ShardReader{h: h, r: r, next: first}
}
