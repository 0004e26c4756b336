// Package cluster is a node's brain: it wires gossip membership, the raft
// metadata log and the local object store, and coordinates writes and reads.
// It knows no HTTP; the network reaches it through the interfaces in
// config.go, injected by cmd.
package cluster

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
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/fsm"
)

// Sentinel errors. Callers classify with errors.Is.
var (
	// ErrNoLeader marks a write or consistent read that found no leader in
	// time; it is worth retrying.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotLeader is returned to a forwarded write that reached a node
	// which is no longer the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrPeerUnreachable marks a call to another node that got no answer.
	ErrPeerUnreachable = errors.New("peer unreachable")
	// ErrUnavailable marks content that no reachable node could serve.
	ErrUnavailable = errors.New("content unavailable")
	// ErrShutdown marks a call on a node that is stopping.
	ErrShutdown = errors.New("node is shutting down")
	// ErrDigestMismatch marks a body whose SHA-256 differs from the one the
	// client promised.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrTooLarge marks a body longer than --max-object-size.
	ErrTooLarge = errors.New("content too large")
	// ErrTruncated marks a body that ended before the length it announced.
	ErrTruncated = errors.New("body ended before its announced length")
	// ErrHalted marks a write refused because the state machine halted at
	// a log entry this build cannot read (halt.go). Errors that wrap it
	// also wrap ErrUnavailable.
	ErrHalted = errors.New("metadata log halted")
)

// Node is one member of a cluster.
type Node struct {
	cfg    Config
	log    hclog.Logger
	fsm    *fsm.FSM
	shards *chunk.ShardStore
	stats  stats
	raft   *raft.Raft
	boltDB *raftboltdb.BoltStore
	gossip *memberlist.Memberlist

	members *memberTable
	// repairMemo is touched only by the repair loop's goroutine.
	repairMemo repairMemo
	// packSenders batch copies of small objects per node (packed.go).
	packMu      sync.Mutex
	packSenders map[string]*packSender
	// unreachable remembers when a node last refused a call, reachedAt
	// when one last succeeded (node id -> time.Time).
	unreachable sync.Map
	reachedAt   sync.Map
	// reported holds shards this node already reported missing.
	reported sync.Map

	// barriers shares read-index round trips among concurrent readers.
	barriers *batch.Batcher[struct{}, uint64]
	// booted is true once this node's raft has a configuration, either from
	// disk or from bootstrapping; gossip tells the others.
	bootMu sync.Mutex
	booted bool

	// bootEvents and reconcileEvents wake the bootstrap and leader loops
	// when gossip changes.
	bootEvents      chan struct{}
	reconcileEvents chan struct{}
	leaderNotify    chan bool

	// disk watches free space; diskFull is its last state as told to
	// gossip, handedOver when a full leader last gave leadership away.
	commits    *committer
	cache      *objectCache
	disk       *diskGuard
	diskFull   atomic.Bool
	handedOver atomic.Int64

	// raftUp is closed once n.raft is set: raft restores a snapshot, and
	// so calls the FSM, before NewRaft returns.
	raftUp chan struct{}

	started time.Time
	leaving atomic.Bool
	left    chan struct{}
	stop    chan struct{}
	// ctx ends when the node stops; background work runs under it.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	// Cleanup started by requests (background), which Shutdown waits for
	// before closing the stores; after stopping is set none starts.
	bgMu      sync.Mutex
	bg        sync.WaitGroup
	stopping  bool
	bgRunning atomic.Int64 // for /metrics: a benchmark waits for zero
}

