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
	if nc == nil || nc.Node == "" {
		return Result{Status: StatusInvalid, Message: "node command without node"}
	}
	switch nc.State {
	case NodeActive:
		delete(s.nodes, nc.Node)
	case NodeDraining, NodeLeft:
		s.nodes[nc.Node] = nc.State
	default:
		return Result{Status: StatusInvalid, Message: fmt.Sprintf("unknown node state %q", nc.State)}
	}
	return Result{Status: StatusUpdated}
}

func (s *state) changeShards(index uint64, c Command) Result {
	sc := c.Shards
	if sc == nil {
		return Result{Status: StatusInvalid, Message: "shard command without body"}
	}
	obj, ok := s.objects[sc.Digest]
	if !ok || obj.ID != sc.ObjectID {
		// The object was deleted or already re-encoded: the change was
		// computed against a state that is gone.
		return Result{Status: StatusConflict, Message: fmt.Sprintf("object %s of %s is not current", sc.ObjectID, sc.Digest)}
	}
	// Copy on write: snapshots share the object's slices.
	ref := obj.ObjectRef
	ref.Placement = slices.Clone(ref.Placement)
	ref.Missing = slices.Clone(ref.Missing)
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
		if sc.Replace == nil {
			return Result{Status: StatusInvalid, Message: "replace without object"}
		}
		if err := sc.Replace.Validate(); err != nil {
			return Result{Status: StatusInvalid, Message: err.Error()}
		}
		if _, taken := s.byID[sc.Replace.ID]; taken {
			return Result{Status: StatusConflict, Message: "object id in use"}
		}
		delete(s.byID, ref.ID)
		ref = *sc.Replace
		ref.Placement = slices.Clone(ref.Placement)
		ref.Missing = slices.Clone(ref.Missing)
		s.byID[ref.ID] = sc.Digest
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
	}
	n := *obj
	n.ObjectRef = ref
	n.changed = index
	s.objects[sc.Digest] = &n
	return Result{Status: StatusUpdated}
}
