package membership

import (
	"encoding/json"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the others about itself through gossip.
// memberlist caps it at 512 bytes.
type Meta struct {
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

// Member is the last known gossip view of one node.
type Member struct {
	ID     string
	Gossip string
	State  string
	Meta   Meta
	// Since is when State last changed.
	Since time.Time
}

// table remembers every node seen, including failed ones, because
// memberlist forgets dead nodes and operators still need to see them.
type table struct {
	mu  sync.RWMutex
	m   map[string]Member
	now func() time.Time
}

func newTable(now func() time.Time) *table { return &table{m: map[string]Member{}, now: now} }

func (t *table) set(n *memberlist.Node, state string) {
	var meta Meta
	_ = json.Unmarshal(n.Meta, &meta)
	t.mu.Lock()
	defer t.mu.Unlock()
	since := t.now()
	if old, ok := t.m[n.Name]; ok && old.State == state {
		since = old.Since
	}
	t.m[n.Name] = Member{
		ID:     n.Name,
		Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		State:  state,
		Meta:   meta,
		Since:  since,
	}
}

func (t *table) get(id string) (Member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.m[id]
	return m, ok
}

// list returns all known members sorted by id.
func (t *table) list() []Member {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Member, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// alive returns alive members of datacenter dc that advertise a raft
// address, sorted by id.
func (t *table) alive(dc string) []Member {
	return slices.DeleteFunc(t.list(), func(m Member) bool {
		return m.State != StateAlive || m.Meta.Datacenter != dc || m.Meta.Raft == ""
	})
}
