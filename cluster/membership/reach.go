package membership

import (
	"sync"
	"time"
)

// Reachability is what calls to other nodes taught, faster than gossip:
// gossip takes seconds to declare a killed node dead, and a node that just
// refused a shard stream should get no new shards meanwhile.
type reach struct {
	mu          sync.Mutex
	now         func() time.Time
	unreachable map[string]time.Time // node -> when it last refused a call
	reached     map[string]time.Time // node -> when a call last succeeded
}

func newReach(now func() time.Time) *reach {
	return &reach{now: now, unreachable: map[string]time.Time{}, reached: map[string]time.Time{}}
}

// UnreachableFor is how long a node that refused a call is left out of
// new placements.
const UnreachableFor = 10 * time.Second

// MarkUnreachable records that node id refused a call.
func (p *Pool) MarkUnreachable(id string) {
	r := p.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id] = r.now()
	delete(r.reached, id)
}

// MarkReached records that a call to node id succeeded.
func (p *Pool) MarkReached(id string) {
	r := p.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reached[id] = r.now()
}

// RecentlyUnreachable reports whether node id refused a call within
// UnreachableFor.
func (p *Pool) RecentlyUnreachable(id string) bool {
	r := p.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.unreachable[id]
	if !ok {
		return false
	}
	if r.now().Sub(at) > UnreachableFor {
		delete(r.unreachable, id)
		return false
	}
	return true
}

// ReachedWithin reports whether a call to node id succeeded within d.
func (p *Pool) ReachedWithin(id string, d time.Duration) bool {
	r := p.reach
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.reached[id]
	return ok && r.now().Sub(at) < d
}
