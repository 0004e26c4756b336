package clustertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pier-registry/pier/testing/invariants"
)

// members asks every node for its members view over plain HTTP (the
// checks run on a healed network).
func members(c *Cluster) []invariants.MembersView {
	var out []invariants.MembersView
	for _, n := range c.Nodes {
		v := invariants.MembersView{Node: n.ID}
		resp, err := http.Get(n.URL + "/api/v1/cluster/members")
		if err == nil {
			if resp.StatusCode != http.StatusOK {
				err = apiError(resp)
			} else {
				err = json.NewDecoder(resp.Body).Decode(&v.Resp)
			}
			resp.Body.Close()
		}
		v.Err = err
		out = append(out, v)
	}
	return out
}

// waitConverged waits until every node is ready, all name one leader and
// see every node alive (the chaos suite's cluster check), then until no
// object is degraded, at risk or unavailable on any node (its redundancy
// check).
func waitConverged(t *testing.T, c *Cluster, h *history) {
	t.Helper()
	var ids []string
	for _, n := range c.Nodes {
		ids = append(ids, n.ID)
	}
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			if r, err := http.Get(n.URL + "/readyz"); err != nil {
				return err
			} else if r.Body.Close(); r.StatusCode != http.StatusOK {
				return fmt.Errorf("%s not ready: %d", n.ID, r.StatusCode)
			}
		}
		if v := invariants.CheckMembership(members(c), ids, nil); len(v) > 0 {
			return fmt.Errorf("%v", v)
		}
		return nil
	})
	Eventually(t, Wait(), func() error {
		var errs []error
		for _, n := range c.Nodes {
			var st struct {
				Redundancy map[string]int `json:"redundancy"`
			}
			resp, err := http.Get(n.URL + "/api/v1/status")
			if err != nil {
				return err
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				return fmt.Errorf("%s status: %w", n.ID, err)
			}
			if st.Redundancy == nil {
				return fmt.Errorf("%s status has no redundancy", n.ID)
			}
			if st.Redundancy["degraded"]+st.Redundancy["at_risk"]+st.Redundancy["unavailable"] > 0 {
				errs = append(errs, fmt.Errorf("%s: redundancy %v", n.ID, st.Redundancy))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w\n%s", errors.Join(errs...), shortObjects(c.Nodes[0], h))
		}
		return nil
	})
}

// shortObjects lists a few objects that node's state holds short of
// shards, and the pushes of their bytes, for a failure message.
func shortObjects(n *Node, h *history) string {
	var b strings.Builder
	k := 0
	ops := h.Ops()
	for _, o := range n.Srv.Node.FSM().Objects() {
		if (o.Corrupt == "" && len(o.Missing) == 0) || k == 5 {
			continue
		}
		k++
		fmt.Fprintf(&b, "%s: object %s (%s) %d+%d on %v, missing %v, corrupt %q\n", n.ID, o.ID, invariants.Short(o.Digest), o.K, o.M, o.Placement, o.Missing, o.Corrupt)
		for _, p := range ops {
			if p.Kind == invariants.KindPush && p.Sent == o.Digest {
				fmt.Fprintf(&b, "  op %d: push %s through %s, %s-%s: %s %d %s\n", p.ID, p.Name, p.Node, p.Start, p.End, p.Outcome, p.Status, p.Err)
			}
		}
	}
	return b.String()
}

// seenAs waits until every node but i sees node i in one of states in
// gossip: a node whose gossip is cut goes suspect, then dead.
func seenAs(t *testing.T, c *Cluster, i int, states ...string) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		for j, n := range c.Nodes {
			if j == i {
				continue
			}
			_, ms := n.Srv.Node.Members()
			for _, m := range ms {
				if m.ID == c.Nodes[i].ID && !slices.Contains(states, m.State) {
					return fmt.Errorf("%s sees %s %s, want %v", n.ID, m.ID, m.State, states)
				}
			}
		}
		return nil
	})
}
