package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
)

// PushMeta is what a client says about a push besides its bytes.
type PushMeta struct {
	Name    string
	Version string
	Commit  string
	Labels  map[string]string
	Tags    []string
	// ExpectDigest, when set, is the sha256:<hex> the body must hash to.
	ExpectDigest string
	Actor        string
}

// Stored is content that has been made durable but not yet bound to a name.
type Stored struct {
	Digest string
	Size   int64
	// Object is where the shards are. Shared is true when the content was
	// already stored and this push wrote no shards of its own.
	Object fsm.ObjectRef
	Shared bool
}

// CheckPush refuses, before any body is read, a push that must fail: bad
// metadata, a name known to be bound to other bytes, or no leader to commit.
func (n *Node) CheckPush(ctx context.Context, m PushMeta) error {
	if err := fsm.ValidatePush(m.Name, m.Version, m.Commit, m.Labels, m.Tags); err != nil {
		return err
	}
	if err := n.checkHalted(); err != nil {
		return err
	}
	if m.ExpectDigest != "" {
		if err := fsm.ValidateDigest(m.ExpectDigest); err != nil {
			return err
		}
		if d, _, ok := n.fsm.Binding(m.Name); ok && d != m.ExpectDigest {
			return fmt.Errorf("%w: %s is bound to %s", fsm.ErrConflict, m.Name, d)
		}
	}
	// A full node could neither store its shards nor follow the raft log
	// to see its own commit: refuse before reading a byte.
	if err := n.checkSpace(); err != nil {
		return fmt.Errorf("push %s: %w; push to another node", m.Name, err)
	}
	return n.waitLeader(ctx)
}

// Commit binds a name to stored content through raft. It returns the
// artifact and whether this push created it (false: the same bytes were
// already bound to the name).
func (n *Node) Commit(ctx context.Context, m PushMeta, s Stored) (fsm.Artifact, bool, error) {
	if err := checkDigest(s.Digest, m.ExpectDigest); err != nil {
		return fsm.Artifact{}, false, err
	}
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpPutArtifact, Actor: m.Actor, Put: &fsm.PutArtifact{
		Name: m.Name, Digest: s.Digest, Size: s.Size, Version: m.Version, Commit: m.Commit,
		Labels: m.Labels, Tags: m.Tags, Object: s.Object,
	}})
	if err != nil {
		return fsm.Artifact{}, false, err
	}
	if err := res.Err(); err != nil {
		return fsm.Artifact{}, false, err
	}
	return *res.Artifact, res.Status == fsm.StatusCreated, nil
}

// Release ends a push after StoreBody. Shards that the committed state does
// not reference (a refused or failed push, or content that turned out to be
// stored already) are deleted from their nodes, so such a push leaves
// nothing behind. Object IDs are unique per push, so only this push's own
// commit can reference them; when the commit's fate is unknown the check
// runs after a read barrier, and without one the shards are left to GC.
//
// Only the check of a committed push runs before Release returns: the
// deletion (and the barrier) go on in the background, so the client's answer
// does not wait for them. Re-pushing 64 MiB that were stored already under
// another name waited about 90 ms here, a third of the push.
func (n *Node) Release(s Stored, committed bool) {
	if s.Shared || s.Object.ID == "" {
		return
	}
	if n.halted() {
		// Entries after the halt may bind these shards once applied by a
		// build that reads the entry: GC decides after the halt.
		return
	}
	if committed {
		obj, ok := n.fsm.Object(s.Digest)
		if ok && obj.ID == s.Object.ID {
			return
		}
		if !ok || obj.Corrupt != "" {
			// Not applied here yet (see createdHere), or a heal of a
			// corrupt object not applied here yet: garbage collection,
			// which judges after a barrier, takes the shards if
			// unreferenced.
			return
		}
	}
	n.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 5*n.electionTimeout())
		defer cancel()
		if !committed {
			if err := n.Barrier(ctx); err != nil {
				n.log.Debug("keep shards of a failed push for GC", "object", s.Object.ID, "error", err)
				return
			}
			if obj, ok := n.fsm.Object(s.Digest); ok && obj.ID == s.Object.ID {
				return
			}
		}
		n.deleteShards(ctx, s.Object)
	})
}

// Push stores a body and binds it to a name.
func (n *Node) Push(ctx context.Context, m PushMeta, body io.Reader) (fsm.Artifact, bool, error) {
	if err := n.CheckPush(ctx, m); err != nil {
		return fsm.Artifact{}, false, err
	}
	s, err := n.StoreBody(ctx, body, m.ExpectDigest)
	if err != nil {
		return fsm.Artifact{}, false, err
	}
	a, created, err := n.Commit(ctx, m, s)
	n.Release(s, err == nil)
	return a, created, err
}

// Tag adds (add true) or removes a tag on an artifact.
func (n *Node) Tag(ctx context.Context, name, tag, actor string, add bool) (fsm.Artifact, error) {
	op := fsm.OpUntag
	if add {
		op = fsm.OpTag
	}
	res, err := n.apply(ctx, fsm.Command{Op: op, Actor: actor, Tag: &fsm.TagChange{Name: name, Tag: tag}})
	if err != nil {
		return fsm.Artifact{}, err
	}
	if err := res.Err(); err != nil {
		return fsm.Artifact{}, err
	}
	return *res.Artifact, nil
}

// Delete unbinds a name; it stays reserved for its digest.
func (n *Node) Delete(ctx context.Context, name, actor string) error {
	res, err := n.apply(ctx, fsm.Command{Op: fsm.OpDeleteArtifact, Actor: actor, Delete: &fsm.DeleteArtifact{Name: name}})
	if err != nil {
		return err
	}
	return res.Err()
}

