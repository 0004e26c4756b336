package fsm

import (
	"fmt"
	"slices"
)

// NodeState is a node's membership state as the cluster agreed it.
type NodeState string

// Node states. A node never mentioned is active.
const (
	NodeActive   NodeState = "active"
	NodeDraining NodeState = "draining"
	NodeLeft     NodeState = "left"
)

func (s *state) setNode(c Command) Result {
	nc := c.Node
	if nc.State == NodeActive {
		delete(s.nodes, nc.Node)
	} else {
		s.nodes[nc.Node] = nc.State
	}
	return Result{Status: StatusUpdated}
}

func (s *state) changeShards(index uint64, c Command) Result {
	sc := c.Shards
	obj, ok := s.objects.get(sc.Digest)
	if !ok || obj.id != sc.ObjectID {
		// The object was deleted or already re-encoded: the change was
		// computed against a state that is gone.
		return Result{Status: StatusConflict, Message: fmt.Sprintf("object %s of %s is not current", sc.ObjectID, sc.Digest)}
	}
	// Copy on write: snapshots and queries share the record; the changes
	// below are made to a copy with slices of its own.
	cur := obj.export()
	ref := cur.ObjectRef
	corrupt := cur.Corrupt
	switch c.Op {
	case OpMoveShards:
		for _, m := range sc.Moves {
			if m.Index < 0 || m.Index >= len(ref.Placement) || ref.Placement[m.Index] != m.From || m.To == "" {
				return Result{Status: StatusConflict, Message: fmt.Sprintf("shard %d of %s is not on %s", m.Index, sc.ObjectID, m.From)}
			}
			ref.Placement[m.Index] = m.To
			ref.Missing = slices.DeleteFunc(ref.Missing, func(i int) bool { return i == m.Index })
		}
	case OpReplaceObject:
		if _, taken := s.byID.get(sc.Replace.ID); taken {
			return Result{Status: StatusConflict, Message: "object id in use"}
		}
		if r, refused := s.refusesObject(sc.Replace.ID); refused {
			return r
		}
		ref = *sc.Replace
		// The new copy was checked against the digest before it was
		// committed (repair's checkContent, storeNew's digest check).
		corrupt = ""
	case OpMarkMissing:
		i := *sc.Missing
		if i < 0 || i >= len(ref.Placement) {
			return Result{Status: StatusInvalid, Message: fmt.Sprintf("shard %d out of range", i)}
		}
		if slices.Contains(ref.Missing, i) {
			return Result{Status: StatusExists}
		}
		ref.Missing = append(ref.Missing, i)
		slices.Sort(ref.Missing)
	case OpMarkCorrupt:
		if corrupt != "" {
			return Result{Status: StatusExists}
		}
		corrupt = sc.Corrupt
	}
	cur.ObjectRef = ref
	cur.Corrupt = corrupt
	n := mustObject(&cur)
	n.changed = index
	s.setObject(n)
	return Result{Status: StatusUpdated}
}
