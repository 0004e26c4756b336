package clustertest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pier-registry/pier/transport/server"
)

// faultOptions tune a cluster that a test partitions. GC waits longer than
// any operation of the test (opTimeout) before taking an unreferenced shard:
// with the harness's 1 s of then, a push whose commit a leader's pause held up for
// 5 s found its copies collected before it was acknowledged, on every node
// placement chose (TestPauseScenario, before this). Production waits 15 min.
func faultOptions() Options {
	return Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.GCDelay = 3 * opTimeout }}
}

// runWorkload starts w against the cluster, bounded by limit, and returns
// a function that stops it and waits until it has stopped; the test's
// cleanup calls it too, before the network heals and the nodes stop.
func runWorkload(t *testing.T, w *workload, seed uint64, limit time.Duration) (stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, seed)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// waitAcked waits until at least n pushes sent at or after from were
// acknowledged by nodes (IDs).
func waitAcked(t *testing.T, d *driver, n int, from time.Duration, nodes ...string) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		if got := ackedSince(d.h, from, nodes...); got < n {
			return fmt.Errorf("%d of %d pushes acknowledged by %v since %s", got, n, nodes, from)
		}
		return nil
	})
}

// waitLeaderAmong waits until a node of side leads and no node outside it
// does, and returns the leader.
func waitLeaderAmong(t *testing.T, c *Cluster, side []int) int {
	t.Helper()
	leader := -1
	Eventually(t, Wait(), func() error {
		leader = -1
		for i, n := range c.Nodes {
			if !n.Srv.Node.IsLeader() {
				continue
			}
			if !slices.Contains(side, i) {
				return fmt.Errorf("%s, outside %v, still leads", n.ID, ids(c, side))
			}
			leader = i
		}
		if leader < 0 {
			return fmt.Errorf("no leader among %v", ids(c, side))
		}
		return nil
	})
	return leader
}

// probeNotAcked pushes a fresh artifact through node i and fails the test
// if it is acknowledged: a node cut off from the majority cannot commit.
func probeNotAcked(t *testing.T, d *driver, i int, name string) {
	t.Helper()
	if o := d.push(t.Context(), -2, i, name, content(uint64(len(name)), 4096)); o.Acked() {
		t.Fatalf("%s acknowledged push %s while cut off from the majority", d.c.Nodes[i].ID, name)
	} else {
		t.Logf("push through %s while cut off: %s %d %s", d.c.Nodes[i].ID, o.Outcome, o.Status, o.Err)
	}
}

func ids(c *Cluster, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.Nodes[i].ID)
	}
	return out
}

func allBut(c *Cluster, i int) []int {
	var out []int
	for j := range c.Nodes {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

// TestPartitionedLeaderLosesNoAcknowledgedPush cuts the leader and one
// follower off from the other three while writers push through every
// node, heals, and holds the history to the chaos suite's checks: every
// acknowledged push pulls back byte-identical from every node, no name is
// bound to two digests (a conflicting pair is pushed across the cut), and
// the cluster converges to one leader with every node alive.
func TestPartitionedLeaderLosesNoAcknowledgedPush(t *testing.T) {
	c := New(t, 5, faultOptions())
	leader := c.Leader()
	minority := []int{leader, (leader + 1) % 5}
	var majority []int
	for i := range c.Nodes {
		if !slices.Contains(minority, i) {
			majority = append(majority, i)
		}
	}
	d := newDriver(c)
	w := newWorkload(d, "split", pushMix, 4, 1500)
	stop := runWorkload(t, w, 1, 50*time.Second)
	all := ids(c, c.Running())
	waitAcked(t, d, 10, 0, all...)

	cut := d.h.Now()
	c.Split(minority, majority)
	t.Logf("split %v | %v", ids(c, minority), ids(c, majority))
	// The partition is real: the old leader steps down, the majority
	// elects one of its own and goes on acknowledging pushes, and neither
	// minority node can commit one, not even half of a conflicting pair.
	waitLeaderAmong(t, c, majority)
	waitAcked(t, d, 10, cut, ids(c, majority)...)
	for _, i := range minority {
		probeNotAcked(t, d, i, fmt.Sprintf("split/probe-%s.bin", c.Nodes[i].ID))
	}
	across := make(chan op, 1)
	go func() { across <- d.push(context.Background(), -3, majority[0], "split/across.bin", content(7, 5000)) }()
	probeNotAcked(t, d, minority[0], "split/across.bin")
	<-across
	if s := c.Net.Stats(); s.Refused == 0 || s.Dropped == 0 {
		t.Fatalf("the cut refused no dial or dropped no packet: %+v", s)
	}

	c.Heal()
	healed := d.h.Now()
	waitConverged(t, c, d.h)
	// The old minority takes pushes again.
	waitAcked(t, d, 2, healed, ids(c, minority)...)
	stop()
	phase, nodes, before := checkpoint(t.Context(), d, "after")
	judge(t, w, phase, nodes, before)
}