// apply commits a command, on this node when it leads, otherwise through the
// leader's peer service. Every command is idempotent or harmlessly refused
// on a repeat, so a try that may or may not have committed before a
// leadership change is simply retried.
func (n *Node) apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	if err := n.checkHalted(); err != nil {
		return fsm.Result{}, fmt.Errorf("%s: %w", c.Op, err)
	}
	// A full node cannot follow the log to see the write applied here, so
	// it refuses rather than answer "unknown" for a committed write.
	if err := n.checkSpace(); err != nil {
		return fsm.Result{}, fmt.Errorf("%s: %w", c.Op, err)
	}
	c.Time = n.cfg.Now().UTC()
	// The rules Apply holds commands to (fsm/validate.go): a command that
	// breaks them never reaches the log.
	if err := c.Validate(); err != nil {
		return fsm.Result{}, fmt.Errorf("%s: %w", c.Op, err)
	}
	b, err := c.Encode()
	if err != nil {
		return fsm.Result{}, err
	}
	e := fsm.Entry{Command: b}
	var res fsm.Result
	propose := func() (err error) {
		if res, err = n.commits.propose(e); err != nil {
			return err
		}
		if createdHere(res) {
			return nil
		}
		// Read-your-writes on this node too when the leader committed it:
		// wait until the local state holds what was acknowledged.
		return n.waitApplied(ctx, res.Index)
	}
	// The committer reaches the leader itself, so both sides are the same
	// call; leaderCall contributes the wait for a leader and the retries.
	err = n.leaderCall(ctx, "apply "+string(c.Op), propose, func(string) error { return propose() })
	return res, err
}

// createdHere reports a write that bound a new name. A follower need not
// wait to apply it before answering: a name this node does not know yet is
// read after a barrier, so read-your-writes holds without the wait, which
// would cost a raft round (the follower learns the commit from the leader's
// next append).
func createdHere(res fsm.Result) bool { return res.Status == fsm.StatusCreated }

// leaderCall runs local when this node leads, else remote against the
// leader's peer service, and tries again through leadership changes and
// unreachable leaders for up to ten election timeouts.
func (n *Node) leaderCall(ctx context.Context, what string, local func() error, remote func(addr string) error) error {
	deadline := time.Now().Add(10 * n.electionTimeout())
	for {
		err := n.waitLeader(ctx)
		if err == nil {
			if n.IsLeader() {
				err = local()
			} else if addr, aerr := n.leaderHTTP(); aerr != nil {
				err = aerr
			} else {
				err = remote(addr)
			}
			if err == nil {
				return nil
			}
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrPeerUnreachable) {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					// The leader took the connection and never answered (a
					// paused or overloaded process): retryable, not a 500.
					return fmt.Errorf("%s: %w: the leader did not answer in time: %w", what, ErrNoLeader, err)
				}
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if time.Now().After(deadline) {
			if !errors.Is(err, ErrNoLeader) {
				err = fmt.Errorf("%w: %w", ErrNoLeader, err)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		n.log.Debug("retry on the leader", "call", what, "error", err)
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w: %w", what, ErrNoLeader, ctx.Err())
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ApplyForwarded applies a batch of writes a follower's committer
// forwarded, and returns their results in order. The committer checks
// every command before it goes to raft, as it does this node's own.
func (n *Node) ApplyForwarded(ctx context.Context, b []byte) ([]fsm.Result, error) {
	entries, err := fsm.DecodeBatch(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fsm.ErrInvalid, err)
	}
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	return n.commits.proposeAll(entries, true)
}

// waitLeader waits a bounded time for a leader, so a client sees a clean
// retryable error rather than a hang while an election runs.
func (n *Node) waitLeader(ctx context.Context) error {
	if addr, _ := n.raft.LeaderWithID(); addr != "" {
		return nil
	}
	wait := 5 * n.electionTimeout()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := poll(ctx, 10*time.Millisecond, func() bool {
		addr, _ := n.raft.LeaderWithID()
		return addr != ""
	})
	if err != nil {
		return fmt.Errorf("%w after %s", ErrNoLeader, wait)
	}
	return nil
}

func (n *Node) electionTimeout() time.Duration {
	if n.cfg.Raft != nil && n.cfg.Raft.ElectionTimeout > 0 {
		return n.cfg.Raft.ElectionTimeout
	}
	return raft.DefaultConfig().ElectionTimeout
}

// leaderHTTP returns the peer service address of the current leader.
func (n *Node) leaderHTTP() (string, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	m, ok := n.members.get(string(id))
	if !ok || m.Meta.HTTP == "" {
		return "", fmt.Errorf("%w: leader %s not known to gossip", ErrNoLeader, id)
	}
	return m.Meta.HTTP, nil
}

// waitApplied waits until the local state machine has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	if n.fsm.Applied() >= index {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*n.electionTimeout())
	defer cancel()
	var full error
	recheck := time.NewTicker(diskRecheck)
	defer recheck.Stop()
	var err error
	for {
		advanced := n.fsm.Advanced()
		if n.fsm.Applied() >= index {
			break
		}
		// A node that cannot append to its raft log will not catch up.
		if full = n.checkSpace(); full != nil {
			break
		}
		select {
		case <-advanced:
		case <-recheck.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	switch {
	case full != nil && n.fsm.Applied() < index:
		return fmt.Errorf("%w: local state is behind index %d: %v", ErrUnavailable, index, full)
	case err != nil:
		return fmt.Errorf("%w: local state did not reach index %d in time", ErrNoLeader, index)
	}
	return nil
}
