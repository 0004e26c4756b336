package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// Status is a node's view of the cluster for operators.
type Status struct {
	Node         string `json:"node"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Nodes        int    `json:"nodes"`
	fsm.Counts
	// Redundancy counts objects by state: full, degraded, at_risk,
	// unavailable.
	Redundancy map[Redundancy]int `json:"redundancy"`
	// Draining lists nodes on their way out and the shards still on them.
	Draining map[string]int `json:"draining,omitempty"`
	Stats    Stats          `json:"stats"`
	// Halted, when set, is "entry N: why": the state machine stopped at a
	// raft log entry this build cannot read (halt.go).
	Halted string `json:"halted,omitempty"`
}

// RaftStats returns raft's own counters (hashicorp/raft Stats), for tests
// and diagnostics.
func (n *Node) RaftStats() map[string]string { return n.raft.Stats() }

// Status computes the cluster status from this node's state.
func (n *Node) Status() Status {
	leader, members := n.Members()
	st := Status{
		Node: n.cfg.ID, Leader: leader, Term: n.raft.CurrentTerm(), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.fsm.Applied(), Counts: n.fsm.Counts(),
		Redundancy: map[Redundancy]int{Full: 0, Degraded: 0, AtRisk: 0, Unavailable: 0},
		Stats:      n.Stats(),
	}
	if h := n.fsm.Halted(); h != nil {
		st.Halted = h.Error()
	}
	for _, m := range members {
		if m.Role != RoleNone {
			st.Nodes++
		}
		if m.Status == string(fsm.NodeDraining) {
			if st.Draining == nil {
				st.Draining = map[string]int{}
			}
			st.Draining[m.ID] = 0
		}
	}
	// Objects is counted from the same frozen table as Redundancy: Counts
	// is an earlier look, and on a node applying its catch-up the two
	// disagreed (clustertest saw 10 objects full and fewer counted).
	st.Objects = 0
	for obj := range n.fsm.AllObjects() {
		st.Objects++
		st.Redundancy[n.redundancy(obj)]++
		for _, p := range obj.Placement {
			if _, ok := st.Draining[p]; ok {
				st.Draining[p]++
			}
		}
	}
	return st
}

// MemberUsage asks every alive member for its shard and disk figures, in
// parallel and briefly: a member that does not answer is left out.
func (n *Node) MemberUsage(ctx context.Context) map[string]Stats {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out := map[string]Stats{n.cfg.ID: n.Stats()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range n.pool.List() {
		if m.ID == n.cfg.ID || m.State != StateAlive || m.Meta.HTTP == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := n.cfg.Peers.Stats(ctx, m.Meta.HTTP)
			if err != nil {
				return
			}
			mu.Lock()
			out[m.ID] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
