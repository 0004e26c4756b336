// Package maintenance runs a node's maintenance loops: repair and rebalance
// (on the leader), the scrubber and shard garbage collection (on every
// node). It decides with repairplan and acts through the small interfaces
// declared here (the metadata state and log, membership, the objects store,
// the local shard store, a clock), so its tests run against fakes, without
// raft, gossip or a disk. Package cluster wires it to the real parts and
// runs each loop on a goroutine the node owns.
package maintenance

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/pace"
	"github.com/pier-registry/pier/cluster/repairplan"
	"github.com/pier-registry/pier/fsm"
)

// State is what maintenance reads of the metadata (an *fsm.FSM). Every
// method may be called from any goroutine; a range over objects sees the
// state as it was when the range began.
type State interface {
	// Applied is the index of the last entry applied.
	Applied() uint64
	// AllObjects yields every object, in digest order.
	AllObjects() iter.Seq[fsm.Object]
	// ChangedObjects yields, in digest order, the objects whose record an
	// entry after index since wrote (all of them for 0).
	ChangedObjects(since uint64) iter.Seq[fsm.Object]
	Object(digest string) (fsm.Object, bool)
	ObjectByID(id string) (fsm.Object, bool)
	// NodeState is a node's agreed state (active, draining, left).
	NodeState(id string) fsm.NodeState
	// Halted is non-nil once the state machine stopped at an entry this
	// build cannot read: then nothing may be committed or deleted.
	Halted() *fsm.Halt
}

// Log commits what maintenance decides (the node's metadata store).
type Log interface {
	// Apply commits a command and returns its result.
	Apply(ctx context.Context, c fsm.Command) (fsm.Result, error)
	// Barrier waits until State holds every acknowledged write.
	Barrier(ctx context.Context) error
	// IsLeader reports whether this node leads: only the leader repairs.
	IsLeader() bool
}

// Member is one node as gossip sees it.
type Member struct {
	ID    string
	State string // gossip's state: alive, suspect, dead, left
	Addr  string // the peer service address it advertises
	Full  bool   // its disk is below the reserve
}

// Members is what maintenance knows of the nodes beyond the agreed state.
type Members interface {
	// Live returns, sorted, the nodes new shards may go to.
	Live() []string
	// Up reports whether a node is this one or alive in gossip.
	Up(id string) bool
	// DownSince returns when a node was first seen not alive.
	DownSince(id string) time.Time
	// List returns every member seen, dead ones included.
	List() []Member
}

// Objects stores and reads content (an *objects.Store, through the node).
type Objects interface {
	// Reachable drops from ids the nodes that do not answer a ping.
	Reachable(ctx context.Context, ids []string) []string
	// Rebuild writes shard i of obj to targets[i] for every non-empty
	// target, rebuilt from the shards skip does not name and checked
	// against the digest; durable when it returns nil.
	Rebuild(ctx context.Context, obj fsm.Object, targets []string, skip func(int) bool) error
	// Reencode stores obj's content anew, under a new object ID, as every
	// shard of a scheme for nodes, and returns where it is and how many
	// bytes it read.
	Reencode(ctx context.Context, obj fsm.Object, nodes []string) (fsm.ObjectRef, int64, error)
	// Delete removes an object's shards from their nodes, best effort.
	Delete(ctx context.Context, ref fsm.ObjectRef)
	// ScrubShard verifies every block of local shard i of obj and returns
	// the bytes it read; a shard marked missing is skipped.
	ScrubShard(obj fsm.Object, i int) (int64, error)
	// HashContent reads obj whole at p's pace, leaving out the shards
	// skip names (nil: read as a pull does), and returns the digest and
	// length of what it read.
	HashContent(ctx context.Context, obj fsm.Object, p *pace.Pacer, skip func(int) bool) (string, int64, error)
}

// Shards is this node's shard store (a *chunk.ShardStore), for GC.
type Shards interface {
	Walk(fn func(chunk.ShardInfo) error) error
	Remove(id string, index int) error
	// Compact reclaims pack files that are mostly dead records.
	Compact() (int, error)
}

// Clock tells the time: how long a node has been down, how old a shard
// file is. Tests move it instead of waiting.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function such as time.Now to a Clock.
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }

// Config builds a Maintainer. Every field is required but Logger.
type Config struct {
	// ID is this node's ID: the scrubber reads the shards placed on it, GC
	// keeps them.
	ID string

	// RepairAfter is how long a node may be down before its shards are
	// rebuilt elsewhere; RepairInterval how often the leader repairs.
	RepairAfter    time.Duration
	RepairInterval time.Duration
	// ScrubInterval is how often the scrubber re-reads this node's shards,
	// at ScrubRate bytes per second (0 or less: no cap).
	ScrubInterval time.Duration
	ScrubRate     int64
	// GCInterval is how often GC looks for unreferenced shards, GCDelay
	// how old one must be before it is deleted, and BarrierTimeout how
	// long GC waits for the read barrier it judges after.
	GCInterval     time.Duration
	GCDelay        time.Duration
	BarrierTimeout time.Duration

	State   State
	Log     Log
	Members Members
	Objects Objects
	Shards  Shards
	Clock   Clock
	// Background runs work a report starts (a content check) on a
	// goroutine the node owns and waits for at shutdown.
	Background func(fn func(ctx context.Context))

	Logger hclog.Logger
}

