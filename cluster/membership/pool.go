// Package membership is a node's view of its cluster's members: the
// memberlist gossip pool (encrypted and verified with the cluster key), a
// table that remembers every node seen (memberlist forgets dead ones), what
// calls to other nodes taught about reaching them, and the loop that keeps
// the node joined. Changes are announced to subscribers on channels, never
// by callbacks into the node.
package membership

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Config builds a Pool.
type Config struct {
	ID         string
	Datacenter string
	// DataDir keeps peers.json, the members' last gossip addresses.
	DataDir string
	// PeersFile, when set, names that file instead (a second pool of the
	// same node, such as the WAN pool of cluster/federation, keeps its own).
	PeersFile string
	// Bind and Advertise are host:port; Advertise defaults to Bind.
	Bind, Advertise string
	// Join lists gossip addresses of existing members.
	Join []string
	// ClusterKey encrypts gossip; AcceptKeys are read but not sent with
	// (the middle steps of a rotation).
	ClusterKey string
	AcceptKeys []string
	// Memberlist, when set, replaces memberlist's LAN defaults (tests use
	// short timeouts and may set its Transport); identity, addresses,
	// delegates, logger and keyring are filled in.
	Memberlist *memberlist.Config
	// LocalMeta returns what this node tells the others; gossip asks for
	// it on its own goroutines, so it must not block.
	LocalMeta func() Meta
	// Left reports whether the cluster agreed that node id left: such a
	// node is not looked for when it is not seen.
	Left   func(id string) bool
	Now    func() time.Time
	Logger hclog.Logger
}

// Pool is one node's membership of its cluster's gossip pool.
type Pool struct {
	cfg   Config
	log   hclog.Logger
	ml    *memberlist.Memberlist
	table *table
	reach *reach

	subMu sync.Mutex
	subs  []chan struct{}

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// Start creates the gossip pool on cfg.Bind and starts the loop that joins
// cfg.Join and the remembered peers, and rejoins whenever the node finds
// itself alone.
func Start(cfg Config) (*Pool, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Bind
	}
	if cfg.Left == nil {
		cfg.Left = func(string) bool { return false }
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, table: newTable(cfg.Now), reach: newReach(cfg.Now), stop: make(chan struct{})}
	mc, err := p.memberlistConfig()
	if err != nil {
		return nil, err
	}
	if p.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.Bind, err)
	}
	p.wg.Go(p.joinLoop)
	return p, nil
}

func (p *Pool) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	if p.cfg.Memberlist != nil {
		c := *p.cfg.Memberlist
		mc = &c
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	host, port, err := splitHostPort(p.cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip bind address: %w", err)
	}
	mc.Name = p.cfg.ID
	if mc.DeadNodeReclaimTime == 0 {
		// A node restarted at another address (a container's new IP) takes
		// its name back once its old self is declared dead; memberlist's
		// default never allows that and peers reject it until the dead
		// entry is reaped, which took a minute in the chaos suite.
		mc.DeadNodeReclaimTime = time.Second
	}
	mc.BindAddr, mc.BindPort = host, port
	ahost, aport, err := splitHostPort(p.cfg.Advertise)
	if err != nil {
		return nil, fmt.Errorf("gossip advertise address: %w", err)
	}
	mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	d := delegate{p}
	mc.Delegate, mc.Events = d, d
	mc.Logger = p.log.Named("gossip").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	mc.LogOutput = nil
	// memberlist encrypts with the primary key and reads with any of the
	// ring; GossipVerifyIncoming (its default) drops plain packets.
	ring, err := memberlist.NewKeyring(gossipKeys(p.cfg.AcceptKeys), gossipKey(p.cfg.ClusterKey))
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	mc.Keyring = ring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	return mc, nil
}

// Subscribe returns a channel that receives a value after members change;
// changes that come while one is pending coalesce into it.
func (p *Pool) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	p.subMu.Lock()
	p.subs = append(p.subs, ch)
	p.subMu.Unlock()
	return ch
}

