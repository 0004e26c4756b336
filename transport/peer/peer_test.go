package peer

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/pier-registry/pier/cluster"
)

// shardNode records the shard streams it is sent; the rest of Node is
// unused here.
type shardNode struct {
	Node
	mu  sync.Mutex
	got map[int]bool // shard index -> parity flag
}

func (s *shardNode) ReceiveShard(_ context.Context, id string, index int, parity bool, r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	s.mu.Lock()
	s.got[index] = parity
	s.mu.Unlock()
	return n, err
}

func (s *shardNode) Stats() cluster.Stats { return cluster.Stats{} }

// The parity flag reaches the receiving node, which writes such shards
// around its page cache.
func TestPutShardCarriesParity(t *testing.T) {
	node := &shardNode{got: map[int]bool{}}
	addr, c := serve(t, node, "key")
	for i, parity := range []bool{false, false, true} {
		if err := c.PutShard(t.Context(), addr, id1, i, parity, strings.NewReader("frames and header")); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int]bool{0: false, 1: false, 2: true}
	for i, p := range want {
		if got, ok := node.got[i]; !ok || got != p {
			t.Errorf("shard %d: received=%v parity=%v, want parity=%v", i, ok, got, p)
		}
	}
}

// rangeNode serves every shard range as zeros and records the largest
// read the handler asked of it.
type rangeNode struct {
	Node
	mu      sync.Mutex
	largest int
}

func (s *rangeNode) Stats() cluster.Stats { return cluster.Stats{} }

func (s *rangeNode) OpenShard(_ context.Context, id string, index int, off, n int64, after uint64) (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(sizeRecorder{s}, n)), nil
}

type sizeRecorder struct{ s *rangeNode }

func (r sizeRecorder) Read(p []byte) (int, error) {
	r.s.mu.Lock()
	r.s.largest = max(r.s.largest, len(p))
	r.s.mu.Unlock()
	clear(p)
	return len(p), nil
}

// A shard range is read from its file in large pieces: every read is a
// syscall on the serving node, and a cold pull streams half of each stripe
// this way.
func TestAShardRangeIsReadInLargePieces(t *testing.T) {
	node := &rangeNode{}
	addr, c := serve(t, node, "key")
	const n = 4 << 20
	rc, err := c.GetShard(t.Context(), addr, id1, 0, 0, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || got != n {
		t.Fatalf("read %d bytes, %v; want %d", got, err, n)
	}
	if node.largest < shardBufSize {
		t.Fatalf("the handler read the shard %d bytes at a time, want %d", node.largest, shardBufSize)
	}
}