// Maintainer runs the maintenance loops of one node.
type Maintainer struct {
	cfg Config
	log hclog.Logger

	// memo is touched only by the repair loop's goroutine.
	memo repairMemo
	// reported holds the shards (and content checks) this process already
	// reported, so a corrupt shard read a thousand times is proposed once.
	reported sync.Map

	stats counters
}

// counters are what the loops did, for /metrics.
type counters struct {
	repairedShards atomic.Int64
	repairFailures atomic.Int64
	movedBytes     atomic.Int64
	scrubbedBytes  atomic.Int64
	scrubCorrupt   atomic.Int64
	corruptObjects atomic.Int64
	gcRemoved      atomic.Int64
	gcBytes        atomic.Int64
}

// Counters is a snapshot of what this node's maintenance did.
type Counters struct {
	RepairedShards int64 // shards rebuilt or moved (repair, rebalance, re-encode)
	RepairFailures int64 // repairs of one object that failed (and are retried)
	MovedBytes     int64 // shard bytes written by repairs
	ScrubbedBytes  int64 // bytes the scrubber read
	ScrubCorrupt   int64 // shards the scrubber found absent or corrupt
	CorruptObjects int64 // objects the scrubber marked corrupt
	GCRemoved      int64 // shards GC deleted
	GCBytes        int64 // bytes those held
}

// New returns a Maintainer; its loops start with RunRepair, RunScrub and
// RunGC.
func New(cfg Config) *Maintainer {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Maintainer{cfg: cfg, log: cfg.Logger}
}

// Counters returns what this node's maintenance did so far.
func (m *Maintainer) Counters() Counters {
	return Counters{
		RepairedShards: m.stats.repairedShards.Load(),
		RepairFailures: m.stats.repairFailures.Load(),
		MovedBytes:     m.stats.movedBytes.Load(),
		ScrubbedBytes:  m.stats.scrubbedBytes.Load(),
		ScrubCorrupt:   m.stats.scrubCorrupt.Load(),
		CorruptObjects: m.stats.corruptObjects.Load(),
		GCRemoved:      m.stats.gcRemoved.Load(),
		GCBytes:        m.stats.gcBytes.Load(),
	}
}

// RunRepair repairs every RepairInterval while this node leads, until ctx
// ends.
func (m *Maintainer) RunRepair(ctx context.Context) {
	pace.Every(ctx, m.cfg.RepairInterval, func(ctx context.Context) {
		if m.cfg.Log.IsLeader() && !m.halted() {
			m.repairPass(ctx)
		}
	})
}

// RunScrub runs a scrub pass every ScrubInterval until ctx ends.
func (m *Maintainer) RunScrub(ctx context.Context) { pace.Every(ctx, m.cfg.ScrubInterval, m.scrub) }

// RunGC collects garbage every GCInterval until ctx ends.
func (m *Maintainer) RunGC(ctx context.Context) { pace.Every(ctx, m.cfg.GCInterval, m.gc) }

// halted reports whether the state machine has halted: then repair and
// the scrubber's reports could not commit, and GC must not delete shards
// that entries after the halt may bind.
func (m *Maintainer) halted() bool { return m.cfg.State.Halted() != nil }

// nodes shows repairplan the nodes as this node sees them.
type nodes struct{ m *Maintainer }

func (v nodes) State(id string) fsm.NodeState { return v.m.cfg.State.NodeState(id) }
func (v nodes) Up(id string) bool             { return v.m.cfg.Members.Up(id) }
func (v nodes) DownSince(id string) time.Time { return v.m.cfg.Members.DownSince(id) }

// readable reports whether shard i of obj can serve as a source.
func (m *Maintainer) readable(obj fsm.Object, i int) bool {
	return repairplan.Readable(obj, nodes{m}, i)
}

// Redundancy classifies how obj's shards stand, for status and metrics.
func (m *Maintainer) Redundancy(obj fsm.Object) repairplan.Redundancy {
	return repairplan.Classify(obj, nodes{m})
}

// commit applies c and returns the error of the call or of its result.
func (m *Maintainer) commit(ctx context.Context, c fsm.Command) error {
	res, err := m.cfg.Log.Apply(ctx, c)
	if err == nil {
		err = res.Err()
	}
	return err
}
