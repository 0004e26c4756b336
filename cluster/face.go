package cluster

import (
	"context"
	"fmt"
	"io"

	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// This file is the node's face towards the public API (transport/httpapi):
// a push is one call, so the protocol behind it (check, store, commit,
// release) and the order of its steps belong to the node, not to each edge
// that takes pushes. The steps stay exported methods of Node (write.go,
// objectsface.go) for the node's own callers and for repair-like work.

// MoreMeta completes a push's metadata once its body is stored: a
// multipart form's fields that come after the file are only read then.
// It may change any field of m; an error it returns ends the push as it
// is, and nothing is committed.
type MoreMeta func(m *PushMeta) error

// pushSteps are the steps of a push, as Node implements them; upload runs
// them in order, and tests run it against a recording double.
type pushSteps interface {
	CheckPush(ctx context.Context, m PushMeta) error
	StoreBody(ctx context.Context, body io.Reader, expect string) (Stored, error)
	Commit(ctx context.Context, m PushMeta, s Stored) (fsm.Artifact, bool, error)
	Release(s Stored, committed bool)
}

// Upload stores body and binds it to m.Name: it returns the artifact and
// whether this push created it (false: the same bytes were bound to the
// name already, a harmless retry). What must fail is refused before a byte
// of body is read (CheckPush). When more is set it is called after the
// body is stored and before the commit, and what it leaves in the metadata
// is checked again (fsm.ValidatePush), since the first check saw only what
// came before the body. Stored content the commit does not bind is
// released before Upload returns (Release: its deletion runs on in the
// background). Errors of the store and commit steps name the step and the
// artifact; errors of more are returned as they are.
//
// A small push enters the node's commit gate once its body is in memory
// (objects' packed path) and leaves it when its commit is queued, so the
// batch the committer takes next waits for it (batch.Gate); the slot makes
// sure it leaves on every other way out too.
func (n *Node) Upload(ctx context.Context, m PushMeta, body io.Reader, more MoreMeta) (fsm.Artifact, bool, error) {
	ctx, slot := batch.WithSlot(ctx)
	defer slot.Leave()
	return upload(ctx, n, m, body, more)
}

func upload(ctx context.Context, p pushSteps, m PushMeta, body io.Reader, more MoreMeta) (art fsm.Artifact, created bool, err error) {
	if err := p.CheckPush(ctx, m); err != nil {
		return fsm.Artifact{}, false, err
	}
	s, err := p.StoreBody(ctx, body, m.ExpectDigest)
	if err != nil {
		return fsm.Artifact{}, false, fmt.Errorf("store %s: %w", m.Name, err)
	}
	committed := false
	defer func() { p.Release(s, committed) }()
	if more != nil {
		if err := more(&m); err != nil {
			return fsm.Artifact{}, false, err
		}
		if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
			return fsm.Artifact{}, false, err
		}
	}
	art, created, err = p.Commit(ctx, m, s)
	if err != nil {
		return fsm.Artifact{}, false, fmt.Errorf("commit %s: %w", m.Name, err)
	}
	committed = true
	return art, created, nil
}
