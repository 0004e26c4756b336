package membership

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// clock is a settable time for the table and the reachability marks.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestReachabilityMarksExpire(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &Pool{reach: newReach(c.now)}
	if p.RecentlyUnreachable("n2") || p.ReachedWithin("n2", time.Second) {
		t.Fatal("a node never called is marked")
	}
	p.MarkReached("n2")
	if !p.ReachedWithin("n2", time.Second) {
		t.Fatal("a call that just succeeded is not remembered")
	}
	c.add(2 * time.Second)
	if p.ReachedWithin("n2", time.Second) {
		t.Fatal("a success two seconds old counts as within one")
	}
	p.MarkReached("n2")
	p.MarkUnreachable("n2")
	if !p.RecentlyUnreachable("n2") || p.ReachedWithin("n2", time.Hour) {
		t.Fatal("a refusal must mark the node unreachable and forget its last success")
	}
	c.add(UnreachableFor + time.Second)
	if p.RecentlyUnreachable("n2") {
		t.Fatalf("the unreachable mark outlived %s", UnreachableFor)
	}
}

func TestTableKeepsDeadNodesAndWhenTheyChanged(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	tb := newTable(c.now)
	node := func(name, dc string) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: net.ParseIP("10.0.0.1"), Port: 7946,
			Meta: []byte(fmt.Sprintf(`{"dc":%q,"http":"10.0.0.1:8080","raft":"10.0.0.1:7000"}`, dc))}
	}
	tb.set(node("b", "dc1"), StateAlive)
	tb.set(node("a", "dc1"), StateAlive)
	tb.set(node("c", "dc2"), StateAlive)
	start := c.now()
	c.add(time.Minute)
	tb.set(node("a", "dc1"), StateAlive) // an update, not a change of state
	if m, _ := tb.get("a"); !m.Since.Equal(start) {
		t.Fatalf("since moved on an update that kept the state: %v", m.Since)
	}
	tb.set(node("b", "dc1"), StateDead)
	m, ok := tb.get("b")
	if !ok || m.State != StateDead || !m.Since.Equal(c.now()) || m.Gossip != "10.0.0.1:7946" || m.Meta.HTTP != "10.0.0.1:8080" {
		t.Fatalf("dead member: %+v", m)
	}
	if l := tb.list(); len(l) != 3 || l[0].ID != "a" || l[1].ID != "b" || l[2].ID != "c" {
		t.Fatalf("list %v, want a, b, c with the dead one kept", l)
	}
	if a := tb.alive("dc1"); len(a) != 1 || a[0].ID != "a" {
		t.Fatalf("alive in dc1: %v, want a alone", a)
	}
}

func TestNotifyCoalescesAndNeverBlocks(t *testing.T) {
	p := &Pool{}
	a, b := p.Subscribe(), p.Subscribe()
	for range 5 {
		p.Notify() // must not block though nobody reads
	}
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("a subscriber missed the change")
		}
		select {
		case <-ch:
			t.Fatal("five changes while one was pending gave two wake-ups")
		default:
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startPool(t *testing.T, id, key string, join ...string) *Pool {
	t.Helper()
	mc := memberlist.DefaultLocalConfig()
	mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	p, err := Start(Config{
		ID: id, Datacenter: "dc1", DataDir: t.TempDir(), Bind: freeAddr(t), Join: join,
		ClusterKey: key, Memberlist: mc,
		LocalMeta: func() Meta { return Meta{Datacenter: "dc1", HTTP: id + ":8080", Raft: id + ":7000"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoolsWithTheKeyJoinAndOthersDoNot(t *testing.T) {
	a := startPool(t, "a", "key-1")
	changed := a.Subscribe()
	b := startPool(t, "b", "key-1", a.cfg.Advertise)
	waitFor(t, "a and b to see each other", func() bool {
		return len(a.Alive("dc1")) == 2 && len(b.Alive("dc1")) == 2
	})
	select {
	case <-changed:
	default:
		t.Fatal("a join was not announced to subscribers")
	}
	if m, _ := a.Get("b"); m.Meta.HTTP != "b:8080" {
		t.Fatalf("a sees b's metadata as %+v", m.Meta)
	}

	outsider := startPool(t, "x", "another-key")
	if got, err := outsider.Join([]string{a.cfg.Advertise}); err == nil || got != 0 {
		t.Fatalf("a join with another key answered %d members, %v", got, err)
	}
	if _, ok := a.Get("x"); ok || outsider.ml.NumMembers() != 1 {
		t.Fatal("a node with another key got into the pool")
	}

	b.Shutdown()
	waitFor(t, "a to see b dead", func() bool {
		m, _ := a.Get("b")
		return m.State == StateDead
	})
}
