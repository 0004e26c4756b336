// Package metastore is a node's metadata store: the raft log (raft-boltdb),
// the state machine, the committer that gathers writes into log entries,
// and read barriers. It answers Apply, Barrier and who leads; it knows no
// shards and no HTTP: the leader's peer service is reached through the
// LeaderClient the node gives it (rqlite's Store is the model).
package metastore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// LeaderClient reaches the leader's peer service: a follower forwards its
// writes and asks for read indexes through it.
type LeaderClient interface {
	// Apply asks the leader at addr to apply a batch of commands
	// (fsm.EncodeBatch) and returns their results in order.
	Apply(ctx context.Context, addr string, batch []byte) ([]fsm.Result, error)
	// ReadIndex asks the leader at addr for an index that covers every
	// write it acknowledged.
	ReadIndex(ctx context.Context, addr string) (uint64, error)
}

// Disk is the node's free-space guard, as the store needs it: a node whose
// disk is below its reserve cannot append to its log.
type Disk interface {
	// Check returns an error wrapping chunk.ErrNoSpace when the disk is
	// below the reserve.
	Check() error
	// SawNoSpace tells the guard a write just failed for want of space.
	SawNoSpace()
}

// Config builds a Store.
type Config struct {
	// ID is the node's raft server ID.
	ID string
	// Dir holds raft.db and the snapshots.
	Dir string
	// Raft, when set, replaces the library's defaults; identity, logger
	// and notify channel are filled in.
	Raft *raft.Config
	// Transport carries raft traffic.
	Transport raft.Transport
	// FSM is the state machine; the node sets its blob sink and halt
	// callback before Open, since raft restores a snapshot into it there.
	FSM *fsm.FSM
	// NotifyCh receives leadership changes (raft.Config.NotifyCh).
	NotifyCh chan bool
	// Leader reaches the leader's peer service; Resolve turns the leader's
	// server ID into the address Leader takes.
	Leader  LeaderClient
	Resolve func(id string) (string, error)
	// Disk guards appends; nil checks nothing.
	Disk Disk
	// ApplyTimeout bounds one raft apply.
	ApplyTimeout time.Duration
	// CommitGate, when set, holds each batch of this node's committer
	// until the writes in the gate when the batch is due have been queued
	// (batch.Gate), for at most CommitHold (default DefaultCommitHold).
	// Apply leaves the slot its context carries (batch.WithSlot) once the
	// command is queued.
	CommitGate *batch.Gate
	CommitHold time.Duration
	// Now stamps commands.
	Now    func() time.Time
	Logger hclog.Logger
}

// Store is one node's replica of the cluster's metadata.
type Store struct {
	cfg    Config
	log    hclog.Logger
	fsm    *fsm.FSM
	raft   *raft.Raft
	bolt   *raftboltdb.BoltStore
	booted bool

	commits  *batch.Batcher[proposal, fsm.Result]
	barriers *batch.Batcher[struct{}, uint64]
	// handedOver is when a full leader last gave leadership away; wg
	// holds the hand-overs in flight.
	handedOver atomic.Int64
	wg         sync.WaitGroup

	// ctx ends when the store closes: forwards and barriers run under it.
	ctx    context.Context
	cancel context.CancelFunc
}

