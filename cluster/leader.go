package cluster

import (
	"slices"
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
			n.issueAdminToken()
		}
	}
}

// reconcile adds alive members of the datacenter that raft does not know
// (voters while fewer than five voters are alive, non-voters after that),
// promotes a non-voter when a voter is lost, updates the address of members
// that came back elsewhere, and removes servers the cluster marked left. It
// never removes a failed server on its own: like Consul, it leaves that to
// an operator (pier remove), because a node that is merely partitioned would
// otherwise lose its data's place in the cluster.
func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		n.log.Warn("reconcile: read raft configuration", "error", err)
		return
	}
	known := map[raft.ServerID]raft.Server{}
	byAddr := map[raft.ServerAddress]raft.ServerID{}
	for _, s := range f.Configuration().Servers {
		known[s.ID] = s
		byAddr[s.Address] = s.ID
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
		delete(known, s.ID)
	}
	// Voters that gossip sees alive: a voter that died no longer counts, so
	// a non-voter is promoted in its place.
	alive := n.pool.Alive(n.cfg.Datacenter)
	aliveVoters := 0
	for _, m := range alive {
		if s, ok := known[raft.ServerID(m.ID)]; ok && s.Suffrage == raft.Voter {
			aliveVoters++
		}
	}
	for _, m := range alive {
		if n.fsm.NodeState(m.ID) == fsm.NodeLeft {
			continue
		}
		id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.Meta.Raft)
		s, ok := known[id]
		promote := ok && s.Suffrage == raft.Nonvoter && aliveVoters < maxVoters
		if ok && s.Address == addr && !promote {
			continue
		}
		// Nodes restarted together can trade addresses (containers get
		// their IPs anew), and raft refuses a configuration with one
		// address twice. Like Consul, drop the server that held the
		// address; the next pass adds it back at its new one.
		if other, taken := byAddr[addr]; taken && other != id {
			if other == raft.ServerID(n.cfg.ID) {
				n.log.Warn("reconcile: a member advertises this leader's raft address", "id", id, "address", addr)
				continue
			}
			if err := n.raft.RemoveServer(other, 0, 0).Error(); err != nil {
				n.log.Warn("reconcile: remove raft server holding a taken address", "id", other, "address", addr, "error", err)
				continue
			}
			n.log.Info("removed raft server whose address another member took", "id", other, "address", addr, "taken_by", id)
			if o := known[other]; o.Suffrage == raft.Voter && slices.ContainsFunc(alive, func(m member) bool { return m.ID == string(other) }) {
				aliveVoters--
			}
			delete(known, other)
			delete(byAddr, addr)
		}
		var fut raft.IndexFuture
		switch {
		case ok && s.Suffrage == raft.Voter:
			fut = n.raft.AddVoter(id, addr, 0, 0)
		case promote:
			fut = n.raft.AddVoter(id, addr, 0, 0)
			aliveVoters++
		case ok:
			fut = n.raft.AddNonvoter(id, addr, 0, 0)
		case aliveVoters < maxVoters:
			fut = n.raft.AddVoter(id, addr, 0, 0)
			aliveVoters++
		default:
			fut = n.raft.AddNonvoter(id, addr, 0, 0)
		}
		if err := fut.Error(); err != nil {
			n.log.Warn("reconcile: add raft server", "id", id, "address", addr, "error", err)
			continue
		}
		n.log.Info("raft server added or updated", "id", id, "address", addr, "promoted", promote)
		if ok {
			delete(byAddr, s.Address)
		}
		byAddr[addr] = id
	}
}
