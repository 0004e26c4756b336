// Package clustertest runs real Pier nodes inside one test process: each
// with its own data dir, raft, gossip and HTTP listener on 127.0.0.1 ports,
// with short timeouts derived from one raft config, and helpers to stop,
// kill, restart and wait on them. Every node's raft, peer and gossip
// traffic crosses a testing/netsplit network, so a test can also isolate,
// split or pause nodes (Isolate, Split, Pause, Heal).
package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/testing/freeport"
	"github.com/pier-registry/pier/testing/netsplit"
	"github.com/pier-registry/pier/transport/server"
)

// RaftConfig returns the raft timeouts used in tests: short, like raft's own
// in-memory test config, but with room for -race on two cores.
func RaftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 250 * time.Millisecond
	c.ElectionTimeout = 250 * time.Millisecond
	// As long as the heartbeat timeout (raft's ceiling): a leader whose
	// heartbeats are 150-220 ms late under -race (seen with TLS between
	// nodes) stepped down mid-commit at 150 ms, and its writes' retries
	// answered 200 for first pushes.
	c.LeaderLeaseTimeout = 250 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.TrailingLogs = 32
	c.SnapshotInterval = 500 * time.Millisecond
	return c
}

// GossipConfig returns memberlist settings for loopback tests.
func GossipConfig() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	// Loose enough that a node busy under -race on two cores is not
	// declared dead for a moment, tight enough that a killed one is within
	// a few seconds.
	c.ProbeInterval = 400 * time.Millisecond
	c.ProbeTimeout = 300 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.SuspicionMult = 3
	return c
}

// Wait is how long harness waits may take: generous against a slow CI
// machine, derived from the election timeout.
func Wait() time.Duration { return 120 * RaftConfig().ElectionTimeout }

// Node is one in-process node.
type Node struct {
	ID  string
	cfg server.Config
	Srv *server.Server
	// URL is the base URL of the node's API, stable across restarts.
	URL string
}

// Cluster is a set of nodes in one datacenter.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	// Net carries the nodes' raft, peer and gossip traffic; each node is a
	// host named by its ID, owning its three addresses.
	Net  *netsplit.Network
	logW *testWriter
	// dir holds the nodes' data dirs. It is made before the cleanup that
	// stops the nodes is registered, so the nodes stop before it goes.
	dir string
}

// Options tune a cluster.
type Options struct {
	// BootstrapExpect defaults to the number of nodes.
	BootstrapExpect int
	// ClusterKey defaults to a fixed test key, so peer calls are
	// authenticated as in production.
	ClusterKey string
	// Tune, when set, adjusts each node's config before it starts.
	Tune func(i int, cfg *server.Config)
}

// gcDelay is how old an unreferenced shard must be before a node collects
// it: twice the apply timeout, so the shards of a write outlive its
// commit, which an election may hold up to that timeout on the node that
// forwards it and again on the leader that enqueues it (1 s lost a
// re-encoded object in TestStorageOverheadAndLoss).
const gcDelay = 2 * applyTimeout

// applyTimeout is cluster.Config's default ApplyTimeout, set here so that
// gcDelay follows it.
const applyTimeout = 10 * time.Second

// New starts n nodes that form one cluster, and waits until every node is
// ready. Nodes are stopped when the test ends.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Net: netsplit.New(), logW: &testWriter{t: t}, dir: t.TempDir()}
	t.Cleanup(c.shutdown)
	// Before the nodes stop (cleanups run last first): a stop would wait
	// on links a failed test left blackholed.
	t.Cleanup(c.Net.Heal)
	if opts.BootstrapExpect == 0 {
		opts.BootstrapExpect = n
	}
	if opts.ClusterKey == "" {
		opts.ClusterKey = "clustertest-key"
	}
	var first string
	for i := range n {
		cfg := c.nodeConfig(fmt.Sprintf("node%d", i+1), opts)
		if i == 0 {
			first = cfg.Node.GossipBind
		} else {
			cfg.Node.Join = []string{first}
		}
		if opts.Tune != nil {
			opts.Tune(i, &cfg)
		}
		node := &Node{ID: cfg.Node.ID, cfg: cfg, URL: "http://" + cfg.HTTPBind}
		c.Nodes = append(c.Nodes, node)
		c.start(node)
	}
	c.WaitReady()
	return c
}

