// Package cluster is a node's brain: it wires gossip membership, the raft
// metadata log and the local object store, and coordinates writes and reads.
// It knows no HTTP; the network reaches it through the interfaces in
// config.go, injected by cmd.
package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/cluster/maintenance"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/cluster/metastore"
	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/fsm"
)

// Sentinel errors (package errs, shared by cluster's parts). Callers
// classify with errors.Is.
var (
	// ErrNoLeader marks a write or consistent read that found no leader in
	// time; it is worth retrying.
	ErrNoLeader = errs.ErrNoLeader
	// ErrNotLeader is returned to a forwarded write that reached a node
	// which is no longer the leader.
	ErrNotLeader = errs.ErrNotLeader
	// ErrPeerUnreachable marks a call to another node that got no answer.
	ErrPeerUnreachable = errs.ErrPeerUnreachable
	// ErrUnavailable marks content that no reachable node could serve.
	ErrUnavailable = errs.ErrUnavailable
	// ErrShutdown marks a call on a node that is stopping.
	ErrShutdown = errs.ErrShutdown
	// ErrHalted marks a write refused because the state machine halted at
	// a log entry this build cannot read (halt.go). Errors that wrap it
	// also wrap ErrUnavailable.
	ErrHalted = errs.ErrHalted
	// ErrDigestMismatch marks a body whose SHA-256 differs from the one the
	// client promised.
	ErrDigestMismatch = errs.ErrDigestMismatch
	// ErrTooLarge marks a body longer than --max-object-size.
	ErrTooLarge = errs.ErrTooLarge
	// ErrTruncated marks a body that ended before the length it announced.
	ErrTruncated = errs.ErrTruncated
	// ErrNoSpace marks a write refused because a disk is below its reserve
	// or full: a 507, worth retrying on another node.
	ErrNoSpace = errs.ErrNoSpace
	// ErrShardNotFound marks a shard a node does not hold.
	ErrShardNotFound = errs.ErrShardNotFound
)

// Node is one member of a cluster.
type Node struct {
	cfg    Config
	log    hclog.Logger
	fsm    *fsm.FSM
	shards *chunk.ShardStore
	stats  stats
	// store holds raft, its log and the committer; raft is store.Raft(),
	// kept at hand for membership changes.
	store *metastore.Store
	raft  *raft.Raft
	// commitGate holds small pushes storing their copies, so that the
	// committer's next batch waits for them (batch.Gate).
	commitGate *batch.Gate
	pool       *membership.Pool

	// maint runs repair, rebalance, the scrubber and GC (maintain.go).
	maint *maintenance.Maintainer
	// denials queues refused requests for the audit log (audit.go).
	denials denials
	// adminSecret is the admin token's secret while the leader loop tries
	// to issue it (tokens.go); touched only by that loop.
	adminSecret string
	// objects stores and reads content (shards, packed copies, the cache).
	objects *objects.Store
	// fed is the WAN pool and replicator, nil with federation off
	// (federation.go).
	fed *federation.Federation

	// booted is true once this node's raft has a configuration, either from
	// disk or from bootstrapping; gossip tells the others.
	bootMu sync.Mutex
	booted bool

	// bootEvents and reconcileEvents wake the bootstrap and leader loops
	// when members change.
	bootEvents      <-chan struct{}
	reconcileEvents <-chan struct{}
	leaderNotify    chan bool

	// disk watches free space; diskFull is its last state as told to
	// gossip.
	disk     *diskGuard
	diskFull atomic.Bool

	// wired is closed once New has set up every part: raft restores a
	// snapshot, and so calls the FSM (and its blob sink), before the store
	// and the gossip pool exist, so work those calls start waits for it.
	wired chan struct{}

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
		cfg:          cfg,
		log:          cfg.Logger,
		fsm:          fsm.New(),
		leaderNotify: make(chan bool, 8),
		stop:         make(chan struct{}),
		started:      cfg.Now(),
		left:         make(chan struct{}),
		wired:        make(chan struct{}),
	}
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
	pulled, err := n.openPullCache()
	if err != nil {
		return nil, err
	}
	n.commitGate = batch.NewGate()
	n.objects = objects.New(objects.Config{
		ID: cfg.ID, EC: cfg.EC, BlockSize: cfg.BlockSize, SmallObjectSize: cfg.SmallObjectSize,
		InlineSize: cfg.InlineSize, MaxObjectSize: cfg.MaxObjectSize, CacheSize: cfg.CacheSize,
		PullCache:    pulled,
		StallTimeout: cfg.StallTimeout, HedgeAfter: cfg.HedgeAfter, RepairRate: cfg.RepairRate,
		Shards: n.shards, Peers: cfg.Peers, Members: lazyMembers{n}, State: n.fsm,
		Cluster: objectsFace{n}, Disk: diskSpace{n}, Owner: owner{n}, Fault: n.fault,
		CommitGate: n.commitGate, Logger: n.log,
	})
	n.maint = n.newMaintainer()
	n.fsm.SetBlobSink(blobSink{n})
	n.fsm.OnHalt(n.onHalt)
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	n.diskFull.Store(n.DiskFull())
	if err := n.startGossip(); err != nil {
		return nil, err
	}
	if err := n.startFederation(); err != nil {
		return nil, err
	}
	close(n.wired)
	n.wg.Add(3)
	go n.bootstrapLoop()
	go n.leaderLoop()
	n.startMaintenance()
	go n.runEvery(diskRecheck, func(context.Context) { n.watchDisk() })
	n.spawn(n.retentionLoop)
	n.spawn(n.flushDenials)
	ok = true
	return n, nil
}

func (n *Node) startRaft() error {
	st, err := metastore.Open(metastore.Config{
		ID:           n.cfg.ID,
		Dir:          filepath.Join(n.cfg.DataDir, "raft"),
		Raft:         n.cfg.Raft,
		Transport:    n.cfg.RaftTransport,
		FSM:          n.fsm,
		NotifyCh:     n.leaderNotify,
		Leader:       n.cfg.Peers,
		Resolve:      n.peerAddr,
		Disk:         diskSpace{n},
		ApplyTimeout: n.cfg.ApplyTimeout,
		CommitGate:   n.commitGate,
		Now:          n.cfg.Now,
		Logger:       n.log,
	})
	if err != nil {
		return err
	}
	n.store, n.raft = st, st.Raft()
	n.booted = st.Booted()
	return nil
}

// peerAddr returns the peer service address of node id, as gossip knows it.
func (n *Node) peerAddr(id string) (string, error) {
	m, ok := n.pool.Get(id)
	if !ok || m.Meta.HTTP == "" {
		return "", fmt.Errorf("%w: leader %s not known to gossip", ErrNoLeader, id)
	}
	return m.Meta.HTTP, nil
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
		if n.store != nil {
			// Work waiting on a write or a barrier ends now.
			n.store.Stop()
		}
		n.wg.Wait()
		n.bg.Wait()
		if n.objects != nil {
			n.objects.Close()
		}
		if n.pool != nil {
			n.pool.Shutdown()
		}
		if n.store != nil {
			n.store.Close()
		} else if c, ok := n.cfg.RaftTransport.(interface{ Close() error }); ok {
			_ = c.Close()
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