// Notify tells every subscriber that something they watch changed, without
// blocking (gossip callbacks call it).
func (p *Pool) Notify() {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	for _, ch := range p.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Get returns what gossip last said of node id.
func (p *Pool) Get(id string) (Member, bool) { return p.table.get(id) }

// List returns every node seen, sorted by id.
func (p *Pool) List() []Member { return p.table.list() }

// Alive returns the alive members of datacenter dc that advertise a raft
// address, sorted by id.
func (p *Pool) Alive(dc string) []Member { return p.table.alive(dc) }

// Join contacts the members at addrs and returns how many answered.
func (p *Pool) Join(addrs []string) (int, error) { return p.ml.Join(addrs) }

// Leave tells the pool this node is leaving, waiting up to timeout.
func (p *Pool) Leave(timeout time.Duration) error { return p.ml.Leave(timeout) }

// UpdateMeta sends this node's metadata (LocalMeta) to the others.
func (p *Pool) UpdateMeta(timeout time.Duration) error { return p.ml.UpdateNode(timeout) }

// Shutdown stops the join loop and leaves gossip without a word: to the
// others it looks like a failure.
func (p *Pool) Shutdown() {
	p.stopOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		if err := p.ml.Shutdown(); err != nil {
			p.log.Warn("gossip shutdown", "error", err)
		}
	})
}

// delegate implements memberlist's Delegate and EventDelegate. Its
// callbacks run on memberlist goroutines and must not block.
type delegate struct{ p *Pool }

func (d delegate) NodeMeta(limit int) []byte {
	var m Meta
	if d.p.cfg.LocalMeta != nil {
		m = d.p.cfg.LocalMeta()
	}
	b, _ := json.Marshal(m)
	if len(b) > limit {
		d.p.log.Error("gossip metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d delegate) NotifyJoin(m *memberlist.Node) {
	d.p.table.set(m, StateAlive)
	d.p.Notify()
}

func (d delegate) NotifyLeave(m *memberlist.Node) {
	state := StateDead
	if m.State == memberlist.StateLeft {
		state = StateLeft
	}
	d.p.table.set(m, state)
	d.p.Notify()
}

func (d delegate) NotifyUpdate(m *memberlist.Node) {
	d.p.table.set(m, StateAlive)
	d.p.Notify()
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
func (p *Pool) peersFile() string {
	if p.cfg.PeersFile != "" {
		return filepath.Join(p.cfg.DataDir, p.cfg.PeersFile)
	}
	return filepath.Join(p.cfg.DataDir, "peers.json")
}

func (p *Pool) loadPeers() []string {
	b, err := os.ReadFile(p.peersFile())
	if err != nil {
		return nil
	}
	var addrs []string
	_ = json.Unmarshal(b, &addrs)
	return addrs
}

func (p *Pool) savePeers() {
	var addrs []string
	for _, m := range p.table.list() {
		if m.ID != p.cfg.ID && m.State == StateAlive {
			addrs = append(addrs, m.Gossip)
		}
	}
	if len(addrs) == 0 {
		return
	}
	b, _ := json.Marshal(addrs)
	tmp := p.peersFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, p.peersFile())
	}
}

// unseenPeers returns the last gossip addresses of members this node has
// seen that gossip does not now show alive, except those that left. A peer
// restarted elsewhere may answer at none of them, but then another member
// that traded addresses with it does, and the exchange tells both sides.
func (p *Pool) unseenPeers() []string {
	alive := map[string]bool{}
	for _, m := range p.ml.Members() {
		alive[m.Name] = true
	}
	var addrs []string
	for _, m := range p.table.list() {
		if m.ID == p.cfg.ID || alive[m.ID] || m.State == StateLeft || p.cfg.Left(m.ID) || m.Gossip == "" {
			continue
		}
		addrs = append(addrs, m.Gossip)
	}
	addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == p.cfg.Advertise })
	return slices.Compact(slices.Sorted(slices.Values(addrs)))
}

// joinLoop joins the configured and remembered peers, and tries again
// whenever the node finds itself alone, so a node that restarted or was cut
// off finds its cluster without an operator.
func (p *Pool) joinLoop() {
	backoff := 200 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if p.ml.NumMembers() > 1 {
			p.savePeers()
			backoff = 200 * time.Millisecond
			t.Reset(10 * time.Second)
			if missing := p.unseenPeers(); len(missing) > 0 {
				// Members this node knew that gossip does not show alive:
				// a push/pull with them tells them we are back (at a new
				// address, maybe) without waiting for gossip to find out.
				if got, err := p.ml.Join(missing); err == nil || got > 0 {
					p.log.Debug("rejoined members", "contacted", got)
				}
				t.Reset(2 * time.Second)
			}
			continue
		}
		targets := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(p.cfg.Join), p.loadPeers()...))))
		targets = slices.DeleteFunc(targets, func(a string) bool { return a == p.cfg.Advertise })
		if len(targets) > 0 {
			if got, err := p.ml.Join(targets); err != nil && got == 0 {
				p.log.Debug("join failed, will retry", "targets", targets, "error", err)
			} else {
				p.log.Info("joined cluster", "contacted", got)
			}
		}
		t.Reset(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}