func (c *Cluster) nodeConfig(id string, opts Options) server.Config {
	ports := freePorts(c.t, 3)
	level := hclog.Warn
	if l := os.Getenv("PIER_TEST_LOG"); l != "" {
		level = hclog.LevelFromString(l)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: id, Level: level, Output: c.logW})
	return server.Config{
		HTTPBind: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		RaftBind: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Dial:     c.Net.Host(id).DialContext,
		Node: cluster.Config{
			ID: id, Datacenter: "dc1", DataDir: filepath.Join(c.dir, id),
			GossipBind:      fmt.Sprintf("127.0.0.1:%d", ports[2]),
			BootstrapExpect: opts.BootstrapExpect,
			ClusterKey:      opts.ClusterKey,
			Raft:            RaftConfig(), Gossip: GossipConfig(),
			ReconcileInterval: 100 * time.Millisecond,
			StallTimeout:      2 * time.Second,
			HedgeAfter:        2 * time.Second,
			RepairAfter:       time.Second,
			RepairInterval:    200 * time.Millisecond,
			ScrubInterval:     300 * time.Millisecond,
			ScrubRate:         -1,
			GCInterval:        300 * time.Millisecond,
			GCDelay:           gcDelay,
			ApplyTimeout:      applyTimeout,
			// Off unless a test turns it on (pullcache_test.go): tests of
			// reads, repair and scrub expect each pull to read shards.
			PullCacheSize: -1,
			Logger:        log,
		},
	}
}

func (c *Cluster) start(n *Node) {
	c.t.Helper()
	var err error
	// A port freed by a stopped node can linger for a moment in the kernel.
	deadline := time.Now().Add(Wait())
	for {
		n.Srv, err = c.startOnNet(n)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", n.ID, err)
	}
}

// startOnNet starts n with its traffic on c.Net. Its addresses are
// registered at every start, since a test may restart a node on another
// node's ports; memberlist shuts its transport down with itself, so each
// start makes a new one.
func (c *Cluster) startOnNet(n *Node) (*server.Server, error) {
	cfg := n.cfg
	c.Net.Register(n.ID, cfg.HTTPBind, cfg.RaftBind, cfg.Node.GossipBind)
	gossip := GossipConfig()
	if cfg.Node.Gossip != nil {
		g := *cfg.Node.Gossip
		gossip = &g
	}
	logger := cfg.Node.Logger.Named("gossip-net").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	tr, err := c.Net.Host(n.ID).Gossip(cfg.Node.GossipBind, logger)
	if err != nil {
		return nil, err
	}
	gossip.Transport = tr
	cfg.Node.Gossip = gossip
	srv, err := server.Start(cfg)
	if err != nil {
		// Memberlist may not have taken the transport over.
		tr.Shutdown()
		return nil, err
	}
	return srv, nil
}

// Add starts one more node that joins the cluster through the first node
// without bootstrapping, and returns its index.
func (c *Cluster) Add() int {
	return c.add([]string{c.Nodes[0].cfg.Node.GossipBind})
}

// AddDetached starts one more node that neither bootstraps nor joins: it
// waits to be joined (pier join).
func (c *Cluster) AddDetached() int { return c.add(nil) }

// GossipAddr is node i's gossip address.
func (c *Cluster) GossipAddr(i int) string { return c.Nodes[i].cfg.Node.GossipBind }

func (c *Cluster) add(join []string) int {
	c.t.Helper()
	cfg := c.nodeConfig(fmt.Sprintf("node%d", len(c.Nodes)+1), Options{ClusterKey: c.Nodes[0].cfg.Node.ClusterKey})
	// GC waits as long as on the nodes already there (Tune).
	cfg.Node.GCDelay = c.Nodes[0].cfg.Node.GCDelay
	cfg.Node.BootstrapExpect = 0
	cfg.Node.Join = join
	n := &Node{ID: cfg.Node.ID, cfg: cfg, URL: "http://" + cfg.HTTPBind}
	c.Nodes = append(c.Nodes, n)
	c.start(n)
	return len(c.Nodes) - 1
}

