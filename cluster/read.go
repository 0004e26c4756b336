package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/cluster/batch"
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
// the cluster before the call. On the leader that is a raft barrier; a
// follower asks the leader for its applied index and waits to reach it.
func (n *Node) Barrier(ctx context.Context) error {
	idx, err := n.readIndex(ctx)
	if err != nil {
		return err
	}
	return n.waitApplied(ctx, idx)
}

// readIndex returns an index covering every write acknowledged before the
// call. Concurrent callers share round trips: a caller joins the next one
// to start (never one already in flight, which might predate its request),
// so under load a read barrier costs one raft barrier per round trip, not
// one per request.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	idx, err := n.barriers.Do(ctx, struct{}{})
	if errors.Is(err, batch.ErrClosed) {
		return 0, ErrShutdown
	}
	return idx, err
}

// readIndexRound is one read-index round trip for every caller queued.
func (n *Node) readIndexRound(callers []struct{}) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.electionTimeout())
	defer cancel()
	var idx uint64
	err := n.leaderCall(ctx, "read barrier",
		func() (err error) { idx, err = n.LeaderReadIndex(ctx); return err },
		func(addr string) (err error) { idx, err = n.cfg.Peers.ReadIndex(ctx, addr); return err })
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(callers))
	for i := range out {
		out[i] = idx
	}
	return out, nil
}

// LeaderReadIndex confirms leadership with a barrier entry, which commits
// only with a quorum and returns once the state machine has applied every
// entry before it, and returns the index of the last command in the state:
// every acknowledged write is at or below it.
func (n *Node) LeaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := n.leaderSpace(); err != nil {
		return 0, err
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		if isNoSpace(err) {
			return 0, n.logFull(err)
		}
		return 0, err
	}
	return n.fsm.Applied(), nil
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
