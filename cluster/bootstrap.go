package cluster

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapLoop waits until --bootstrap-expect members of the datacenter are
// alive in gossip and then bootstraps raft with all of them. Every node that
// gets there computes the same sorted configuration, and raft accepts
// identical bootstraps, so there is no race to pick one bootstrapper (this is
// Consul's maybeBootstrap). A node whose data dir holds raft state, or that
// sees a peer which does, never bootstraps: it waits for the leader to add it.
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if n.maybeBootstrap() {
			return
		}
		select {
		case <-n.stop:
			return
		case <-n.bootEvents:
		case <-t.C:
		}
	}
}

// maybeBootstrap reports true once this node has raft state.
func (n *Node) maybeBootstrap() bool {
	if n.isBooted() {
		return true
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 0 {
		// The leader added this node: its state now exists.
		n.setBooted()
		return true
	}
	if n.cfg.BootstrapExpect == 0 {
		return false
	}
	alive := n.pool.Alive(n.cfg.Datacenter)
	if len(alive) < n.cfg.BootstrapExpect {
		return false
	}
	var servers []raft.Server
	for _, m := range alive {
		if m.Meta.Booted {
			return false
		}
		servers = append(servers, raft.Server{
			ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Meta.Raft), Suffrage: raft.Voter,
		})
	}
	if len(servers) > maxVoters {
		for i := maxVoters; i < len(servers); i++ {
			servers[i].Suffrage = raft.Nonvoter
		}
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		n.log.Error("bootstrap raft", "error", err)
		return false
	}
	n.log.Info("bootstrapped raft", "servers", len(servers))
	n.setBooted()
	return true
}

func (n *Node) isBooted() bool {
	n.bootMu.Lock()
	defer n.bootMu.Unlock()
	return n.booted
}

// setBooted records raft state and tells peers through gossip metadata.
func (n *Node) setBooted() {
	n.bootMu.Lock()
	n.booted = true
	n.bootMu.Unlock()
	if err := n.pool.UpdateMeta(time.Second); err != nil {
		n.log.Debug("broadcast boot state", "error", err)
	}
}
