// Package federation links a cluster to the clusters of other
// datacenters: a WAN gossip pool (memberlist's WAN timings, encrypted with
// the cluster key, the same membership.Pool as the LAN) through which the
// clusters find each other, and the replicator, which runs on the leader
// only and copies what the other datacenters' change feeds say
// (fsm/feed.go) through the node's own write path.
//
// It knows no HTTP and no raft: the node it runs in is a Local, the other
// datacenters' nodes are reached through a Remote (transport/peer, over
// mutual TLS under the cluster key).
package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// Sentinel errors.
var (
	// ErrOff marks a federation call on a node started without a WAN
	// address.
	ErrOff = errors.New("federation is off: the node was started without --wan-addr")
	// ErrNoRemote marks a datacenter none of whose nodes answered.
	ErrNoRemote = errors.New("no reachable node of the datacenter")
)

// FeedPage is what a node of another datacenter answers a feed read with:
// the records after the reader's index, the lag from there, and the
// source's replication rules (a rule may be added on either side).
type FeedPage struct {
	Datacenter string                `json:"datacenter"`
	Records    []fsm.FeedRecord      `json:"records"`
	More       bool                  `json:"more"`
	Lag        fsm.FeedLag           `json:"lag"`
	Rules      []fsm.ReplicationRule `json:"rules,omitempty"`
}

// Local is what the replicator needs of its own node.
type Local interface {
	// IsLeader reports whether the node leads its cluster: only the
	// leader replicates.
	IsLeader() bool
	// FSM is the node's state, for reads.
	FSM() *fsm.FSM
	// Apply commits a command through raft.
	Apply(ctx context.Context, c fsm.Command) (fsm.Result, error)
	// Replicate stores body (verified against rec's digest) through the
	// node's write path and binds rec's name to it with its metadata,
	// origin and created time.
	Replicate(ctx context.Context, rec fsm.FeedRecord, origin string, body io.Reader) (fsm.Artifact, error)
}

// Remote reaches the nodes of other datacenters.
type Remote interface {
	// Feed reads the feed of the node at addr after index after.
	Feed(ctx context.Context, addr string, after uint64, limit int) (FeedPage, error)
	// Fetch streams the content of name from the node at addr.
	Fetch(ctx context.Context, addr, name string) (io.ReadCloser, error)
}

// Config builds a Federation.
type Config struct {
	// ID and Datacenter are the node's; the WAN pool names it ID.Datacenter,
	// since node IDs repeat across datacenters.
	ID, Datacenter string
	DataDir        string
	// Bind and Advertise are the WAN gossip address (host:port).
	Bind, Advertise string
	// Join lists WAN gossip addresses of nodes of other datacenters.
	Join []string
	// HTTPAddr is the node's API and peer service address, told to the
	// other datacenters through gossip.
	HTTPAddr   string
	ClusterKey string
	AcceptKeys []string
	// Memberlist replaces memberlist's WAN defaults (tests).
	Memberlist *memberlist.Config
	// Interval is how often the leader reads the feeds (default 1 s).
	Interval time.Duration
	// PageSize is how many records one feed read asks for (default 256).
	PageSize int
	// AntiEntropyInterval is how often the leader compares its state with
	// each datacenter's (antientropy.go; default 10 min, negative: never).
	AntiEntropyInterval time.Duration
	Local               Local
	Remote              Remote
	Now                 func() time.Time
	Logger              hclog.Logger
}

// Federation is a node's membership of the WAN pool and, while it leads,
// its cluster's replicator.
type Federation struct {
	cfg  Config
	log  hclog.Logger
	pool *membership.Pool
	wake chan struct{}

	mu    sync.Mutex
	peers map[string]*remoteState

	pt pullThrough // pullthrough.go
}

// remoteState is what the replicator knows of one datacenter.
type remoteState struct {
	reachable bool
	lag       fsm.FeedLag
	lagKnown  bool
	errors    int64
	lastError string
	copied    int64
	conflicts int64
	// failing is set from a failed pass to the next good one.
	failing bool
	// ae is the last anti-entropy run's account; aeNext when the next is
	// due (zero: at the next pass).
	ae     AntiEntropyStatus
	aeNext time.Time
}

