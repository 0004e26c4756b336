package cluster

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/pier-registry/pier/fsm"
)

// nodeMeta is what a node tells the others about itself through gossip.
// memberlist caps it at 512 bytes.
type nodeMeta struct {
	Datacenter string `json:"dc"`
	HTTP       string `json:"http"`
	Raft       string `json:"raft"`
	// Booted is true when the node already has raft state, so peers
	// waiting on --bootstrap-expect know not to bootstrap a second cluster.
	Booted bool `json:"boot,omitempty"`
	// Full is true while the node's data dir is below its free-space
	// reserve: pushes place no shards on it.
	Full bool `json:"full,omitempty"`
}

// Gossip member states as shown to operators.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// member is the last known gossip view of one node.
type member struct {
	ID     string
	Gossip string
	State  string
	Meta   nodeMeta
	// Since is when State last changed.
	Since time.Time
}

// memberTable remembers every node seen, including failed ones, because
// memberlist forgets dead nodes and operators still need to see them.
type memberTable struct {
	mu sync.RWMutex
	m  map[string]member
}

func newMemberTable() *memberTable { return &memberTable{m: map[string]member{}} }

func (t *memberTable) set(n *memberlist.Node, state string) {
	var meta nodeMeta
	_ = json.Unmarshal(n.Meta, &meta)
	t.mu.Lock()
	defer t.mu.Unlock()
	since := time.Now()
	if old, ok := t.m[n.Name]; ok && old.State == state {
		since = old.Since
	}
	t.m[n.Name] = member{
		ID:     n.Name,
		Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State:  state,
		Meta:   meta,
		Since:  since,
	}
}

func (t *memberTable) get(id string) (member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.m[id]
	return m, ok
}

// list returns all known members sorted by id.
func (t *memberTable) list() []member {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]member, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// alive returns alive members of datacenter dc, sorted by id.
func (t *memberTable) alive(dc string) []member {
	return slices.DeleteFunc(t.list(), func(m member) bool {
		return m.State != StateAlive || m.Meta.Datacenter != dc || m.Meta.Raft == ""
	})
}

