package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/testing/clustertest"
	"github.com/pier-registry/pier/testing/freeport"
	"github.com/pier-registry/pier/transport/server"
)

// The harness is testing/clustertest's, less what a benchmark does not
// need (testing.TB, the netsplit network every connection of clustertest
// crosses) and with maintenance that would only add noise slowed down:
// scrub and GC. Its raft and gossip timings are either those of `pier
// serve` (the libraries' defaults: -timings lan, the default) or
// clustertest's short ones (-timings test). With the short ones, 50 nodes
// in one process on two busy cores missed heartbeats: 694 elections and
// 4 MB/s of pushes in the run of 2026-12-05 20:02 UTC (BENCHMARKS.md,
// "Scale").

// timingSet is one choice of raft and gossip timings.
type timingSet struct {
	raft      func() *raft.Config
	gossip    func() *memberlist.Config
	reconcile time.Duration
	text      string
}

var timingSets = map[string]timingSet{
	"lan": {
		raft: func() *raft.Config {
			c := raft.DefaultConfig()
			return c
		},
		gossip:    memberlist.DefaultLANConfig,
		reconcile: time.Second,
		text: "those of pier serve: raft's defaults (heartbeat and election 1 s, lease 500 ms, commit 50 ms), " +
			"memberlist's LAN defaults (probe 1 s, timeout 500 ms, gossip 200 ms, push-pull 30 s, suspicion mult 4), " +
			"leader reconcile every 1 s and on every gossip event",
	},
	"test": {
		raft:      raftConfig,
		gossip:    clustertest.GossipConfig,
		reconcile: 100 * time.Millisecond,
		text: "testing/clustertest's: raft heartbeat/election/lease 250 ms, commit 5 ms; gossip probe 400 ms " +
			"(timeout 300 ms), gossip 50 ms, push-pull 2 s, suspicion mult 3; leader reconcile every 100 ms",
	},
}

// maintenanceText describes the maintenance intervals of every node.
const maintenanceText = "repair of a node dead for 1 s (production: 5 min), a repair pass every 500 ms, scrub hourly, GC every 5 s"

// raftConfig is clustertest.RaftConfig, with snapshots less frequent: at a
// snapshot every 64 entries, 1,000 pushes to 50 nodes would install
// snapshots on non-voters over and over.
func raftConfig() *raft.Config {
	c := clustertest.RaftConfig()
	c.SnapshotThreshold = 1024
	c.TrailingLogs = 1024
	c.SnapshotInterval = 5 * time.Second
	return c
}

type node struct {
	id  string
	cfg server.Config
	srv *server.Server
	url string
}

type harness struct {
	t     timingSet
	dir   string
	log   io.Writer
	nodes []*node
}

func (h *harness) newNode(bootstrapExpect int, join []string) (*node, error) {
	ports, err := freeport.Ports(3)
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("node%02d", len(h.nodes)+1)
	logger := hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: h.log})
	cfg := server.Config{
		HTTPBind: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		RaftBind: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Node: cluster.Config{
			ID: id, Datacenter: "dc1", DataDir: filepath.Join(h.dir, id),
			GossipBind:        fmt.Sprintf("127.0.0.1:%d", ports[2]),
			Join:              join,
			BootstrapExpect:   bootstrapExpect,
			ClusterKey:        "benchscale-key",
			Raft:              h.t.raft(),
			Gossip:            h.t.gossip(),
			ReconcileInterval: h.t.reconcile,
			StallTimeout:      5 * time.Second,
			HedgeAfter:        2 * time.Second,
			RepairAfter:       time.Second,
			RepairInterval:    500 * time.Millisecond,
			ScrubInterval:     time.Hour,
			GCInterval:        5 * time.Second,
			GCDelay:           time.Minute,
			PullCacheSize:     -1,
			Logger:            logger,
		},
	}
	n := &node{id: id, cfg: cfg, url: "http://" + cfg.HTTPBind}
	// A port picked free can be taken by the time it is bound; pick again.
	for try := 0; ; try++ {
		n.srv, err = server.Start(n.cfg)
		if err == nil {
			break
		}
		if try == 5 {
			return nil, fmt.Errorf("start %s: %w", id, err)
		}
		if ports, err = freeport.Ports(3); err != nil {
			return nil, err
		}
		n.cfg.HTTPBind = fmt.Sprintf("127.0.0.1:%d", ports[0])
		n.cfg.RaftBind = fmt.Sprintf("127.0.0.1:%d", ports[1])
		n.cfg.Node.GossipBind = fmt.Sprintf("127.0.0.1:%d", ports[2])
		n.url = "http://" + n.cfg.HTTPBind
	}
	h.nodes = append(h.nodes, n)
	return n, nil
}

// running returns the nodes not killed or stopped.
func (h *harness) running() []*node {
	var out []*node
	for _, n := range h.nodes {
		if n.srv != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader returns the running node that leads, or nil.
func (h *harness) leader() *node {
	for _, n := range h.running() {
		if n.srv.Node.IsLeader() {
			return n
		}
	}
	return nil
}

func (n *node) kill() {
	n.srv.Kill()
	n.srv = nil
}

// stopAll stops every running node gracefully, in parallel, each within
// 10 s.
func (h *harness) stopAll() {
	var wg sync.WaitGroup
	for _, n := range h.running() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = n.srv.Close(ctx)
			n.srv = nil
		}()
	}
	wg.Wait()
}

// poll calls f every 25 ms until it returns true or ctx ends; it returns
// how long that took.
func poll(ctx context.Context, start time.Time, f func() bool) (time.Duration, error) {
	for {
		if f() {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
