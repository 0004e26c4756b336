package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/fsm"
)

// InsecureClusterKey is the key of a node started with --insecure: it is
// public (it is written here), so such a cluster keeps out no one. It
// exists so that insecure mode runs the same code as a keyed cluster.
const InsecureClusterKey = "pier-insecure-well-known-cluster-key"

// PeerClient is how a node reaches another node's peer service. cmd injects
// the HTTP implementation from transport; tests may inject others.
type PeerClient interface {
	// Apply asks the leader at addr to apply a batch of commands
	// (fsm.EncodeBatch) and returns their results in order.
	Apply(ctx context.Context, addr string, batch []byte) ([]fsm.Result, error)
	// ReadIndex asks the leader at addr for an index that covers every
	// write it acknowledged.
	ReadIndex(ctx context.Context, addr string) (uint64, error)
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
	// packed only when the entry is applied (blobs.go).
	GetShard(ctx context.Context, addr, id string, index int, off, n int64, after uint64) (io.ReadCloser, error)
	// DeleteShard removes a shard file from the node at addr.
	DeleteShard(ctx context.Context, addr, id string, index int) error
	// Ping checks that the node at addr answers.
	Ping(ctx context.Context, addr string) error
	// Stats fetches the node's counters and disk usage.
	Stats(ctx context.Context, addr string) (Stats, error)
}

// Config builds a Node. Zero durations take production defaults.
type Config struct {
	ID         string
	Datacenter string
	DataDir    string
	// IssueAdminToken makes this node, when it leads a cluster that has
	// never had one, issue the bootstrap admin token and write its secret
	// to DataDir/admin.token (tokens.go). Set with authentication on.
	IssueAdminToken bool
	// HTTPAddr is the address other nodes use to reach this node's HTTP
	// server (public API and peer service).
	HTTPAddr string
	// GossipBind and GossipAdvertise are host:port; advertise defaults to bind.
	GossipBind      string
	GossipAdvertise string
	// Join lists gossip addresses of existing members.
	Join []string
	// BootstrapExpect > 0 makes the node bootstrap raft once it sees that
	// many members of its datacenter.
	BootstrapExpect int
	// ClusterKey is the secret every node of the cluster holds: gossip is
	// encrypted with it, and transport derives the TLS identities of raft
	// and the peer service from it. Required; InsecureClusterKey is the
	// well-known stand-in for trials.
	ClusterKey string
	// AcceptKeys are further keys whose gossip this node reads but does not
	// send with: the middle steps of a key rotation.
	AcceptKeys []string

	// RaftTransport carries raft traffic; its LocalAddr is advertised.
	RaftTransport raft.Transport
	// Peers reaches other nodes' peer services.
	Peers PeerClient

	// Raft and Gossip, when set, replace the library defaults (tests use
	// short timeouts). Identity and plumbing fields are filled in by the node.
	Raft   *raft.Config
	Gossip *memberlist.Config

	// ReconcileInterval is how often the leader folds gossip into raft.
	ReconcileInterval time.Duration
	// ApplyTimeout bounds one raft apply.
	ApplyTimeout time.Duration
	// MaxObjectSize refuses larger pushes; 0 means no limit.
	MaxObjectSize int64

	// EC, when set, is the erasure scheme of pushes while at least K+M
	// nodes are alive; otherwise the scheme follows the live node count.
	EC erasure.Scheme
	// BlockSize is the shard block size of new objects.
	BlockSize int
	// SmallObjectSize is the largest object stored as M+1 full copies.
	SmallObjectSize int
	// InlineSize is the largest object whose copies are records in their
	// nodes' pack files instead of shard files of their own (packed.go).
	// 0 means 16 KiB; negative stores every object as shard files. It is
	// capped at SmallObjectSize and 64 KiB.
	InlineSize int
	// CacheSize is the memory kept for the content of recently read small
	// objects. 0 means 64 MiB; negative turns the cache off.
	CacheSize int64
	// PullCacheSize bounds the disk kept for whole copies of the big
	// objects this node served (cluster/pullcache). 0 means a tenth of the
	// data dir's free space at start; negative turns the cache off.
	PullCacheSize int64
	// PullCachePinMemory bounds the bytes of pull cache entries also held
	// in sealed memory and served from there without a per-block check
	// (0: an eighth of the machine's memory, or of its cgroup's limit
	// where lower; negative: none).
	PullCachePinMemory int64
	// PullCacheWarm is the pull cache's block buffer memory made resident
	// when the node starts, so its first fill does not fault in new pages
	// on the first pull's clock (0: none; `pier serve` gives
	// DefaultPullCacheWarm). Harnesses that start many nodes in one
	// process leave it 0.
	PullCacheWarm int64
	// StallTimeout gives up a shard stream of a push that accepts nothing
	// for this long.
	StallTimeout time.Duration
	// HedgeAfter gives up a remote shard read that delivers nothing for
	// this long and reads parity instead.
	HedgeAfter time.Duration

	// RepairAfter is how long a node may be dead before its shards are
	// rebuilt elsewhere.
	RepairAfter time.Duration
	// RepairInterval is how often the leader checks every object.
	RepairInterval time.Duration
	// RepairRate caps the bytes per second repair reads; 0 is no cap.
	RepairRate int64
	// ScrubInterval is how often a node re-reads all its shards, and
	// ScrubRate the bytes per second it reads them at (negative: no cap).
	ScrubInterval time.Duration
	ScrubRate     int64
	// RetentionInterval is how often the leader applies the retention
	// policies (default 1h; negative: never on its own).
	RetentionInterval time.Duration
	// GCInterval is how often a node looks for unreferenced shard files,
	// and GCDelay how old one must be before it is deleted: long enough
	// for any push or repair that wrote it to commit, and at least twice
	// ApplyTimeout.
	GCInterval time.Duration
	GCDelay    time.Duration
	// PackSize is the size at which a pack file of small copies is sealed
	// (0: 64 MiB); GC compacts sealed packs that are mostly dead.
	PackSize int64
	// MinFree is the free space the data dir keeps in reserve: below it
	// the node refuses pushes and shards and hands leadership over, so raft
	// still has room for its log. 0 means 64 MiB; negative turns it off.
	MinFree int64
	// FreeSpace measures the free bytes of a directory; nil is statfs.
	// Tests replace it to simulate a full disk.
	FreeSpace func(dir string) (int64, error)

	// WANBind, when set, turns federation on (cluster/federation): the
	// node joins the WAN gossip pool of the datacenters there, advertising
	// WANAdvertise (default WANBind), and contacts JoinWAN. WANGossip
	// replaces memberlist's WAN defaults (tests), and FederationInterval
	// is how often the leader reads the other datacenters' feeds (1 s).
	// WANHTTPAddr is the API and peer service address told to the other
	// datacenters (default HTTPAddr): a node whose LAN address they cannot
	// route to gives its WAN-side address here.
	WANBind            string
	WANAdvertise       string
	WANHTTPAddr        string
	JoinWAN            []string
	WANGossip          *memberlist.Config
	FederationInterval time.Duration
	// AntiEntropyInterval is how often the leader compares the whole state
	// with each other datacenter's (default 10 min; negative: never).
	AntiEntropyInterval time.Duration

	Logger hclog.Logger
	// Now is the node's clock: it stamps commands, and repair (how long a
	// node has been down) and GC (how old a shard file is) read it, so a
	// test can move time instead of waiting for it.
	Now func() time.Time
}