// Stop stops node i gracefully.
func (c *Cluster) Stop(i int) {
	n := c.Nodes[i]
	if n.Srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.Srv.Close(ctx)
	n.Srv = nil
}

// Kill stops node i abruptly, dropping requests in flight.
func (c *Cluster) Kill(i int) {
	n := c.Nodes[i]
	if n.Srv == nil {
		return
	}
	n.Srv.Kill()
	n.Srv = nil
}

// Restart starts a stopped node again with the same id, ports and data dir.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	if n.Srv != nil {
		c.t.Fatalf("restart %s: still running", n.ID)
	}
	c.start(n)
}

// Running returns the indexes of running nodes.
func (c *Cluster) Running() []int {
	var out []int
	for i, n := range c.Nodes {
		if n.Srv != nil {
			out = append(out, i)
		}
	}
	return out
}

// WaitReady waits until every running node is ready and sees every other
// running node alive: ready means a leader is known, and pushes and reads
// also go by gossip's view (placements, peers' addresses).
func (c *Cluster) WaitReady() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait())
	defer cancel()
	for _, i := range c.Running() {
		if err := c.Nodes[i].Srv.Node.WaitReady(ctx); err != nil {
			c.t.Fatalf("%s not ready after %s: %v", c.Nodes[i].ID, Wait(), err)
		}
	}
	Eventually(c.t, Wait(), func() error {
		running := c.Running()
		for _, i := range running {
			alive := 0
			_, ms := c.Nodes[i].Srv.Node.Members()
			for _, m := range ms {
				if m.State == cluster.StateAlive {
					alive++
				}
			}
			if alive < len(running) {
				return fmt.Errorf("%s sees %d of %d running nodes alive", c.Nodes[i].ID, alive, len(running))
			}
		}
		return nil
	})
}

// Leader waits until the running nodes agree on one leader and returns its
// index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	leader := -1
	Eventually(c.t, Wait(), func() error {
		leader = -1
		for _, i := range c.Running() {
			if c.Nodes[i].Srv.Node.IsLeader() {
				if leader >= 0 {
					return fmt.Errorf("two leaders: %s and %s", c.Nodes[leader].ID, c.Nodes[i].ID)
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no leader among %v", c.Running())
		}
		return nil
	})
	return leader
}

// Isolate cuts node i off from every other node, both ways: its dials to
// them are refused, its connections to them closed, gossip packets dropped.
// Test clients still reach it, as the chaos suite's host reaches an
// isolated container. It covers the nodes that exist when it is called.
func (c *Cluster) Isolate(i int) {
	c.Net.Partition(netsplit.Cut, []string{c.Nodes[i].ID}, c.idsExcept(i))
}

// Split cuts the cluster into sides (node indexes): nodes of different
// sides cannot reach each other; test clients reach every node.
func (c *Cluster) Split(sides ...[]int) {
	var names [][]string
	for _, side := range sides {
		var ids []string
		for _, i := range side {
			ids = append(ids, c.Nodes[i].ID)
		}
		names = append(names, ids)
	}
	c.Net.Partition(netsplit.Cut, names...)
}

// Pause silences node i as `docker pause` does, short of freezing its
// goroutines: every link to it, from the other nodes and from clients made
// by HTTPClient, blackholes. Dials hang, connections stall and gossip
// packets vanish until Heal, when the stalled traffic goes on.
func (c *Cluster) Pause(i int) {
	c.Net.Partition(netsplit.Blackhole, []string{c.Nodes[i].ID}, append(c.idsExcept(i), ClientHost))
}

// Heal ends every fault.
func (c *Cluster) Heal() { c.Net.Heal() }

func (c *Cluster) idsExcept(i int) []string {
	var out []string
	for j, n := range c.Nodes {
		if j != i {
			out = append(out, n.ID)
		}
	}
	return out
}

func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop(i) }()
	}
	wg.Wait()
	c.logW.close()
}

// Eventually calls f until it returns nil or the timeout passes, then fails
// the test with f's last error.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns ports free for both TCP and UDP on 127.0.0.1 (gossip
// needs one port for both), outside the range outgoing connections take
// theirs from, so a node restarts on its own.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// testWriter routes node logs to t.Log so they show only for failing tests,
// and drops lines written after the test ended.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
