// Package objects keeps a cluster's content: it stores a body as erasure-
// coded shards (or packed copies) on the nodes placement picks, opens a
// range of an object, rebuilds shards, deletes them, and serves the shards
// this node holds to its peers. It works over the PeerClient, the local
// shard store and what membership says of the nodes; it knows no raft:
// what it reads of the metadata comes through State, and what it learns
// (a bad shard, an object whose bytes do not match its digest) goes to the
// node through Cluster, which decides what to commit.
package objects

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster/batch"
	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/cluster/pullcache"
	"github.com/pier-registry/pier/fsm"
)

// PeerClient reaches other nodes' shard service.
type PeerClient interface {
	// PutShard stores a shard stream (frames, then the header) as shard
	// index of object id on the node at addr, durably when it returns nil.
	// parity marks a shard read only when a data shard is lost.
	PutShard(ctx context.Context, addr, id string, index int, parity bool, body io.Reader) error
	// PutPacked stores shards of small objects in the packs of the node at
	// addr, all of them durably when it returns nil.
	PutPacked(ctx context.Context, addr string, shards []PackedShard) error
	// GetShard streams n bytes at off of a shard file on the node at addr.
	// after is the reader's applied raft index: a node that lacks the shard
	// first applies that far, since a copy that came in a raft entry is
	// packed only when the entry is applied.
	GetShard(ctx context.Context, addr, id string, index int, off, n int64, after uint64) (io.ReadCloser, error)
	// DeleteShard removes a shard file from the node at addr.
	DeleteShard(ctx context.Context, addr, id string, index int) error
	// Ping checks that the node at addr answers.
	Ping(ctx context.Context, addr string) error
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

// PackedShard is one shard of a small object sent whole: Image is the
// shard file, header first (erasure.ShardImage).
type PackedShard struct {
	ID    string
	Index int
	Image []byte
}

// State is what objects reads of the metadata (an *fsm.FSM).
type State interface {
	Object(digest string) (fsm.Object, bool)
	Applied() uint64
}

// Members is what objects needs of membership (a *membership.Pool).
type Members interface {
	Get(id string) (membership.Member, bool)
	MarkUnreachable(id string)
	MarkReached(id string)
	ReachedWithin(id string, d time.Duration) bool
}

// Cluster is the node, as objects needs it: the decisions that take the
// metadata log or membership policy.
type Cluster interface {
	// Live returns the nodes a new object's shards may go to.
	Live() []string
	// Servers returns the number of raft servers: a push needs a majority
	// of them reachable.
	Servers() int
	// Barrier waits until the local state holds every acknowledged write.
	Barrier(ctx context.Context) error
	// WaitApplied waits until the local state has applied index.
	WaitApplied(ctx context.Context, index uint64) error
	// ShardBad reports shard i of obj missing or corrupt; repair rebuilds it.
	ShardBad(ctx context.Context, obj fsm.Object, i int)
	// ContentBad reports that obj's bytes, read whole, did not hash to its
	// digest.
	ContentBad(obj fsm.Object)
	// PacksLost reports that a sync of this node's packs failed: records
	// acknowledged before may be lost, and the node looks for them.
	PacksLost()
}

// Disk is the node's free-space guard.
type Disk interface {
	Check() error
	SawNoSpace()
}

// Owner runs and tracks the work objects starts, so that the node's
// Shutdown waits for it (cluster's owned.go).
type Owner interface {
	// Spawn runs fn on a tracked goroutine; false once the node stops.
	Spawn(fn func(ctx context.Context)) bool
	// Hold tracks work on the caller's goroutine until release.
	Hold() (release func(), err error)
	// Bound returns ctx, also ended when the node stops.
	Bound(ctx context.Context) (context.Context, context.CancelFunc)
	// Context ends when the node stops.
	Context() context.Context
}

// Config builds a Store. Zero sizes and durations are not defaulted here:
// cluster.Config fills them in.
type Config struct {
	// ID is this node's.
	ID string
	// EC, when set, is the scheme of pushes while at least K+M nodes live.
	EC erasure.Scheme
	// BlockSize, SmallObjectSize, InlineSize and MaxObjectSize: see
	// cluster.Config.
	BlockSize, SmallObjectSize, InlineSize int
	MaxObjectSize                          int64
	// CommitGate, when set, is entered by a push stored as packed copies,
	// through the slot its context carries (batch.WithSlot), as soon as
	// its body is in memory; the commit leaves it.
	CommitGate *batch.Gate
	// CacheSize bounds the cache of small objects' content.
	CacheSize int64
	// PullCache, when set, keeps whole copies of the big objects this node
	// served (pulled.go).
	PullCache *pullcache.Cache
	// StallTimeout gives up a shard stream that accepts nothing that long;
	// HedgeAfter replaces a remote shard slower than that with parity.
	StallTimeout, HedgeAfter time.Duration
	// RepairRate caps a rebuild's reads, in bytes per second.
	RepairRate int64

	Shards  *chunk.ShardStore
	Peers   PeerClient
	Members Members
	State   State
	Cluster Cluster
	Disk    Disk
	Owner   Owner
	// Fault reports a fault planted for the chaos suite's self-test.
	Fault  func(name string) bool
	Logger hclog.Logger
}

// Planted faults (cluster's faults_on.go).
const (
	faultDropShard    = "drop-shard"
	faultSkipChecksum = "skip-checksum"
)

// Store is one node's part of the cluster's content.
type Store struct {
	cfg    Config
	log    hclog.Logger
	shards *chunk.ShardStore
	pool   Members
	fsm    State
	c      Cluster
	cache  *objectCache
	stats  counters
	// packSenders batch copies of small objects per node (packed.go).
	packMu      sync.Mutex
	packSenders map[string]*packSender
}

type counters struct {
	corruptBlocks atomic.Int64
	degradedReads atomic.Int64
	cacheHits     atomic.Int64
	packFailed    atomic.Int64
	peerReadBytes atomic.Int64
}

// Counters are a store's counts since it started.
type Counters struct {
	CorruptBlocks, DegradedReads, CacheHits, PackFailures int64
	// PeerReadBytes counts shard bytes that pulls (not maintenance)
	// streamed from other nodes.
	PeerReadBytes int64
	// CacheBytes is the content the cache holds now.
	CacheBytes int64
	// PullCache is the pull cache's figures; zero without one.
	PullCache pullcache.Stats
}

// New returns a store over cfg's shard store and peers.
func New(cfg Config) *Store {
	if cfg.Fault == nil {
		cfg.Fault = func(string) bool { return false }
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Store{
		cfg: cfg, log: cfg.Logger, shards: cfg.Shards, pool: cfg.Members, fsm: cfg.State, c: cfg.Cluster,
		cache:       newObjectCache(cfg.CacheSize),
		packSenders: map[string]*packSender{},
	}
}

// Counters returns the store's counts.
func (o *Store) Counters() Counters {
	cached, _ := o.cache.bytes()
	return Counters{
		CorruptBlocks: o.stats.corruptBlocks.Load(),
		DegradedReads: o.stats.degradedReads.Load(),
		CacheHits:     o.stats.cacheHits.Load(),
		PackFailures:  o.stats.packFailed.Load(),
		PeerReadBytes: o.stats.peerReadBytes.Load(),
		CacheBytes:    cached,
		PullCache:     o.pullStats(),
	}
}

func (o *Store) pullStats() pullcache.Stats {
	if o.cfg.PullCache == nil {
		return pullcache.Stats{}
	}
	return o.cfg.PullCache.Stats()
}

// CountPackFailure counts a copy carried in a raft entry that could not be
// packed (cluster's blobs.go).
func (o *Store) CountPackFailure() { o.stats.packFailed.Add(1) }

func (o *Store) fault(name string) bool { return o.cfg.Fault(name) }

func (o *Store) spawn(fn func(ctx context.Context)) bool { return o.cfg.Owner.Spawn(fn) }
func (o *Store) hold() (func(), error)                   { return o.cfg.Owner.Hold() }
func (o *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return o.cfg.Owner.Bound(ctx)
}
func (o *Store) ctx() context.Context { return o.cfg.Owner.Context() }

func (o *Store) checkSpace() error {
	if o.cfg.Disk == nil {
		return nil
	}
	return o.cfg.Disk.Check()
}

func (o *Store) sawNoSpace() {
	if o.cfg.Disk != nil {
		o.cfg.Disk.SawNoSpace()
	}
}

// Sentinel errors, shared with cluster (package errs).
var (
	ErrUnavailable     = errs.ErrUnavailable
	ErrPeerUnreachable = errs.ErrPeerUnreachable
	ErrShutdown        = errs.ErrShutdown
	ErrDigestMismatch  = errs.ErrDigestMismatch
	ErrTooLarge        = errs.ErrTooLarge
	ErrTruncated       = errs.ErrTruncated
)

// LayoutOf is the erasure layout of obj.
func LayoutOf(obj fsm.Object) erasure.Layout { return layoutOf(obj) }

// NodeUp reports whether a node is this one or alive in gossip.
func (o *Store) NodeUp(id string) bool { return o.nodeUp(id) }

// StoreNew encodes body into a new object over the nodes live; full wants
// every shard durable (a repair's rewrite), not K+1.
func (o *Store) StoreNew(ctx context.Context, body io.Reader, expect string, live []string, full bool) (Stored, error) {
	return o.storeNew(ctx, body, expect, live, full)
}

// Delete removes an object's shards from their nodes, best effort.
func (o *Store) Delete(ctx context.Context, ref fsm.ObjectRef) { o.deleteShards(ctx, ref) }

// Reachable drops from ids the nodes that do not answer a ping.
func (o *Store) Reachable(ctx context.Context, ids []string) []string { return o.reachable(ctx, ids) }

// DecodeAll streams obj's whole content from its readable shards, skipping
// those skip names, at no more than RepairRate; stop ends it.
func (o *Store) DecodeAll(ctx context.Context, obj fsm.Object, skip func(int) bool) (r io.Reader, stop func()) {
	return o.decodeAll(ctx, obj, layoutOf(obj), skip)
}
