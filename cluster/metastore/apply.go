package metastore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/cluster/caller"
	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/fsm"
)

// Apply commits a command, on this node when it leads, otherwise through
// the leader's peer service, and waits until this node's state holds it
// (read-your-writes on the node that answered). Every command is
// idempotent or harmlessly refused on a repeat, so a try that may or may
// not have committed before a leadership change is simply retried.
func (s *Store) Apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	if err := s.CheckHalted(); err != nil {
		return fsm.Result{}, fmt.Errorf("%s: %w", c.Op, err)
	}
	// A full node cannot follow the log to see the write applied here, so
	// it refuses rather than answer "unknown" for a committed write.
	if err := s.checkSpace(); err != nil {
		return fsm.Result{}, fmt.Errorf("%s: %w", c.Op, err)
	}
	c.Time = s.cfg.Now().UTC()
	if c.Source == "" {
		c.Source = caller.Addr(ctx)
	}
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
	// The commit gate (Config.CommitGate) waits for this write until it
	// is queued.
	slot := batch.SlotFrom(ctx)
	var res fsm.Result
	propose := func() (err error) {
		if res, err = s.propose(e, slot.Leave); err != nil {
			return err
		}
		if createdHere(c.Op, res) {
			return nil
		}
		// Read-your-writes on this node too when the leader committed it:
		// wait until the local state holds what was acknowledged.
		return s.WaitApplied(ctx, res.Index)
	}
	// The committer reaches the leader itself, so both sides are the same
	// call; LeaderCall contributes the wait for a leader and the retries.
	err = s.LeaderCall(ctx, "apply "+string(c.Op), propose, func(string) error { return propose() })
	return res, err
}

// createdHere reports a push that bound a new name. A follower need not
// wait to apply it before answering: a name this node does not know yet is
// read after a barrier, so read-your-writes holds without the wait, which
// would cost a raft round (the follower learns the commit from the leader's
// next append). Other things created (a token) are read without a barrier
// and get the wait.
func createdHere(op fsm.Op, res fsm.Result) bool {
	return op == fsm.OpPutArtifact && res.Status == fsm.StatusCreated
}

// ApplyForwarded applies a batch of writes a follower's committer
// forwarded, and returns their results in order. The committer checks
// every command before it goes to raft, as it does this node's own.
func (s *Store) ApplyForwarded(ctx context.Context, b []byte) ([]fsm.Result, error) {
	entries, err := fsm.DecodeBatch(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fsm.ErrInvalid, err)
	}
	if !s.IsLeader() {
		return nil, ErrNotLeader
	}
	return s.proposeAll(entries, true, nil)
}

// LeaderCall runs local when this node leads, else remote against the
// leader's peer service, and tries again through leadership changes and
// unreachable leaders for up to ten election timeouts.
func (s *Store) LeaderCall(ctx context.Context, what string, local func() error, remote func(addr string) error) error {
	deadline := time.Now().Add(10 * s.ElectionTimeout())
	for {
		err := s.WaitLeader(ctx)
		if err == nil {
			if s.IsLeader() {
				err = local()
			} else if addr, aerr := s.leaderAddr(); aerr != nil {
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
		s.log.Debug("retry on the leader", "call", what, "error", err)
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

// WaitLeader waits a bounded time for a leader, so a client sees a clean
// retryable error rather than a hang while an election runs.
func (s *Store) WaitLeader(ctx context.Context) error {
	if addr, _ := s.raft.LeaderWithID(); addr != "" {
		return nil
	}
	wait := 5 * s.ElectionTimeout()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w after %s", ErrNoLeader, wait)
		case <-t.C:
		}
	}
}

// diskRecheck is how often a wait for the log looks at the disk again.
const diskRecheck = 100 * time.Millisecond

// WaitApplied waits until the local state machine has applied index.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	if s.fsm.Applied() >= index {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*s.ElectionTimeout())
	defer cancel()
	var full error
	recheck := time.NewTicker(diskRecheck)
	defer recheck.Stop()
	var err error
	for {
		advanced := s.fsm.Advanced()
		if s.fsm.Applied() >= index {
			break
		}
		// A node that cannot append to its raft log will not catch up.
		if full = s.checkSpace(); full != nil {
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
	case full != nil && s.fsm.Applied() < index:
		return fmt.Errorf("%w: local state is behind index %d: %v", ErrUnavailable, index, full)
	case err != nil:
		return fmt.Errorf("%w: local state did not reach index %d in time", ErrNoLeader, index)
	}
	return nil
}

func (s *Store) checkSpace() error {
	if s.cfg.Disk == nil {
		return nil
	}
	return s.cfg.Disk.Check()
}

// IsNoSpace recognizes a full disk in errors from libraries that do not
// wrap the errno (errs.IsNoSpace).
func IsNoSpace(err error) bool { return errs.IsNoSpace(err) }
