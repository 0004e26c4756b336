package cluster

import (
	"sort"

	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
)

// Raft roles as shown to operators.
const (
	RoleLeader   = "leader"
	RoleVoter    = "voter"
	RoleNonvoter = "nonvoter"
	RoleNone     = "none"
)

// Member is one node as operators see it: its gossip view joined with its
// place in raft.
type Member struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr"`
	State      string `json:"state"`
	Role       string `json:"role"`
	// Status is the membership the cluster agreed: active, draining or
	// left.
	Status string `json:"status"`
}

// Members lists every node known to gossip or raft, sorted by id. A raft
// server that gossip has never seen from this node is reported as dead.
func (n *Node) Members() (leader string, out []Member) {
	_, lid := n.raft.LeaderWithID()
	leader = string(lid)
	roles := map[string]Member{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			role := RoleNonvoter
			switch {
			case s.ID == lid:
				role = RoleLeader
			case s.Suffrage == raft.Voter:
				role = RoleVoter
			}
			roles[string(s.ID)] = Member{ID: string(s.ID), RaftAddr: string(s.Address), Role: role, State: StateDead}
		}
	}
	for _, m := range n.pool.List() {
		r, inRaft := roles[m.ID]
		if !inRaft {
			r.Role = RoleNone
		}
		r.ID, r.Datacenter, r.HTTPAddr, r.GossipAddr, r.State = m.ID, m.Meta.Datacenter, m.Meta.HTTP, m.Gossip, m.State
		if r.RaftAddr == "" {
			r.RaftAddr = m.Meta.Raft
		}
		roles[m.ID] = r
	}
	for _, m := range roles {
		m.Status = string(n.fsm.NodeState(m.ID))
		if m.Status == string(fsm.NodeLeft) && m.State != StateAlive {
			m.State = StateLeft
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return leader, out
}