// New opens the node's data dir, starts raft and gossip, and joins the
// cluster in the background.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:             cfg,
		log:             cfg.Logger,
		fsm:             fsm.New(),
		packSenders:     map[string]*packSender{},
		members:         newMemberTable(),
		bootEvents:      make(chan struct{}, 1),
		reconcileEvents: make(chan struct{}, 1),
		leaderNotify:    make(chan bool, 8),
		stop:            make(chan struct{}),
		started:         time.Now(),
		left:            make(chan struct{}),
		raftUp:          make(chan struct{}),
	}
	n.cache = newObjectCache(cfg.CacheSize)
	n.commits = newCommitter(n)
	n.barriers = batch.New(n.readIndexRound, nil)
	n.disk = &diskGuard{dir: cfg.DataDir, minFree: cfg.MinFree, free: cfg.FreeSpace}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Shutdown()
		}
	}()
	var err error
	if n.shards, err = chunk.OpenShardStore(filepath.Join(cfg.DataDir, "data"), chunk.StoreOptions{PackSize: cfg.PackSize}); err != nil {
		return nil, err
	}
	n.fsm.SetBlobSink(blobSink{n})
	n.fsm.OnHalt(n.onHalt)
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	n.diskFull.Store(n.DiskFull())
	if err := n.startGossip(); err != nil {
		return nil, err
	}
	n.wg.Add(7)
	go n.joinLoop()
	go n.bootstrapLoop()
	go n.leaderLoop()
	go n.runEvery(cfg.RepairInterval, func(ctx context.Context) {
		if n.IsLeader() && !n.halted() {
			n.repairPass(ctx)
		}
	})
	go n.runEvery(cfg.ScrubInterval, n.scrub)
	go n.runEvery(cfg.GCInterval, n.gc)
	go n.runEvery(diskRecheck, func(context.Context) { n.watchDisk() })
	ok = true
	return n, nil
}

func (n *Node) startRaft() error {
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	var rc raft.Config
	if n.cfg.Raft != nil {
		rc = *n.cfg.Raft
	} else {
		rc = *raft.DefaultConfig()
		// Raft keeps TrailingLogs entries after each snapshot for
		// followers that fall behind. An entry is a batch of up to 1024
		// writes (committer), so fewer entries than raft's default 10240
		// cover as many writes; a follower further behind gets a snapshot.
		rc.TrailingLogs = 1024
	}
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = n.log.Named("raft")
	rc.NotifyCh = n.leaderNotify

	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft log store: %w", err)
	}
	n.boltDB = bolt
	// Recent entries are kept in memory for replication and apply; they
	// are batches, so a few dozen cover thousands of writes.
	logs, err := raft.NewLogCache(64, bolt)
	if err != nil {
		return fmt.Errorf("create raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, n.log.Named("snapshots"))
	if err != nil {
		return fmt.Errorf("open raft snapshot store: %w", err)
	}
	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	n.booted = has
	r, err := raft.NewRaft(&rc, n.fsm, logs, bolt, snaps, n.cfg.RaftTransport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	close(n.raftUp)
	return nil
}

// Shutdown stops the node without leaving the cluster: to the others it
// looks like a failure, and a restart with the same data dir rejoins.
func (n *Node) Shutdown() {
	n.stopOnce.Do(func() {
		n.bgMu.Lock()
		n.stopping = true
		n.bgMu.Unlock()
		n.cancel()
		close(n.stop)
		n.commits.close()
		n.barriers.Close()
		n.wg.Wait()
		n.bg.Wait()
		n.stopPackSenders()
		if n.gossip != nil {
			_ = n.gossip.Shutdown()
		}
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				n.log.Warn("raft shutdown", "error", err)
			}
		}
		// Raft's shutdown ends the applies and barriers in flight.
		n.commits.wait()
		n.barriers.Wait()
		if c, ok := n.cfg.RaftTransport.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		if n.boltDB != nil {
			_ = n.boltDB.Close()
		}
		if n.shards != nil {
			if err := n.shards.Close(); err != nil {
				n.log.Warn("close shard store", "error", err)
			}
		}
	})
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// FSM exposes the metadata state for reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// Shards exposes the local shard store, for tests and tools.
func (n *Node) Shards() *chunk.ShardStore { return n.shards }

// IsLeader reports whether this node leads its cluster.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Ready reports whether the node is part of a raft cluster with a leader.
func (n *Node) Ready() bool {
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.ID) {
			return true
		}
	}
	return false
}

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	return poll(ctx, 20*time.Millisecond, func() bool { return n.Ready() })
}

// runEvery calls fn every interval until the node stops, with a context
// that ends when it stops.
func (n *Node) runEvery(interval time.Duration, fn func(ctx context.Context)) {
	defer n.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		fn(n.ctx)
	}
}

// poll calls cond every interval until it is true or ctx ends.
func poll(ctx context.Context, every time.Duration, cond func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// signal wakes the background loops without blocking the caller; gossip
// callbacks use it, and they must never block.
func (n *Node) signal() {
	for _, ch := range []chan struct{}{n.bootEvents, n.reconcileEvents} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
