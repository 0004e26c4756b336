package cluster

import (
	"context"
	"fmt"
	"io"

	"github.com/pier-registry/pier/fsm"
)

// Pull-through (cluster/federation/pullthrough.go): the node's side. The
// public API calls PullThroughStat when a pull finds no artifact here, and
// PullThroughOpen for the bytes; only a name never bound in this cluster
// is asked for, so a deletion here is not undone and a name bound here is
// never served with another datacenter's bytes.

// PullThroughStat returns the artifact another datacenter binds name to,
// when this cluster has never bound it and federation is on; otherwise
// an error wrapping fsm.ErrNotFound.
func (n *Node) PullThroughStat(ctx context.Context, name string) (fsm.Artifact, error) {
	if err := fsm.ValidateNameShape(name); err != nil {
		return fsm.Artifact{}, err
	}
	if n.fed == nil {
		return fsm.Artifact{}, fmt.Errorf("%w: %s", fsm.ErrNotFound, name)
	}
	if _, _, ok := n.fsm.Binding(name); ok {
		// Live or deleted here: this cluster's answer stands.
		return fsm.Artifact{}, fsm.ExplainMissing(name, fmt.Errorf("%w: %s", fsm.ErrNotFound, name))
	}
	a, _, err := n.fed.PullStat(ctx, name)
	return a, err
}

// PullThroughOpen streams n bytes from off of an artifact PullThroughStat
// returned, storing all of it here as it goes (federation.PullOpen). A
// pull that comes while another pull of the name is fetching it waits for
// that fetch and reads the stored copy; one that comes after reads the
// stored copy at once.
func (n *Node) PullThroughOpen(ctx context.Context, a fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	if local, ok := n.fsm.Get(a.Name); ok {
		return n.openSame(ctx, local, a, off, length)
	}
	if n.fed == nil {
		return nil, fmt.Errorf("%w: %s", fsm.ErrNotFound, a.Name)
	}
	rc, wait, err := n.fed.PullOpen(ctx, a.Name, a.Digest, off, length)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		return rc, nil
	}
	werr := wait(ctx)
	local, err := n.Stat(ctx, a.Name)
	if err != nil {
		if werr != nil {
			return nil, fmt.Errorf("pull-through %s: %w", a.Name, werr)
		}
		return nil, err
	}
	return n.openSame(ctx, local, a, off, length)
}

// openSame opens the local copy of want, which must be bound to the same
// bytes.
func (n *Node) openSame(ctx context.Context, local, want fsm.Artifact, off, length int64) (io.ReadCloser, error) {
	if local.Digest != want.Digest {
		return nil, fmt.Errorf("%w: %s is bound here to %s", fsm.ErrConflict, want.Name, local.Digest)
	}
	return n.Open(ctx, local, off, length)
}

// FederationRecord answers another datacenter's pull-through lookup
// (peer service): name's live artifact here, with its origin and tag
// history, after a read barrier when this node does not know it. It never
// asks a third datacenter.
func (n *Node) FederationRecord(ctx context.Context, name string) (fsm.FeedRecord, error) {
	a, err := n.Stat(ctx, name)
	if err != nil {
		return fsm.FeedRecord{}, err
	}
	return fsm.FeedRecord{Name: a.Name, Origin: n.fsm.Origin(a.Name), Digest: a.Digest, Size: a.Size,
		Live: &a, History: n.fsm.History(a.Name)}, nil
}
