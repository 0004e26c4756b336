// Package repairplan decides what repair and rebalance do to one object:
// which shards are bad, which node each rebuilt shard goes to, which shard
// a rebalance moves, and how the object's redundancy stands. It is pure (a
// record, a view of the nodes, a time in; a decision out), so every rule is
// table-tested here, and cluster's maintenance loop only carries it out.
package repairplan

import (
	"slices"
	"time"

	"github.com/pier-registry/pier/chunk/placement"
	"github.com/pier-registry/pier/fsm"
)

// Nodes is what repair knows of the nodes: their agreed state (raft) and
// what gossip says of them now.
type Nodes interface {
	// State is the node's agreed state (active, draining, left).
	State(id string) fsm.NodeState
	// Up reports whether gossip calls the node alive (this node always is).
	Up(id string) bool
	// DownSince is when the node was first seen not alive.
	DownSince(id string) time.Time
}

// Redundancy is how an object's shards stand.
type Redundancy string

// Redundancy states, from best to worst.
const (
	// Full: every shard is healthy on a serving node.
	Full Redundancy = "full"
	// Degraded: shards are missing but more than K remain.
	Degraded Redundancy = "degraded"
	// AtRisk: exactly K shards remain; one more loss makes it unreadable.
	AtRisk Redundancy = "at_risk"
	// Unavailable: fewer than K shards are reachable now.
	Unavailable Redundancy = "unavailable"
)

// Assessment classifies the shards of one object: Bad shards are repaired
// now (missing, on a node that left or is draining, or on a node down for
// longer than the grace period); Down shards are on nodes that are not
// alive but still within it.
type Assessment struct {
	Bad, Down []int
}

// Assess classifies obj's shards at now, with grace as the time a node may
// be down before its shards are rebuilt elsewhere.
func Assess(obj fsm.Object, nodes Nodes, now time.Time, grace time.Duration) Assessment {
	var a Assessment
	for i, node := range obj.Placement {
		switch {
		case slices.Contains(obj.Missing, i):
			a.Bad = append(a.Bad, i)
		case nodes.State(node) != fsm.NodeActive:
			a.Bad = append(a.Bad, i)
		case !nodes.Up(node):
			if now.Sub(nodes.DownSince(node)) > grace {
				a.Bad = append(a.Bad, i)
			} else {
				a.Down = append(a.Down, i)
			}
		}
	}
	return a
}

// Readable reports whether shard i of obj can serve as a source: not
// marked missing, on a node that has not left and that gossip calls up.
// Shards on draining nodes are readable.
func Readable(obj fsm.Object, nodes Nodes, i int) bool {
	node := obj.Placement[i]
	return !slices.Contains(obj.Missing, i) && nodes.State(node) != fsm.NodeLeft && nodes.Up(node)
}

// Sources counts obj's readable shards.
func Sources(obj fsm.Object, nodes Nodes) int {
	c := 0
	for i := range obj.Placement {
		if Readable(obj, nodes, i) {
			c++
		}
	}
	return c
}

// Classify tells an object's redundancy for status and metrics. A shard on
// a draining node still serves, so it counts as available; a corrupt
// object serves nothing.
func Classify(obj fsm.Object, nodes Nodes) Redundancy {
	if obj.Corrupt != "" {
		return Unavailable
	}
	avail := 0
	healthy := true
	for i, node := range obj.Placement {
		st := nodes.State(node)
		switch {
		case slices.Contains(obj.Missing, i), st == fsm.NodeLeft, !nodes.Up(node):
			healthy = false
		case st == fsm.NodeDraining:
			healthy = false
			avail++
		default:
			avail++
		}
	}
	switch {
	case avail < obj.K:
		return Unavailable
	case avail < obj.K+1 && obj.M > 0:
		return AtRisk
	case !healthy:
		return Degraded
	}
	return Full
}

// Targets chooses where each bad shard of obj is rebuilt, among the active
// nodes (alive, reachable, neither draining nor gone): targets[i] is the
// node for shard i, "" for shards that stay. A bad shard whose node is
// active and holds no other shard of the object is rebuilt in place (a
// missing or corrupt shard on a serving node); the others go to the active
// nodes that hold none, in the object's rendezvous order, so every node
// choosing for the same object picks the same. rewrite is true when there
// are too few such nodes: the object must be re-encoded for the nodes
// there are.
func Targets(obj fsm.Object, bad []int, active []string) (targets []string, rewrite bool) {
	holding := map[string]bool{}
	for i, node := range obj.Placement {
		if !slices.Contains(bad, i) {
			holding[node] = true
		}
	}
	var spare []string
	for _, id := range placement.Place(obj.ID, active, len(active)) {
		if !holding[id] {
			spare = append(spare, id)
		}
	}
	targets = make([]string, len(obj.Placement))
	for _, i := range bad {
		h := obj.Placement[i]
		if slices.Contains(spare, h) {
			targets[i] = h
			spare = slices.DeleteFunc(spare, func(s string) bool { return s == h })
		}
	}
	for _, i := range bad {
		if targets[i] != "" {
			continue
		}
		if len(spare) == 0 {
			return nil, true
		}
		targets[i], spare = spare[0], spare[1:]
	}
	return targets, false
}

// Rebalance chooses one shard of a healthy object to move onto a node the
// placement over the live nodes prefers (after a join, say): targets has
// one non-empty entry, or ok is false when the placement is already ideal
// or there are fewer live nodes than shards.
func Rebalance(obj fsm.Object, live []string) (targets []string, ok bool) {
	if len(live) < len(obj.Placement) {
		return nil, false
	}
	ideal := placement.Place(obj.ID, live, len(obj.Placement))
	var in string
	for _, id := range ideal {
		if !slices.Contains(obj.Placement, id) {
			in = id
			break
		}
	}
	if in == "" {
		return nil, false
	}
	for i, node := range obj.Placement {
		if !slices.Contains(ideal, node) {
			targets = make([]string, len(obj.Placement))
			targets[i] = in
			return targets, true
		}
	}
	return nil, false
}
