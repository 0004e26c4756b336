package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
)

// Stat returns the live artifact bound to name. A name unknown to the local
// state is looked up again after a read barrier, so a push acknowledged by
// any node is visible here at once (read-after-write on every node).
func (n *Node) Stat(ctx context.Context, name string) (fsm.Artifact, error) {
	if err := fsm.ValidateName(name); err != nil {
		return fsm.Artifact{}, err
	}
	if a, ok := n.fsm.Get(name); ok {
		return a, nil
	}
	if err := n.Barrier(ctx); err != nil {
		return fsm.Artifact{}, err
	}
	if a, ok := n.fsm.Get(name); ok {
		return a, nil
	}
	return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
}

// Barrier waits until this node's state holds every write acknowledged by
// the cluster before the call. On the leader that is a raft barrier; a
// follower asks the leader for its applied index and waits to reach it.
func (n *Node) Barrier(ctx context.Context) error {
	var idx uint64
	err := n.leaderCall(ctx, "read barrier",
		func() (err error) { idx, err = n.LeaderReadIndex(ctx); return err },
		func(addr string) (err error) { idx, err = n.cfg.Peers.ReadIndex(ctx, addr); return err })
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, idx)
}

// LeaderReadIndex confirms leadership with a barrier entry, which commits
// only with a quorum and returns once the state machine has applied every
// entry before it, and returns the index of the last command in the state:
// every acknowledged write is at or below it.
func (n *Node) LeaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, err
	}
	return n.fsm.Applied(), nil
}

// List returns artifacts matching q, newest first. Listing reads local
// state: a list is a snapshot by nature, and the clients that need a single
// name read it through Stat.
func (n *Node) List(q fsm.Query) ([]fsm.Artifact, string, error) {
	return n.fsm.List(q)
}

// Latest returns the newest artifact matching prefix and tag, after a read
// barrier because tags are mutable and automation acts on the answer.
func (n *Node) Latest(ctx context.Context, prefix, tag string) (fsm.Artifact, error) {
	if err := n.Barrier(ctx); err != nil {
		return fsm.Artifact{}, err
	}
	a, ok := n.fsm.Latest(prefix, tag)
	if !ok {
		return fsm.Artifact{}, fmt.Errorf("%w: no artifact matches prefix %q and tag %q", fsm.ErrNotFound, prefix, tag)
	}
	return a, nil
}

// History returns an artifact's tag history.
func (n *Node) History(name string) []fsm.TagEvent { return n.fsm.History(name) }

// Counts summarises the cluster's metadata.
func (n *Node) Counts() fsm.Counts { return n.fsm.Counts() }
