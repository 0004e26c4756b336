package cluster

import (
	"context"
	"fmt"

	"github.com/pier-registry/pier/fsm"
)

// Stat returns the live artifact bound to name. A name unknown to the local
// state is looked up again after a read barrier, so a push acknowledged by
// any node is visible here at once (read-after-write on every node).
func (n *Node) Stat(ctx context.Context, name string) (fsm.Artifact, error) {
	if err := fsm.ValidateNameShape(name); err != nil {
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
	return fsm.Artifact{}, fsm.ExplainMissing(name, fmt.Errorf("%w: %s", fsm.ErrNotFound, name))
}

// Barrier waits until this node's state holds every write acknowledged by
// the cluster before the call (metastore.Store.Barrier).
func (n *Node) Barrier(ctx context.Context) error { return n.store.Barrier(ctx) }

// LeaderReadIndex confirms leadership and returns an index that covers
// every write this leader acknowledged, for a follower's barrier.
func (n *Node) LeaderReadIndex(ctx context.Context) (uint64, error) {
	return n.store.LeaderReadIndex(ctx)
}

// List returns artifacts matching q, newest first, after a read barrier:
// tags are mutable and automation acts on what a listing shows.
func (n *Node) List(ctx context.Context, q fsm.Query) ([]fsm.Artifact, string, error) {
	if err := n.Barrier(ctx); err != nil {
		return nil, "", err
	}
	return n.fsm.List(q)
}

// StatFresh returns an artifact's current metadata, tags included, after a
// read barrier. Stat, for pulls, may answer from a slightly stale state:
// the bytes behind a name never change.
func (n *Node) StatFresh(ctx context.Context, name string) (fsm.Artifact, error) {
	if err := fsm.ValidateNameShape(name); err != nil {
		return fsm.Artifact{}, err
	}
	if err := n.Barrier(ctx); err != nil {
		return fsm.Artifact{}, err
	}
	if a, ok := n.fsm.Get(name); ok {
		return a, nil
	}
	return fsm.Artifact{}, fsm.ExplainMissing(name, fmt.Errorf("%w: %s", fsm.ErrNotFound, name))
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
