package metastore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// Group commit. hashicorp/raft gathers whatever applies are queued when its
// leader loop wakes, but under a steady stream of small pushes that is one or
// two at a time, so every push paid for its own log append, fsync and
// replication round on each server. Every node's writes go through its
// committer, which sends them on in batches, one batch in flight: while one
// commits, the next fills up, so the batch size follows the load. (Two or
// four batches in flight made smaller batches and cost more CPU per write:
// 10 KiB PUTs at 16 connections on the 2-core VM, 0.54 ms of server CPU per
// push with one, 0.67 with two, 0.70 with four.) On the leader a batch
// becomes one raft entry; a follower forwards it to the leader in one
// request, whose committer merges it with the writes queued there.

// DefaultCommitHold bounds how long a batch waits for the writes in the
// commit gate (Config.CommitGate): about one pack round of a small push
// (its copies written and fdatasync'ed on their nodes) on the 2-core VM
// under load, so a push stalled on a slow peer delays the others' commit
// by at most that. (A first try that waited for every push storing, not
// only those in the gate when the batch was due, mostly ran to its bound:
// 1 ms cut fdatasyncs per push less than 2 ms, 4 ms most but added the
// whole bound to every round.)
const DefaultCommitHold = 2 * time.Millisecond

// maxBatchBytes bounds one entry, blobs included; a single larger command
// still goes alone.
const maxBatchBytes = 4 << 20

// proposal is one write waiting for its batch to commit.
type proposal struct {
	entry fsm.Entry
	// forwarded marks a follower's write, which its sender waits to see
	// applied on the follower.
	forwarded bool
}

// takeEntries bounds a batch by fsm.MaxBatch commands and maxBatchBytes.
func takeEntries(q []proposal) int {
	size, n := 0, 0
	for n < len(q) && n < fsm.MaxBatch {
		size += len(q[n].entry.Command) + len(q[n].entry.Blob)
		if n > 0 && size > maxBatchBytes {
			break
		}
		n++
	}
	return n
}

// propose commits one entry and returns its result; queued, when not nil,
// runs once the entry is queued.
func (s *Store) propose(e fsm.Entry, queued func()) (fsm.Result, error) {
	res, err := s.proposeAll([]fsm.Entry{e}, false, queued)
	if err != nil {
		return fsm.Result{}, err
	}
	return res[0], nil
}

// proposeAll commits entries, in order, and returns their results. It fails
// if any fails: every command is idempotent or harmlessly refused when
// repeated, so the caller retries them all.
//
// Every command is checked against the rules Apply holds commands to
// before it reaches the log: this node's own by Apply (fsm.Command.Validate,
// before encoding it), a forwarded batch's here (fsm.CheckEntry). One that
// breaks them is refused with fsm.ErrInvalid. A forwarded batch with one
// bad command is refused whole: a follower checks its own writes before
// forwarding them, so only a broken or hostile peer sends one.
func (s *Store) proposeAll(entries []fsm.Entry, forwarded bool, queued func()) ([]fsm.Result, error) {
	// A write committed after the entry the state machine halted at would
	// never be applied.
	if err := s.CheckHalted(); err != nil {
		return nil, err
	}
	if forwarded {
		for i, e := range entries {
			if _, err := fsm.CheckEntry(e); err != nil {
				return nil, fmt.Errorf("command %d of %d: %w", i+1, len(entries), err)
			}
		}
	}
	ps := make([]proposal, len(entries))
	for i, e := range entries {
		ps[i] = proposal{entry: e, forwarded: forwarded}
	}
	// Once queued a proposal may commit: waiting for its answer until the
	// store closes, not abandoning it, is what lets the caller report the
	// truth.
	pending := s.commits.Submit(ps...)
	if queued != nil {
		queued()
	}
	res, err := pending.Wait(s.ctx)
	if errors.Is(err, batch.ErrClosed) || (err != nil && s.ctx.Err() != nil) {
		return nil, ErrShutdown
	}
	return res, err
}

// commit proposes a batch as one raft entry, or forwards it to the leader.
func (s *Store) commit(batch []proposal) ([]fsm.Result, error) {
	results, err := s.append(batch)
	if err == nil && s.IsLeader() && slices.ContainsFunc(batch, func(p proposal) bool { return p.forwarded }) &&
		slices.ContainsFunc(results, func(r fsm.Result) bool { return r.Status != fsm.StatusCreated }) {
		s.nudge()
	}
	return results, err
}

func (s *Store) append(batch []proposal) ([]fsm.Result, error) {
	entries := make([]fsm.Entry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	if !s.IsLeader() {
		return s.forward(entries)
	}
	if err := s.leaderSpace(); err != nil {
		return nil, err
	}
	var data []byte
	if len(batch) == 1 && batch[0].entry.Blob == nil {
		data = batch[0].entry.Command
	} else {
		data = fsm.EncodeBatch(entries)
	}
	f := s.raft.ApplyLog(raft.Log{Data: data}, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case IsNoSpace(err):
			return nil, s.logFull(fmt.Errorf("%w: %w", chunk.ErrNoSpace, err))
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, ErrShutdown
		}
		return nil, err
	}
	switch r := f.Response().(type) {
	case *fsm.Halt:
		// Committed, but at or after the entry the state machine halted
		// at: never applied by this build.
		return nil, haltedError{r}
	case fsm.Result:
		return []fsm.Result{r}, nil
	case fsm.BatchResult:
		if len(r) != len(batch) {
			return nil, fmt.Errorf("batch of %d commands got %d results", len(batch), len(r))
		}
		return r, nil
	default:
		return nil, fmt.Errorf("unexpected fsm response %T", f.Response())
	}
}

// nudge makes the followers learn soon that the last batch committed. A
// follower learns it from the leader's next append, which without more
// writes comes only after raft's CommitTimeout (50 to 100 ms); a follower
// that forwarded a write other than a new name waits for it to apply there,
// so a lone write through a follower took 79 ms (median, a 10 KiB push,
// before pushes stopped waiting) against 4.5 ms on the leader. When no
// write is queued, the leader appends a barrier at once instead, which
// carries the commit index. Under load the next batch does that anyway.
// (Lowering CommitTimeout to 5 ms did it too, but an idle 3-node cluster
// then burnt 17% of a core instead of 4%.)
func (s *Store) nudge() {
	if s.commits.Queued() == 0 {
		s.raft.Barrier(s.cfg.ApplyTimeout)
	}
}

// forward sends a batch to the leader's committer.
func (s *Store) forward(entries []fsm.Entry) ([]fsm.Result, error) {
	addr, err := s.leaderAddr()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	res, err := s.cfg.Leader.Apply(ctx, addr, fsm.EncodeBatch(entries))
	if err != nil {
		return nil, err
	}
	if len(res) != len(entries) {
		return nil, fmt.Errorf("leader answered %d results for %d commands", len(res), len(entries))
	}
	return res, nil
}

// leaderAddr returns the address of the current leader's peer service.
func (s *Store) leaderAddr() (string, error) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	return s.cfg.Resolve(string(id))
}
