package cluster

import (
	"context"
	"time"

	"github.com/pier-registry/pier/cluster/maintenance"
	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/cluster/repairplan"
	"github.com/pier-registry/pier/fsm"
)

// Redundancy is how an object's shards stand (repairplan decides).
type Redundancy = repairplan.Redundancy

// Redundancy states, from best to worst.
const (
	Full        = repairplan.Full
	Degraded    = repairplan.Degraded
	AtRisk      = repairplan.AtRisk
	Unavailable = repairplan.Unavailable
)

// newMaintainer wires package maintenance (repair, rebalance, scrub, GC)
// to the node's parts. It is built before raft starts, since a snapshot
// restore may already report shards; its faces reach the gossip pool and
// the metadata store only when called, and its loops start once the node
// is wired. GC's read barrier may take ten election timeouts.
func (n *Node) newMaintainer() *maintenance.Maintainer {
	return maintenance.New(maintenance.Config{
		ID:             n.cfg.ID,
		RepairAfter:    n.cfg.RepairAfter,
		RepairInterval: n.cfg.RepairInterval,
		ScrubInterval:  n.cfg.ScrubInterval,
		ScrubRate:      n.cfg.ScrubRate,
		GCInterval:     n.cfg.GCInterval,
		GCDelay:        n.cfg.GCDelay,
		BarrierTimeout: 10 * n.electionTimeout(),
		State:          n.fsm,
		Log:            maintLog{n},
		Members:        maintMembers{n},
		Objects:        maintObjects{n.objects},
		Shards:         n.shards,
		Clock:          maintenance.ClockFunc(n.cfg.Now),
		Background:     n.background,
		Logger:         n.log,
	})
}

// startMaintenance runs the maintenance loops on goroutines the node owns,
// so Shutdown waits for them; they end when the node stops.
func (n *Node) startMaintenance() {
	n.spawn(n.maint.RunRepair)
	n.spawn(n.maint.RunScrub)
	n.spawn(n.maint.RunGC)
}

// maintLog is the node's metadata store as maintenance sees it.
type maintLog struct{ n *Node }

func (l maintLog) Apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	return l.n.apply(ctx, c)
}
func (l maintLog) Barrier(ctx context.Context) error { return l.n.Barrier(ctx) }
func (l maintLog) IsLeader() bool                    { return l.n.IsLeader() }

// maintMembers is membership as maintenance sees it.
type maintMembers struct{ n *Node }

func (m maintMembers) Live() []string                { return m.n.liveNodes() }
func (m maintMembers) Up(id string) bool             { return m.n.nodeUp(id) }
func (m maintMembers) DownSince(id string) time.Time { return m.n.downSince(id) }
func (m maintMembers) List() []maintenance.Member {
	ms := m.n.pool.List()
	out := make([]maintenance.Member, len(ms))
	for i, mb := range ms {
		out[i] = maintenance.Member{ID: mb.ID, State: mb.State, Addr: mb.Meta.HTTP, Full: mb.Meta.Full}
	}
	return out
}

// maintObjects is the objects store as maintenance sees it.
type maintObjects struct{ *objects.Store }

// Reencode stores obj's content anew for nodes, every shard durable.
func (o maintObjects) Reencode(ctx context.Context, obj fsm.Object, nodes []string) (fsm.ObjectRef, int64, error) {
	body, stop := o.DecodeAll(ctx, obj, nil)
	defer stop()
	st, err := o.StoreNew(ctx, body, obj.Digest, nodes, true)
	return st.Object, st.Size, err
}

// downSince returns when a node was first seen not alive; a node this
// process never saw counts from when the process started.
func (n *Node) downSince(id string) time.Time {
	if m, ok := n.pool.Get(id); ok && !m.Since.IsZero() {
		return m.Since
	}
	return n.started
}

// redundancy classifies an object for status and metrics.
func (n *Node) redundancy(obj fsm.Object) Redundancy { return n.maint.Redundancy(obj) }

// reportMissing marks a shard missing through raft, once per process;
// repair rebuilds it.
func (n *Node) reportMissing(ctx context.Context, obj fsm.Object, i int) {
	n.maint.ReportMissing(ctx, obj, i)
}
