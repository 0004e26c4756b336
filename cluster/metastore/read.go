package metastore

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/cluster/batch"
)

// Barrier waits until this node's state holds every write acknowledged by
// the cluster before the call. On the leader that is a raft barrier; a
// follower asks the leader for its applied index and waits to reach it.
func (s *Store) Barrier(ctx context.Context) error {
	idx, err := s.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return s.WaitApplied(ctx, idx)
}

// ReadIndex returns an index covering every write acknowledged before the
// call. Concurrent callers share round trips: a caller joins the next one
// to start (never one already in flight, which might predate its request),
// so under load a read barrier costs one raft barrier per round trip, not
// one per request.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	idx, err := s.barriers.Do(ctx, struct{}{})
	if errors.Is(err, batch.ErrClosed) {
		return 0, ErrShutdown
	}
	return idx, err
}

// readIndexRound is one read-index round trip for every caller queued.
func (s *Store) readIndexRound(callers []struct{}) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*s.ElectionTimeout())
	defer cancel()
	var idx uint64
	err := s.LeaderCall(ctx, "read barrier",
		func() (err error) { idx, err = s.LeaderReadIndex(ctx); return err },
		func(addr string) (err error) { idx, err = s.cfg.Leader.ReadIndex(ctx, addr); return err })
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
func (s *Store) LeaderReadIndex(ctx context.Context) (uint64, error) {
	if !s.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := s.leaderSpace(); err != nil {
		return 0, err
	}
	if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		if IsNoSpace(err) {
			return 0, s.logFull(err)
		}
		return 0, err
	}
	return s.fsm.Applied(), nil
}