// Validate fills defaults and reports a config that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if len(c.ID) > 128 {
		errs = append(errs, errors.New("node id longer than 128 bytes"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http address is required"))
	}
	if c.GossipBind == "" {
		errs = append(errs, errors.New("gossip address is required"))
	}
	if c.RaftTransport == nil {
		errs = append(errs, errors.New("raft transport is required"))
	}
	if c.Peers == nil {
		errs = append(errs, errors.New("peer client is required"))
	}
	if c.ClusterKey == "" || slices.Contains(c.AcceptKeys, "") {
		errs = append(errs, errors.New("a cluster key is required (or an explicit insecure mode)"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, errors.New("bootstrap-expect must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid node config: %w", err)
	}
	if c.Datacenter == "" {
		c.Datacenter = "dc1"
	}
	if c.GossipAdvertise == "" {
		c.GossipAdvertise = c.GossipBind
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = time.Second
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.EC.K > 0 {
		if err := c.EC.Validate(); err != nil {
			return fmt.Errorf("invalid node config: --ec: %w", err)
		}
	}
	if c.BlockSize == 0 {
		c.BlockSize = erasure.DefaultBlockSize
	}
	if c.SmallObjectSize == 0 {
		c.SmallObjectSize = 256 << 10
	}
	if c.InlineSize == 0 {
		c.InlineSize = 16 << 10
	}
	c.InlineSize = min(c.InlineSize, c.SmallObjectSize, maxInline)
	if c.CacheSize == 0 {
		c.CacheSize = 64 << 20
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 10 * time.Second
	}
	if c.HedgeAfter == 0 {
		c.HedgeAfter = 2 * time.Second
	}
	if c.RepairAfter == 0 {
		c.RepairAfter = 5 * time.Minute
	}
	if c.RepairInterval == 0 {
		c.RepairInterval = 2 * time.Second
	}
	if c.ScrubInterval == 0 {
		c.ScrubInterval = 24 * time.Hour
	}
	if c.ScrubRate == 0 {
		c.ScrubRate = 32 << 20
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Hour
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Minute
	}
	if c.GCDelay == 0 {
		c.GCDelay = 15 * time.Minute
	}
	if c.GCDelay < 2*c.ApplyTimeout {
		// A write's shards are unreferenced until its commit, which an
		// election may hold up to ApplyTimeout where it is forwarded
		// from and again on the leader: GC must not take them first.
		return fmt.Errorf("invalid node config: GC delay %s is under twice the apply timeout %s: "+
			"a write's shards could be collected before its commit", c.GCDelay, c.ApplyTimeout)
	}
	if c.MinFree == 0 {
		c.MinFree = 64 << 20
	}
	if c.FreeSpace == nil {
		c.FreeSpace = statfsFree
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
