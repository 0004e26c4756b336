// Package placement decides which nodes hold an object's shards, using
// rendezvous (highest random weight) hashing.
//
// Every node gets a pseudo-random score for each object digest and the
// object goes to the highest-scoring nodes. Because a node's score for an
// object does not depend on which other nodes exist, adding a node moves only
// the objects it now wins (about 1/N of them) and removing a node moves only
// the objects it held, with no ring, virtual nodes or shared state to keep in
// sync: every node computes the same answer from the digest and the member
// list alone.
package placement

import (
	"cmp"
	"slices"
)

// Place returns the n distinct nodes that should hold the object with the
// given digest, best first: shard i of the object goes to Place(...)[i]. If
// there are fewer than n distinct nodes, all of them are returned. The result
// depends only on the digest and the set of node names, not on their order or
// repetitions, and is stable across releases because placements are
// persisted. nodes is not modified.
func Place(digest string, nodes []string, n int) []string {
	if n <= 0 || len(nodes) == 0 {
		return nil
	}
	type scored struct {
		score uint64
		node  string
	}
	base := digestState(digest)
	cands := make([]scored, len(nodes))
	for i, node := range nodes {
		cands[i] = scored{score(base, node), node}
	}
	slices.SortFunc(cands, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node) // ties only on a 64-bit collision
	})
	out := make([]string, 0, min(n, len(cands)))
	for i, c := range cands {
		if i > 0 && c.node == cands[i-1].node {
			continue // duplicates score equally, so they sort together
		}
		out = append(out, c.node)
		if len(out) == n {
			break
		}
	}
	return out
}

// Score returns node's weight for digest; Place ranks nodes by it. It is
// exported so that callers can explain or audit a placement.
func Score(digest, node string) uint64 {
	return score(digestState(digest), node)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// digestState is the FNV-1a state after the digest and a 0 separator, shared
// by all nodes' scores for one object. The separator keeps ("ab", "c") and
// ("a", "bc") apart; digests never contain a 0 byte.
func digestState(digest string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(digest); i++ {
		h ^= uint64(digest[i])
		h *= fnvPrime
	}
	h *= fnvPrime // FNV-1a step for the separator byte 0 (the xor is a no-op)
	return h
}

// score continues FNV-1a over the node name and finishes with the
// SplitMix64 mixer. FNV-1a alone is fast and stable but mixes its last bytes
// poorly, and node names such as "node1".."node7" differ only there; the
// mixer spreads every input bit over the whole score so each node's ranking
// across objects is effectively independent.
func score(h uint64, node string) uint64 {
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= fnvPrime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
