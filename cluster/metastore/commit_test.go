package metastore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// withGate gives every store a commit gate of its own, with a hold no test
// reaches: the gates below drain on their own.
func withGate(c *Config) {
	c.CommitGate = batch.NewGate()
	c.CommitHold = time.Hour
}

// countingLeader forwards like direct and counts the forwarded batches;
// with fail set, that is every batch's answer instead, as from a leader
// whose shared append failed.
type countingLeader struct {
	direct
	batches atomic.Int32
	fail    error
}

func (c *countingLeader) Apply(ctx context.Context, addr string, b []byte) ([]fsm.Result, error) {
	c.batches.Add(1)
	if c.fail != nil {
		return nil, c.fail
	}
	return c.direct.Apply(ctx, addr, b)
}

// applyGated applies n puts on s at once, each pushed into s's commit gate
// before any is applied (as small pushes storing their copies are), and
// returns their results and errors.
func applyGated(t *testing.T, s *Store, prefix string, n int) ([]fsm.Result, []error) {
	t.Helper()
	ctxs := make([]context.Context, n)
	slots := make([]*batch.Slot, n)
	for i := range n {
		ctxs[i], slots[i] = batch.WithSlot(context.Background())
		slots[i].Enter(s.cfg.CommitGate)
	}
	res, errs := make([]fsm.Result, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer slots[i].Leave()
			res[i], errs[i] = s.Apply(ctxs[i], put(fmt.Sprintf("%s-%d.txt", prefix, i), "0123456789abcdef"[i%16]))
		})
	}
	wg.Wait()
	return res, errs
}

// term is s's current raft term: a test that counts entries or requests
// tries again when an election came in between (its writes were retried).
func term(s *Store) string { return s.Raft().Stats()["term"] }

// attempts bounds the tries of a counting test that elections interrupted.
const attempts = 3

func TestGatedWritesOnTheLeaderShareOneEntry(t *testing.T) {
	const n = 8
	g := newGroup(t, 3, withGate)
	for try := range attempts {
		s := g.stores[g.leader(t)]
		before, tm := s.Raft().LastIndex(), term(s)
		res, errs := applyGated(t, s, fmt.Sprintf("leader%d", try), n)
		for i := range n {
			if errs[i] != nil || (res[i].Status != fsm.StatusCreated && res[i].Status != fsm.StatusExists) {
				t.Fatalf("write %d: %+v %v", i, res[i], errs[i])
			}
		}
		if term(s) != tm || !s.IsLeader() {
			continue
		}
		// One command entry, so one append and one fsync of the log per
		// server, for the n writes. (Raft appends entries of its own, such
		// as a new term's no-op.)
		if c := commandEntries(t, s, before); c != 1 {
			t.Fatalf("%d writes took %d log entries, want 1", n, c)
		}
		return
	}
	t.Fatalf("an election interrupted each of %d tries", attempts)
}

// commandEntries counts the command entries in s's log after index from.
func commandEntries(t *testing.T, s *Store, from uint64) int {
	t.Helper()
	n := 0
	for i := from + 1; i <= s.Raft().LastIndex(); i++ {
		var l raft.Log
		if err := s.bolt.GetLog(i, &l); err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if l.Type == raft.LogCommand {
			n++
		}
	}
	return n
}

func TestGatedWritesThroughAFollowerShareOneForward(t *testing.T) {
	const n = 8
	g := newGroup(t, 3, withGate)
	for try := range attempts {
		l := g.leader(t)
		f := g.stores[g.follower(t)]
		tm := term(g.stores[l])
		cl := &countingLeader{direct: direct{g}}
		f.cfg.Leader = cl
		res, errs := applyGated(t, f, fmt.Sprintf("follower%d", try), n)
		for i := range n {
			if errs[i] != nil || (res[i].Status != fsm.StatusCreated && res[i].Status != fsm.StatusExists) {
				t.Fatalf("write %d: %+v %v", i, res[i], errs[i])
			}
		}
		if term(g.stores[l]) != tm || !g.stores[l].IsLeader() {
			continue
		}
		if b := cl.batches.Load(); b != 1 {
			t.Fatalf("%d writes went to the leader in %d requests, want 1", n, b)
		}
		return
	}
	t.Fatalf("an election interrupted each of %d tries", attempts)
}

func TestAFailedSharedCommitFailsEveryWrite(t *testing.T) {
	const n = 8
	g := newGroup(t, 3, withGate)
	errAppend := errors.New("append to raft.db: fdatasync: input/output error")
	for try := range attempts {
		l := g.stores[g.leader(t)]
		f := g.stores[g.follower(t)]
		tm := term(l)
		cl := &countingLeader{direct: direct{g}, fail: errAppend}
		f.cfg.Leader = cl
		prefix := fmt.Sprintf("failed%d", try)
		res, errs := applyGated(t, f, prefix, n)
		if term(l) != tm || !l.IsLeader() {
			continue
		}
		for i := range n {
			if !errors.Is(errs[i], errAppend) {
				t.Errorf("write %d: %+v %v, want the shared commit's error", i, res[i], errs[i])
			}
		}
		// One request carried them all (a failure is not retried), and
		// none of them is acknowledged or reached the state.
		if b := cl.batches.Load(); b != 1 {
			t.Fatalf("%d writes went to the leader in %d requests, want 1", n, b)
		}
		for i := range n {
			if _, ok := l.fsm.Get(fmt.Sprintf("%s-%d.txt", prefix, i)); ok {
				t.Errorf("%s-%d.txt bound though its commit failed", prefix, i)
			}
		}
		return
	}
	t.Fatalf("an election interrupted each of %d tries", attempts)
}
