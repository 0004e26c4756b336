package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"

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
	for attempt := 0; attempt < 3; attempt++ {
		if err := n.waitLeader(ctx); err != nil {
			return err
		}
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.LeaderReadIndex(ctx)
		} else {
			addr, aerr := n.leaderHTTP()
			if aerr != nil {
				err = aerr
			} else {
				idx, err = n.cfg.Peers.ReadIndex(ctx, addr)
			}
		}
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read barrier: %w", err)
		}
		return n.waitApplied(ctx, idx)
	}
	return fmt.Errorf("read barrier: %w", ErrNoLeader)
}

// LeaderReadIndex confirms leadership with a barrier entry, which commits
// only with a quorum, and returns an index covering every acknowledged write.
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
	return n.raft.AppliedIndex(), nil
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

// Open streams n bytes from offset off of an artifact's content, from the
// local store when it holds a copy, otherwise from a node that does.
func (n *Node) Open(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > a.Size {
		return nil, fmt.Errorf("%w: range %d+%d outside %d bytes", fsm.ErrInvalid, off, length, a.Size)
	}
	if f, err := n.store.Open(a.Digest); err == nil {
		return sectionCloser{io.NewSectionReader(f, off, length), f}, nil
	}
	obj, ok := n.fsm.Object(a.Digest)
	if !ok {
		return nil, fmt.Errorf("%w: no object record for %s", ErrUnavailable, a.Digest)
	}
	var errs []error
	for _, id := range obj.Placement {
		if id == n.cfg.ID {
			continue
		}
		m, ok := n.members.get(id)
		if !ok || m.State != StateAlive {
			errs = append(errs, fmt.Errorf("holder %s is not alive", id))
			continue
		}
		rc, err := n.cfg.Peers.FetchObject(ctx, m.Meta.HTTP, a.Digest, off, length)
		if err == nil {
			return rc, nil
		}
		errs = append(errs, fmt.Errorf("fetch from %s: %w", id, err))
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, a.Digest, errors.Join(errs...))
}

type sectionCloser struct {
	io.Reader
	c io.Closer
}

func (s sectionCloser) Close() error { return s.c.Close() }

// OpenLocal serves the peer service: n bytes at off of a locally stored
// object.
func (n *Node) OpenLocal(digest string, off, length int64) (io.ReadCloser, error) {
	f, err := n.store.Open(digest)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat object %s: %w", digest, err)
	}
	if off < 0 || length < 0 || off+length > st.Size() {
		f.Close()
		return nil, fmt.Errorf("%w: range %d+%d outside %d bytes", fsm.ErrInvalid, off, length, st.Size())
	}
	return sectionCloser{io.NewSectionReader(f, off, length), f}, nil
}

// Counts summarises the cluster's metadata.
func (n *Node) Counts() fsm.Counts { return n.fsm.Counts() }
