package cluster

import (
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// Gossip member states as shown to operators.
const (
	StateAlive   = membership.StateAlive
	StateSuspect = membership.StateSuspect
	StateDead    = membership.StateDead
	StateLeft    = membership.StateLeft
)

// member is the last known gossip view of one node.
type member = membership.Member

// startGossip joins the gossip pool; membership owns memberlist, the
// member table, reachability marks and the join loop.
func (n *Node) startGossip() error {
	p, err := membership.Start(membership.Config{
		ID:         n.cfg.ID,
		Datacenter: n.cfg.Datacenter,
		DataDir:    n.cfg.DataDir,
		Bind:       n.cfg.GossipBind,
		Advertise:  n.cfg.GossipAdvertise,
		Join:       n.cfg.Join,
		ClusterKey: n.cfg.ClusterKey,
		AcceptKeys: n.cfg.AcceptKeys,
		Memberlist: n.cfg.Gossip,
		LocalMeta:  n.gossipMeta,
		Left:       func(id string) bool { return n.fsm.NodeState(id) == fsm.NodeLeft },
		Now:        n.cfg.Now,
		Logger:     n.log,
	})
	if err != nil {
		return err
	}
	n.pool = p
	n.bootEvents, n.reconcileEvents = p.Subscribe(), p.Subscribe()
	// Members may have changed before the loops subscribed.
	p.Notify()
	return nil
}

// gossipMeta is what this node tells the others; gossip asks for it on its
// own goroutines.
func (n *Node) gossipMeta() membership.Meta {
	n.bootMu.Lock()
	booted := n.booted
	n.bootMu.Unlock()
	return membership.Meta{
		Datacenter: n.cfg.Datacenter,
		HTTP:       n.cfg.HTTPAddr,
		Raft:       string(n.cfg.RaftTransport.LocalAddr()),
		Booted:     booted,
		Full:       n.diskFull.Load(),
	}
}
