package fsm

import (
	"encoding/binary"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
)

// A placement names a node per shard, six or more per object, out of the
// few nodes a cluster has had: the object records keep each as its number
// in nodeIDs (a uvarint, one byte for the first 128 nodes) rather than as
// the ID's bytes, which took 48 of the 192 bytes an object's strings cost
// (BENCHMARKS.md, "Metadata"). The numbers are local to the process and
// never leave it: snapshots, exports and every comparison use the IDs.
//
// The table is the process's, like unique's handles that intern also
// uses: every state machine in the process (a test cluster runs several)
// shares it, it only grows, and a number once given names the same ID
// for good, so a frozen state reads it without the FSM's lock.
var nodeIDs = &nodeTable{index: map[string]uint64{}}

type nodeTable struct {
	mu    sync.Mutex // taken by number only
	index map[string]uint64
	// ids is replaced by a longer slice at each new ID; a reader loads it
	// and reads numbers below its length, which writers never change.
	ids atomic.Pointer[[]string]
}

// number returns id's number, giving it the next one if it has none.
func (t *nodeTable) number(id string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.index[id]; ok {
		return n
	}
	var ids []string
	if p := t.ids.Load(); p != nil {
		ids = *p
	}
	ids = append(ids, strings.Clone(id))
	t.ids.Store(&ids)
	n := uint64(len(ids) - 1)
	t.index[ids[n]] = n
	return n
}

// id returns the ID numbered n.
func (t *nodeTable) id(n uint64) string { return (*t.ids.Load())[n] }

// appendNodes appends the placement as the numbers of its node IDs.
func appendNodes(b []byte, ids []string) []byte {
	for _, id := range ids {
		b = binary.AppendUvarint(b, nodeIDs.number(id))
	}
	return b
}

// nodes yields the node IDs of a placement appendNodes packed.
func nodes(p string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for len(p) > 0 {
			n, w := uvarint(p)
			if w <= 0 {
				// Only appendNodes makes these strings.
				panic("fsm: corrupt packed placement")
			}
			if !yield(nodeIDs.id(n)) {
				return
			}
			p = p[w:]
		}
	}
}