// Open opens the log in cfg.Dir and starts raft. Raft restores the latest
// snapshot into the FSM before Open returns.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Logger, fsm: cfg.FSM}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.commits = batch.New(s.commit, takeEntries)
	if g := cfg.CommitGate; g != nil {
		hold := cfg.CommitHold
		if hold <= 0 {
			hold = DefaultCommitHold
		}
		s.commits.SetHold(func() { g.Drain(hold) })
	}
	s.barriers = batch.New(s.readIndexRound, nil)
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) start() error {
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	var rc raft.Config
	if s.cfg.Raft != nil {
		rc = *s.cfg.Raft
	} else {
		rc = *raft.DefaultConfig()
		// Raft keeps TrailingLogs entries after each snapshot for
		// followers that fall behind. An entry is a batch of up to 1024
		// writes (committer), so fewer entries than raft's default 10240
		// cover as many writes; a follower further behind gets a snapshot.
		rc.TrailingLogs = 1024
	}
	rc.LocalID = raft.ServerID(s.cfg.ID)
	rc.Logger = newQuietLog(s.log.Named("raft"), s.cfg.Now)
	rc.NotifyCh = s.cfg.NotifyCh

	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(s.cfg.Dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	s.bolt = bolt
	// Recent entries are kept in memory for replication and apply; they
	// are batches, so a few dozen cover thousands of writes.
	logs, err := raft.NewLogCache(64, bolt)
	if err != nil {
		return fmt.Errorf("create raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.cfg.Dir, 2, s.log.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("open raft snapshot store: %w", err)
	}
	if s.booted, err = raft.HasExistingState(logs, bolt, snaps); err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	r, err := raft.NewRaft(&rc, s.fsm, logs, bolt, snaps, s.cfg.Transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return nil
}

// Stop refuses new writes and barriers and fails the queued ones; raft
// runs on until Close. A node stops its store first, so that its own work
// waiting on writes ends, and closes it once that work is done.
func (s *Store) Stop() {
	s.cancel()
	s.commits.Close()
	s.barriers.Close()
}

// Close stops the store, stops raft (which ends the applies and barriers
// in flight), waits for them, and closes the log.
func (s *Store) Close() {
	s.Stop()
	s.wg.Wait()
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			s.log.Warn("raft shutdown", "error", err)
		}
	}
	s.commits.Wait()
	s.barriers.Wait()
	if c, ok := s.cfg.Transport.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	if s.bolt != nil {
		_ = s.bolt.Close()
	}
}

// Raft is the raft instance, for the node's membership changes
// (bootstrap, the leader's reconcile loop, leave and remove).
func (s *Store) Raft() *raft.Raft { return s.raft }

// FSM is the state machine, for reads.
func (s *Store) FSM() *fsm.FSM { return s.fsm }

// Booted reports whether the data dir held raft state when the store
// opened.
func (s *Store) Booted() bool { return s.booted }

// IsLeader reports whether this node leads its cluster.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the leader's raft address and server ID, empty when none
// is known.
func (s *Store) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// ElectionTimeout is raft's, which the store's waits are derived from.
func (s *Store) ElectionTimeout() time.Duration {
	if s.cfg.Raft != nil && s.cfg.Raft.ElectionTimeout > 0 {
		return s.cfg.Raft.ElectionTimeout
	}
	return raft.DefaultConfig().ElectionTimeout
}

// leaderSpace gates every raft append this node makes as leader: below the
// reserve it hands leadership over and returns ErrNotLeader, so the caller
// retries on the next leader; raft would fail the append and step down
// anyway.
func (s *Store) leaderSpace() error {
	if s.cfg.Disk == nil {
		return nil
	}
	if err := s.cfg.Disk.Check(); err != nil {
		s.HandOver()
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	return nil
}

// logFull handles a raft append that failed for want of space: raft steps
// down after it, before replicating, so the caller retries on the next
// leader.
func (s *Store) logFull(err error) error {
	if s.cfg.Disk != nil {
		s.cfg.Disk.SawNoSpace()
	}
	s.HandOver()
	return fmt.Errorf("%w: %w", ErrNotLeader, err)
}

// HandOver transfers leadership away from this node, at most once per
// election timeout, without waiting for the transfer.
func (s *Store) HandOver() {
	if s.ctx.Err() != nil {
		return
	}
	now := time.Now()
	last := s.handedOver.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < s.ElectionTimeout() {
		return
	}
	s.handedOver.Store(now.UnixNano())
	s.wg.Go(func() {
		// Bounded: raft gives a transfer one election timeout.
		if err := s.raft.LeadershipTransfer().Error(); err != nil && !errors.Is(err, raft.ErrNotLeader) {
			s.log.Warn("hand over leadership from a full disk", "error", err)
		}
	})
}
