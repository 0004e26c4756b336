package clustertest

import (
	"errors"
	"fmt"
	"testing"
)

// TestRestartedNodesTradeAddresses kills two nodes and starts each on the
// other's raft and gossip addresses, as containers restarted together may
// get each other's IPs: every node must then see five alive members, raft
// must hold each at its new address, and pushes must work.
func TestRestartedNodesTradeAddresses(t *testing.T) {
	c := New(t, 5, Options{})
	l := c.Leader()
	var pair []int
	for i := 2; i < 5 && len(pair) < 2; i++ {
		if i != l {
			pair = append(pair, i)
		}
	}
	a, b := c.Nodes[pair[0]], c.Nodes[pair[1]]
	c.Kill(pair[0])
	c.Kill(pair[1])
	a.cfg.RaftBind, b.cfg.RaftBind = b.cfg.RaftBind, a.cfg.RaftBind
	a.cfg.Node.GossipBind, b.cfg.Node.GossipBind = b.cfg.Node.GossipBind, a.cfg.Node.GossipBind
	c.Restart(pair[0])
	c.Restart(pair[1])

	Eventually(t, Wait(), func() error {
		var errs []error
		for _, i := range c.Running() {
			_, ms := c.Nodes[i].Srv.Node.Members()
			if len(ms) != 5 {
				return fmt.Errorf("%s sees %d members", c.Nodes[i].ID, len(ms))
			}
			for _, m := range ms {
				want := c.Nodes[nodeIndex(c, m.ID)].cfg.RaftBind
				if m.State != "alive" || m.RaftAddr != want || (m.Role != "voter" && m.Role != "leader") {
					errs = append(errs, fmt.Errorf("%s sees %s %s as %s at raft %s, want alive voter at %s",
						c.Nodes[i].ID, m.ID, m.State, m.Role, m.RaftAddr, want))
				}
			}
		}
		return errors.Join(errs...)
	})
	put(t, a.URL, "after-swap.bin", []byte("swapped"))
	pullEverywhere(t, c, "after-swap.bin", []byte("swapped"))
}
