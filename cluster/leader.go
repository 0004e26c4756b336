package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
)

// maxVoters keeps the quorum small: beyond five voters each commit waits on
// more disks without surviving more realistic failures.
const maxVoters = 5

// leaderLoop learns of leadership through raft's NotifyCh and, while this
// node leads, folds gossip membership into the raft configuration on every
// gossip event and on a timer (the timer catches anything an event missed).
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	leading := false
	for {
		select {
		case <-n.stop:
			return
		case leading = <-n.leaderNotify:
			if leading {
				n.log.Info("leading the cluster")
			}
		case <-n.reconcileEvents:
		case <-t.C:
		}
		if leading {
			n.reconcile()
		}
	}
}

// reconcile adds alive members of the datacenter that raft does not know,
// and updates the address of members that came back elsewhere. It never
// removes a failed server: like Consul, it leaves that to an operator,
// because a node that is merely partitioned would otherwise lose its data's
// place in the cluster.
func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.log.Warn("reconcile: read raft configuration", "error", err)
		return
	}
	known := map[raft.ServerID]raft.Server{}
	voters := 0
	for _, s := range f.Configuration().Servers {
		known[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, s := range f.Configuration().Servers {
		if n.fsm.NodeState(string(s.ID)) != fsm.NodeLeft {
			continue
		}
		if err := n.raft.RemoveServer(s.ID, 0, 0).Error(); err != nil {
			n.log.Warn("reconcile: remove raft server", "id", s.ID, "error", err)
			continue
		}
		n.log.Info("removed raft server that left", "id", s.ID)
		if s.Suffrage == raft.Voter {
			voters--
		}
		delete(known, s.ID)
	}
	for _, m := range n.members.alive(n.cfg.Datacenter) {
		if n.fsm.NodeState(m.ID) == fsm.NodeLeft {
			continue
		}
		id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.Meta.Raft)
		s, ok := known[id]
		if ok && s.Address == addr {
			continue
		}
		var fut raft.IndexFuture
		switch {
		case ok && s.Suffrage == raft.Voter:
			fut = n.raft.AddVoter(id, addr, 0, 0)
		case ok:
			fut = n.raft.AddNonvoter(id, addr, 0, 0)
		case voters < maxVoters:
			fut = n.raft.AddVoter(id, addr, 0, 0)
			voters++
		default:
			fut = n.raft.AddNonvoter(id, addr, 0, 0)
		}
		if err := fut.Error(); err != nil {
			n.log.Warn("reconcile: add raft server", "id", id, "address", addr, "error", err)
			continue
		}
		n.log.Info("added raft server", "id", id, "address", addr)
	}
}
