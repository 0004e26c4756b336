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
