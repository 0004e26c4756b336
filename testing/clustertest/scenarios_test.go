package clustertest

import (
	"errors"
	"net"
	"testing"
	"time"
)

// The chaos suite's isolate and pause scenarios (testing/chaos/scenarios.go),
// run in-process on five nodes with the suite's workload mix, and judged by
// the same checks: lost, unverified, wrong-bytes, binding, read-after-write,
// tags, cluster and redundancy. Where the suite holds a fault for 15 s, these
// hold it until it has shown its effect (a fault that changes nothing fails
// the wait), then heal.

// TestIsolateScenario cuts a follower off from the other nodes (the test
// client still reaches it, as the chaos host reaches an isolated
// container).
func TestIsolateScenario(t *testing.T) {
	c := New(t, 5, faultOptions())
	victim := (c.Leader() + 2) % 5
	others := allBut(c, victim)
	d := newDriver(c)
	w := newWorkload(d, "isolate", chaosMix, 4, 2000)
	w.setup(t)
	stop := runWorkload(t, w, 2, 50*time.Second)
	waitAcked(t, d, 5, 0, ids(c, c.Running())...)

	cut := d.h.Now()
	c.Isolate(victim)
	t.Logf("isolated %s", c.Nodes[victim].ID)
	// Real: gossip on the others gives it up, it cannot commit, and the
	// others lead and commit without it.
	seenAs(t, c, victim, "suspect", "dead")
	probeNotAcked(t, d, victim, "isolate/probe.bin")
	waitLeaderAmong(t, c, others)
	waitAcked(t, d, 5, cut, ids(c, others)...)

	c.Heal()
	healed := d.h.Now()
	waitConverged(t, c, d.h)
	waitAcked(t, d, 1, healed, c.Nodes[victim].ID)
	stop()
	phase, nodes, before := checkpoint(t.Context(), d, "after")
	judge(t, w, phase, nodes, before)
}

// TestPauseScenario silences the leader, toward the other nodes and the
// test client alike, past the gossip suspicion timeout, as `docker pause`
// does; its goroutines keep running, which a frozen process's would not.
func TestPauseScenario(t *testing.T) {
	c := New(t, 5, faultOptions())
	victim := c.Leader()
	others := allBut(c, victim)
	d := newDriver(c)
	w := newWorkload(d, "pause", chaosMix, 4, 2000)
	w.setup(t)
	stop := runWorkload(t, w, 3, 50*time.Second)
	waitAcked(t, d, 5, 0, ids(c, c.Running())...)

	paused := d.h.Now()
	c.Pause(victim)
	t.Logf("paused %s", c.Nodes[victim].ID)
	// Real: the client gets no answer, the others elect a new leader,
	// declare the node dead and commit without it.
	resp, err := c.HTTPClient(time.Second).Get(c.Nodes[victim].URL + "/healthz")
	var ne net.Error
	if err == nil {
		resp.Body.Close()
		t.Fatalf("paused %s answered %d", c.Nodes[victim].ID, resp.StatusCode)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("paused %s: %v, want a timeout", c.Nodes[victim].ID, err)
	}
	waitLeaderAmong(t, c, others)
	seenAs(t, c, victim, "dead")
	waitAcked(t, d, 5, paused, ids(c, others)...)
	if s := c.Net.Stats(); s.Closed != 0 {
		t.Fatalf("a pause closed %d connections; it only silences them", s.Closed)
	}

	c.Heal()
	healed := d.h.Now()
	waitConverged(t, c, d.h)
	waitAcked(t, d, 1, healed, c.Nodes[victim].ID)
	stop()
	phase, nodes, before := checkpoint(t.Context(), d, "after")
	judge(t, w, phase, nodes, before)
}