// gossipDelegate implements memberlist's Delegate and EventDelegate. Its
// callbacks run on memberlist goroutines and must not block.
type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	d.n.bootMu.Lock()
	booted := d.n.booted
	d.n.bootMu.Unlock()
	b, _ := json.Marshal(nodeMeta{
		Datacenter: d.n.cfg.Datacenter,
		HTTP:       d.n.cfg.HTTPAddr,
		Raft:       string(d.n.cfg.RaftTransport.LocalAddr()),
		Booted:     booted,
		Full:       d.n.diskFull.Load(),
	})
	if len(b) > limit {
		d.n.log.Error("gossip metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (gossipDelegate) NotifyMsg([]byte)                           {}
func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d gossipDelegate) NotifyJoin(m *memberlist.Node) {
	d.n.members.set(m, StateAlive)
	d.n.signal()
}

func (d gossipDelegate) NotifyLeave(m *memberlist.Node) {
	state := StateDead
	if m.State == memberlist.StateLeft {
		state = StateLeft
	}
	d.n.members.set(m, state)
	d.n.signal()
}

func (d gossipDelegate) NotifyUpdate(m *memberlist.Node) {
	d.n.members.set(m, StateAlive)
	d.n.signal()
}

func (n *Node) startGossip() error {
	var mc *memberlist.Config
	if n.cfg.Gossip != nil {
		c := *n.cfg.Gossip
		mc = &c
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	host, port, err := splitHostPort(n.cfg.GossipBind)
	if err != nil {
		return fmt.Errorf("gossip bind address: %w", err)
	}
	mc.Name = n.cfg.ID
	if mc.DeadNodeReclaimTime == 0 {
		// A node restarted at another address (a container's new IP) takes
		// its name back once its old self is declared dead; memberlist's
		// default never allows that and peers reject it until the dead
		// entry is reaped, which took a minute in the chaos suite.
		mc.DeadNodeReclaimTime = time.Second
	}
	mc.BindAddr, mc.BindPort = host, port
	ahost, aport, err := splitHostPort(n.cfg.GossipAdvertise)
	if err != nil {
		return fmt.Errorf("gossip advertise address: %w", err)
	}
	mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	d := gossipDelegate{n}
	mc.Delegate, mc.Events = d, d
	mc.Logger = n.log.Named("gossip").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	mc.LogOutput = nil
	// memberlist encrypts with the primary key and reads with any of the
	// ring; GossipVerifyIncoming (its default) drops plain packets.
	ring, err := memberlist.NewKeyring(gossipKeys(n.cfg.AcceptKeys), gossipKey(n.cfg.ClusterKey))
	if err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	mc.Keyring = ring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip on %s: %w", n.cfg.GossipBind, err)
	}
	n.gossip = ml
	return nil
}

// gossipKey turns a cluster key into memberlist's AES-256 key; any
// passphrase becomes one.
func gossipKey(clusterKey string) []byte {
	k := sha256.Sum256([]byte("pier-gossip:" + clusterKey))
	return k[:]
}

func gossipKeys(clusterKeys []string) [][]byte {
	out := make([][]byte, len(clusterKeys))
	for i, k := range clusterKeys {
		out[i] = gossipKey(k)
	}
	return out
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return h, port, nil
}

// peersFile remembers the gossip addresses of members, so that a restarted
// node finds the cluster again even when it was started without --join.
func (n *Node) peersFile() string { return filepath.Join(n.cfg.DataDir, "peers.json") }

func (n *Node) loadPeers() []string {
	b, err := os.ReadFile(n.peersFile())
	if err != nil {
		return nil
	}
	var addrs []string
	_ = json.Unmarshal(b, &addrs)
	return addrs
}

func (n *Node) savePeers() {
	var addrs []string
	for _, m := range n.members.list() {
		if m.ID != n.cfg.ID && m.State == StateAlive {
			addrs = append(addrs, m.Gossip)
		}
	}
	if len(addrs) == 0 {
		return
	}
	b, _ := json.Marshal(addrs)
	tmp := n.peersFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, n.peersFile())
	}
}

// unseenPeers returns the last gossip addresses of members this node has
// seen that gossip does not now show alive, except those that left. A peer
// restarted elsewhere may answer at none of them, but then another member
// that traded addresses with it does, and the exchange tells both sides.
func (n *Node) unseenPeers() []string {
	alive := map[string]bool{}
	for _, m := range n.gossip.Members() {
		alive[m.Name] = true
	}
	var addrs []string
	for _, m := range n.members.list() {
		if m.ID == n.cfg.ID || alive[m.ID] || m.State == StateLeft || n.fsm.NodeState(m.ID) == fsm.NodeLeft || m.Gossip == "" {
			continue
		}
		addrs = append(addrs, m.Gossip)
	}
	addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == n.cfg.GossipAdvertise })
	return slices.Compact(slices.Sorted(slices.Values(addrs)))
}

// joinLoop joins the configured and remembered peers, and tries again
// whenever the node finds itself alone, so a node that restarted or was cut
// off finds its cluster without an operator.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	backoff := 200 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.gossip.NumMembers() > 1 {
			n.savePeers()
			backoff = 200 * time.Millisecond
			t.Reset(10 * time.Second)
			if missing := n.unseenPeers(); len(missing) > 0 {
				// Members this node knew that gossip does not show alive:
				// a push/pull with them tells them we are back (at a new
				// address, maybe) without waiting for gossip to find out.
				if got, err := n.gossip.Join(missing); err == nil || got > 0 {
					n.log.Debug("rejoined members", "contacted", got)
				}
				t.Reset(2 * time.Second)
			}
			continue
		}
		targets := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(n.cfg.Join), n.loadPeers()...))))
		targets = slices.DeleteFunc(targets, func(a string) bool { return a == n.cfg.GossipAdvertise })
		if len(targets) > 0 {
			if got, err := n.gossip.Join(targets); err != nil && got == 0 {
				n.log.Debug("join failed, will retry", "targets", targets, "error", err)
			} else {
				n.log.Info("joined cluster", "contacted", got)
			}
		}
		t.Reset(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}