// Start joins the WAN pool. The replicator runs in Run.
func Start(cfg Config) (*Federation, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 256
	}
	if cfg.AntiEntropyInterval == 0 {
		cfg.AntiEntropyInterval = DefaultAntiEntropyInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Local == nil || cfg.Remote == nil {
		return nil, errors.New("federation: Local and Remote are required")
	}
	f := &Federation{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), peers: map[string]*remoteState{}}
	mc := cfg.Memberlist
	if mc == nil {
		mc = memberlist.DefaultWANConfig()
	}
	pool, err := membership.Start(membership.Config{
		ID: cfg.ID + "." + cfg.Datacenter, Datacenter: cfg.Datacenter, DataDir: cfg.DataDir,
		PeersFile: "wan-peers.json", Bind: cfg.Bind, Advertise: cfg.Advertise, Join: cfg.Join,
		ClusterKey: cfg.ClusterKey, AcceptKeys: cfg.AcceptKeys, Memberlist: mc,
		LocalMeta: func() membership.Meta {
			return membership.Meta{Datacenter: cfg.Datacenter, HTTP: cfg.HTTPAddr}
		},
		Now: cfg.Now, Logger: f.log.Named("wan"),
	})
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	f.pool = pool
	return f, nil
}

// Join contacts WAN gossip addresses of other datacenters' nodes.
func (f *Federation) Join(addrs []string) (int, error) {
	n, err := f.pool.Join(addrs)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("join WAN %v: %w", addrs, err)
	}
	f.Wake()
	return n, nil
}

// Wake makes the replicator read the feeds now rather than at its next
// tick (a node that just became leader, a join).
func (f *Federation) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Members returns every node of the WAN pool, this one included.
func (f *Federation) Members() []membership.Member { return f.pool.List() }

// Datacenters returns the other datacenters with a node alive in the WAN
// pool, and those this cluster has a checkpoint or a rule for, sorted.
func (f *Federation) Datacenters() []string {
	seen := map[string]bool{}
	for _, m := range f.pool.List() {
		if m.Meta.Datacenter != "" && m.Meta.Datacenter != f.cfg.Datacenter {
			seen[m.Meta.Datacenter] = true
		}
	}
	for _, r := range f.cfg.Local.FSM().ReplicationRules() {
		if r.To == f.cfg.Datacenter {
			seen[r.From] = true
		}
	}
	out := make([]string, 0, len(seen))
	for dc := range seen {
		out = append(out, dc)
	}
	slices.Sort(out)
	return out
}

// addrs returns the peer addresses of dc's alive WAN members, shuffled,
// so that reads spread over them and one dead node is not tried first
// every time.
func (f *Federation) addrs(dc string) []string {
	var out []string
	for _, m := range f.pool.List() {
		if m.Meta.Datacenter == dc && m.State == membership.StateAlive && m.Meta.HTTP != "" {
			out = append(out, m.Meta.HTTP)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Run replicates while the node leads, every Interval and when woken,
// until ctx ends; then it leaves the WAN pool's gossip. The node runs it
// on a goroutine its Shutdown waits for.
func (f *Federation) Run(ctx context.Context) {
	defer f.pool.Shutdown()
	defer f.pt.stop() // pullthrough.go: before the pool goes
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wake:
		}
		if !f.cfg.Local.IsLeader() {
			continue
		}
		for _, dc := range f.Datacenters() {
			if ctx.Err() != nil {
				return
			}
			err := f.follow(ctx, dc)
			if err != nil && ctx.Err() == nil {
				f.noteError(dc, err)
			}
			if err == nil && f.antiEntropyDue(dc) {
				// Its failure waits for the next interval (status says
				// why), unless the link fails and comes back first.
				if err := f.antiEntropy(ctx, dc); err != nil && ctx.Err() == nil {
					f.log.Warn("anti-entropy failed", "datacenter", dc, "error", err)
				}
			}
		}
	}
}

func (f *Federation) state(dc string) *remoteState {
	s, ok := f.peers[dc]
	if !ok {
		s = &remoteState{}
		f.peers[dc] = s
	}
	return s
}

func (f *Federation) noteError(dc string, err error) {
	f.mu.Lock()
	s := f.state(dc)
	s.errors++
	s.lastError = err.Error()
	first := !s.failing
	s.failing = true
	f.mu.Unlock()
	// Once per outage, not once per pass: a datacenter cut off for an hour
	// would otherwise fill the log (status and metrics count every pass).
	if first {
		f.log.Warn("replication from datacenter failing; retrying from the checkpoint", "datacenter", dc, "error", err)
	} else {
		f.log.Debug("replication from datacenter still failing", "datacenter", dc, "error", err)
	}
}
