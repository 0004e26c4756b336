package clustertest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/transport/server"
)

// seed pushes a mix of small, empty and multi-stripe artifacts through
// different nodes and returns them by name.
func seed(t *testing.T, c *Cluster, n int) map[string][]byte {
	t.Helper()
	data := map[string][]byte{}
	sizes := []int{0, 10, 100 << 10, 300 << 10, 3<<20 + 7}
	for i := range n {
		name := fmt.Sprintf("seed/%02d.bin", i)
		data[name] = bigBytes(uint64(1000+i), sizes[i%len(sizes)])
		run := c.Running()
		put(t, c.Nodes[run[i%len(run)]].URL, name, data[name])
	}
	return data
}

func pullAll(t *testing.T, c *Cluster, data map[string][]byte) {
	t.Helper()
	for name, b := range data {
		pullEverywhere(t, c, name, b)
	}
}

func TestLeaveDrainsThenExits(t *testing.T) {
	c := New(t, 4, Options{})
	data := seed(t, c, 10)
	leaver := 3
	r := Do(t, "POST", c.Nodes[leaver].URL+"/api/v1/cluster/leave", nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	// Pulls keep working while the node drains.
	done := c.Nodes[leaver].Srv.Node.Left()
	for drained := false; !drained; {
		select {
		case <-done:
			drained = true
		case <-time.After(Wait()):
			t.Fatalf("node did not leave; status %+v", c.Nodes[leaver].Srv.Node.Status())
		default:
			pullAll(t, c, data)
		}
	}
	c.Stop(leaver)
	pullAll(t, c, data)
	waitFullRedundancy(t, c)
	_, ms := c.Nodes[0].Srv.Node.Members()
	for _, m := range ms {
		if m.ID == c.Nodes[leaver].ID && (m.Role != cluster.RoleNone || m.Status != "left") {
			t.Fatalf("left node still a member: %+v", m)
		}
	}
	if st := c.Nodes[0].Srv.Node.Status(); st.Nodes != 3 {
		t.Fatalf("raft has %d servers after the leave, want 3", st.Nodes)
	}
}

func TestRepairAfterDeathThenSurviveMore(t *testing.T) {
	c := New(t, 6, Options{})
	data := seed(t, c, 12)
	c.Kill(5)
	waitDown(t, c, 5)
	// RepairAfter is short in tests: the dead node's shards are rebuilt, or
	// objects re-encoded for the five left, until all are fully redundant.
	waitFullRedundancy(t, c)
	m := string(Do(t, "GET", c.Nodes[0].URL+"/metrics", nil, nil).Body)
	objects := c.Nodes[0].Srv.Node.Status().Objects
	for _, want := range []string{fmt.Sprintf(`pier_objects_by_redundancy{state="full"} %d`, objects), `pier_members{state="dead"} 1`, "pier_moved_bytes_total"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	c.Kill(4)
	c.Kill(3)
	pullAll(t, c, data)
}

func TestScrubFindsCorruptionAndRepairRewrites(t *testing.T) {
	c := New(t, 3, Options{})
	body := bigBytes(9, 3<<20)
	put(t, c.Nodes[0].URL, "rot.bin", body)
	o := object(t, c, "rot.bin")
	path, raw := corruptShard(t, c, o, 1, 3<<19)
	// A scrubber reports it (the holder's, or the content check of the
	// node of shard 0), repair rewrites it in place.
	waitCorruptionFound(t, c)
	waitFullRedundancy(t, c)
	Eventually(t, Wait(), func() error {
		fixed, err := os.ReadFile(path)
		if err != nil || bytes.Equal(fixed, raw) {
			return fmt.Errorf("shard file not rewritten: %v", err)
		}
		return nil
	})
	// With the repaired shard, the object survives losing another node.
	for i, id := range o.Placement {
		if i != 1 {
			c.Kill(nodeIndex(c, id))
			break
		}
	}
	pullEverywhere(t, c, "rot.bin", body)
}

func TestJoinRebalancesWithoutLosingRedundancy(t *testing.T) {
	c := New(t, 3, Options{})
	data := seed(t, c, 12)
	waitFullRedundancy(t, c)
	joined := c.Add()
	c.WaitReady()
	Eventually(t, Wait(), func() error {
		for _, i := range c.Running() {
			if st := c.Nodes[i].Srv.Node.Status(); st.Redundancy[cluster.Full] != st.Objects {
				t.Fatalf("redundancy dropped during the move on %s: %v", c.Nodes[i].ID, st.Redundancy)
			}
		}
		if files := c.Nodes[joined].Srv.Node.Stats().ShardFiles; files == 0 {
			return fmt.Errorf("joined node holds no shards yet")
		}
		return nil
	})
	pullAll(t, c, data)
}

func TestRestartAllInAnyOrder(t *testing.T) {
	c := New(t, 3, Options{})
	data := seed(t, c, 6)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := range 2 {
		for i := range c.Nodes {
			c.Stop(i)
		}
		order := r.Perm(len(c.Nodes))
		t.Logf("round %d: restart order %v", round, order)
		for _, i := range order {
			c.Restart(i)
		}
		c.WaitReady()
		c.Leader()
		pullAll(t, c, data)
	}
}

func TestRemoveDeadNode(t *testing.T) {
	c := New(t, 4, Options{})
	data := seed(t, c, 8)
	c.Kill(3)
	r := Do(t, "POST", c.Nodes[0].URL+"/api/v1/cluster/remove?id=node4", nil, nil)
	if r.Status != 200 {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	waitFullRedundancy(t, c)
	Eventually(t, Wait(), func() error {
		if st := c.Nodes[0].Srv.Node.Status(); st.Nodes != 3 {
			return fmt.Errorf("raft has %d servers", st.Nodes)
		}
		return nil
	})
	pullAll(t, c, data)
	if r := Do(t, "POST", c.Nodes[0].URL+"/api/v1/cluster/remove?id=nosuch", nil, nil); r.Status != 404 {
		t.Fatalf("remove of an unknown node: %d", r.Status)
	}
}

// gatedReader hands out its first part, then waits for open before the
// rest, so a test can act while a push is mid-stream.
type gatedReader struct {
	first, rest io.Reader
	reached     chan struct{}
	open        chan struct{}
	once        sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	g.once.Do(func() {
		close(g.reached)
		<-g.open
	})
	return g.rest.Read(p)
}

func TestNodeKilledDuringPush(t *testing.T) {
	c := New(t, 4, Options{})
	body := bigBytes(11, 16<<20)
	g := &gatedReader{first: bytes.NewReader(body[:6<<20]), rest: bytes.NewReader(body[6<<20:]),
		reached: make(chan struct{}), open: make(chan struct{})}
	type result struct {
		status int
		body   []byte
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("PUT", c.Nodes[0].URL+"/artifacts/during-kill.bin", g)
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{status: -1, body: []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, b}
	}()
	select {
	case <-g.reached:
	case <-time.After(Wait()):
		t.Fatal("push never got going")
	}
	c.Kill(3)
	close(g.open)
	got := <-res
	switch got.status {
	case http.StatusCreated:
		// Acknowledged: it must survive, and repair restores it fully.
		pullEverywhere(t, c, "during-kill.bin", body)
		waitFullRedundancy(t, c)
		pullEverywhere(t, c, "during-kill.bin", body)
	case http.StatusServiceUnavailable:
		if r := Do(t, "GET", c.Nodes[1].URL+"/artifacts/during-kill.bin", nil, nil); r.Status != 404 {
			t.Fatalf("refused push is visible: %d", r.Status)
		}
	default:
		t.Fatalf("push during a kill: %d %s", got.status, got.body)
	}
}

func TestNonvoterPromotedWhenAVoterIsLost(t *testing.T) {
	c := New(t, 6, Options{})
	roles := func() map[string]string {
		_, ms := c.Nodes[c.Running()[0]].Srv.Node.Members()
		out := map[string]string{}
		for _, m := range ms {
			out[m.ID] = m.Role
		}
		return out
	}
	var nonvoter string
	Eventually(t, Wait(), func() error {
		nonvoter = ""
		for id, r := range roles() {
			if r == cluster.RoleNonvoter {
				nonvoter = id
			}
		}
		if nonvoter == "" {
			return fmt.Errorf("no non-voter among six: %v", roles())
		}
		return nil
	})
	leader := c.Leader()
	for i, n := range c.Nodes {
		if i != leader && n.ID != nonvoter {
			c.Kill(i)
			break
		}
	}
	Eventually(t, Wait(), func() error {
		if r := roles()[nonvoter]; r != cluster.RoleVoter && r != cluster.RoleLeader {
			return fmt.Errorf("%s is still %s", nonvoter, r)
		}
		return nil
	})
}

func TestJoinCommand(t *testing.T) {
	c := New(t, 3, Options{})
	data := seed(t, c, 3)
	i := c.AddDetached()
	if r := Do(t, "GET", c.Nodes[i].URL+"/readyz", nil, nil); r.Status != 503 {
		t.Fatalf("a node nobody joined is ready: %d", r.Status)
	}
	r := Do(t, "POST", c.Nodes[i].URL+"/api/v1/cluster/join?addr="+c.GossipAddr(1), nil, nil)
	if r.Status != 200 {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	c.WaitReady()
	pullAll(t, c, data)

	// A node that formed a cluster of its own cannot join another.
	solo := New(t, 1, Options{ClusterKey: "clustertest-key"})
	r = Do(t, "POST", solo.Nodes[0].URL+"/api/v1/cluster/join?addr="+c.GossipAddr(0), nil, nil)
	if r.Status != 409 {
		t.Fatalf("join of a node with its own cluster: %d %s", r.Status, r.Body)
	}
}

// A draining node's shards are sources for repair: with every other copy
// of an object lost, the leave still completes by copying the leaver's.
func TestLeaveWithTheOnlyIntactCopy(t *testing.T) {
	c := New(t, 4, Options{})
	body := bigBytes(21, 10<<10)
	put(t, c.Nodes[0].URL, "last-copy.bin", body)
	o := object(t, c, "last-copy.bin")
	if o.K != 1 || len(o.Placement) < 2 {
		t.Fatalf("small object stored as %d+%d on %v", o.K, o.M, o.Placement)
	}
	leaver := nodeIndex(c, o.Placement[0])
	for i, id := range o.Placement[1:] {
		if err := c.Nodes[nodeIndex(c, id)].Srv.Node.Shards().Remove(o.ID, i+1); err != nil {
			t.Fatal(err)
		}
	}
	if r := Do(t, "POST", c.Nodes[leaver].URL+"/api/v1/cluster/leave", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	select {
	case <-c.Nodes[leaver].Srv.Node.Left():
	case <-time.After(Wait()):
		t.Fatalf("node did not leave; status %+v", c.Nodes[leaver].Srv.Node.Status())
	}
	c.Stop(leaver)
	waitFullRedundancy(t, c)
	pullEverywhere(t, c, "last-copy.bin", body)
}

// A read that started before a repair re-encoded its object under a new ID
// (too few nodes left for the old scheme) goes on from the new object once
// the old shards are gone: garbage collection takes them as soon as the
// swap commits, since they are old files, which a long pull can outlast.
func TestReadOutlivesARewrite(t *testing.T) {
	c := New(t, 4, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	body := bigBytes(31, 5<<20)
	old := putScheme(t, c, "rewritten.bin", body, 2, 2)
	reader := c.Nodes[0].Srv.Node
	a, err := reader.Stat(t.Context(), "rewritten.bin")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := reader.Open(t.Context(), a, 0, a.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Three nodes cannot hold 2+2: repair re-encodes the object as 2+1.
	c.Kill(3)
	Eventually(t, Wait(), func() error {
		if o, _ := reader.FSM().Object(a.Digest); o.ID == old.ID {
			return fmt.Errorf("%s not re-encoded yet", old.ID)
		}
		for _, i := range c.Running() {
			for idx := range old.Placement {
				if c.Nodes[i].Srv.Node.Shards().Has(old.ID, idx) {
					return fmt.Errorf("old shard %d still on %s", idx, c.Nodes[i].ID)
				}
			}
		}
		return nil
	})
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read opened before the rewrite: %d of %d bytes, %v", len(got), len(body), err)
	}
}
