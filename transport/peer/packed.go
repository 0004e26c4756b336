package peer

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster"
)

// A packed-shards request body is the shards back to back, each as
//
//	[32] object ID (raw bytes of its hex form)
//	u8   shard index
//	u32  image length, little endian
//	     image
//
// Nothing else frames it: the body's length ends the last one.
const packedHead = 32 + 1 + 4

// maxPackedBody bounds a request: a sender batches at most 4 MiB of images.
const maxPackedBody = 8 << 20

// sendPool recycles the bodies of packed-shards requests. A body goes back
// only after the peer answered success, which it does only once it has
// read the whole body: net/http may still be writing a body when an early
// error answer arrives.
var sendPool sync.Pool

// packedBody returns the body for shards in a buffer from sendPool. It is
// one buffer on purpose: net/http writes a body it knows to be in memory
// behind the request's headers, while any other reader costs a header flush
// and a 32 KiB copy buffer per request.
func packedBody(shards []cluster.PackedShard) (*[]byte, error) {
	size := 0
	for _, s := range shards {
		size += packedHead + len(s.Image)
	}
	bp, _ := sendPool.Get().(*[]byte)
	if bp == nil || cap(*bp) < size {
		bp = new([]byte)
		*bp = make([]byte, 0, size)
	}
	b := (*bp)[:0]
	defer func() { *bp = b }()
	for _, s := range shards {
		if len(s.ID) != 64 || s.Index < 0 || s.Index > 255 || len(s.Image) > chunk.MaxPacked {
			return nil, fmt.Errorf("packed shard %q.%d of %d bytes cannot be sent", s.ID, s.Index, len(s.Image))
		}
		start := len(b)
		b = b[:start+32]
		if _, err := hex.Decode(b[start:], []byte(s.ID)); err != nil {
			return nil, fmt.Errorf("packed shard %q: %w", s.ID, err)
		}
		b = append(b, byte(s.Index))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s.Image)))
		b = append(b, s.Image...)
	}
	return bp, nil
}

// bodyPool recycles request bodies of packed shards: the node has written
// the images to its packs by the time the handler returns.
var bodyPool sync.Pool

// readPacked reads a packed-shards body of length bytes into a pooled
// buffer, which release returns; the images point into it. chunk checks
// each image when it packs it.
func readPacked(r io.Reader, length int64) (shards []cluster.PackedShard, release func(), err error) {
	if length < 0 || length > maxPackedBody {
		return nil, nil, fmt.Errorf("packed shards need a Content-Length of at most %d bytes, got %d", maxPackedBody, length)
	}
	bp, _ := bodyPool.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < length {
		bp = new([]byte)
		*bp = make([]byte, length)
	}
	release = func() { bodyPool.Put(bp) }
	b := (*bp)[:length]
	if _, err := io.ReadFull(r, b); err != nil {
		release()
		return nil, nil, fmt.Errorf("read packed shards: %w", err)
	}
	for len(b) > 0 {
		if len(b) < packedHead {
			release()
			return nil, nil, errors.New("packed shards: truncated record header")
		}
		size := binary.LittleEndian.Uint32(b[33:])
		if size > chunk.MaxPacked || int64(size) > int64(len(b)-packedHead) {
			release()
			return nil, nil, fmt.Errorf("packed shards: record of %d bytes with %d left", size, len(b)-packedHead)
		}
		shards = append(shards, cluster.PackedShard{
			ID:    hex.EncodeToString(b[:32]),
			Index: int(b[32]),
			Image: b[packedHead : packedHead+int(size) : packedHead+int(size)],
		})
		b = b[packedHead+int(size):]
	}
	return shards, release, nil
}
