package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

// ptRemote is what the test does to one datacenter's calls to the
// others: count content fetches, hold them until released, or flip a byte
// of what they bring (a remote serving wrong bytes).
type ptRemote struct {
	fetches [3]atomic.Int32 // by node
	corrupt atomic.Bool
	mu      sync.Mutex
	gate    chan struct{} // nil: fetches run at once
}

type ptPeers struct {
	cluster.PeerClient
	r    *ptRemote
	node int
}

func (p ptPeers) Feed(ctx context.Context, addr string, after uint64, limit int) (federation.FeedPage, error) {
	return p.PeerClient.(federation.Remote).Feed(ctx, addr, after, limit)
}

func (p ptPeers) Lookup(ctx context.Context, addr, name string) (fsm.FeedRecord, error) {
	return p.PeerClient.(federation.Looker).Lookup(ctx, addr, name)
}

func (p ptPeers) Fetch(ctx context.Context, addr, name string) (io.ReadCloser, error) {
	p.r.fetches[p.node].Add(1)
	rc, err := p.PeerClient.(federation.Remote).Fetch(ctx, addr, name)
	if err != nil {
		return nil, err
	}
	p.r.mu.Lock()
	gate := p.r.gate
	p.r.mu.Unlock()
	return &ptBody{ReadCloser: rc, gate: gate, corrupt: p.r.corrupt.Load()}, nil
}

type ptBody struct {
	io.ReadCloser
	gate    chan struct{}
	corrupt bool
	n       int64
}

func (b *ptBody) Read(p []byte) (int, error) {
	if b.gate != nil {
		<-b.gate
	}
	k, err := b.ReadCloser.Read(p)
	if b.corrupt && b.n <= 1000 && b.n+int64(k) > 1000 {
		p[1000-b.n] ^= 1
	}
	b.n += int64(k)
	return k, err
}

// pullThroughPair starts dc1 and dc2 linked over WAN gossip whose
// replicators read the feeds only when woken (an hour apart otherwise), so
// what dc1 holds is not in dc2 until a pull-through brings it.
func pullThroughPair(t *testing.T) (dc1, dc2 *Cluster, r2 *ptRemote, wake func()) {
	t.Helper()
	r1, r2 := &ptRemote{}, &ptRemote{}
	wanPorts := freePorts(t, 6)
	wanAddr := func(dc, i int) string { return fmt.Sprintf("127.0.0.1:%d", wanPorts[dc*3+i]) }
	tune := func(dc int, name string, r *ptRemote) func(int, *server.Config) {
		return func(i int, cfg *server.Config) {
			cfg.Node.Datacenter = name
			cfg.Node.WANBind = wanAddr(dc, i)
			cfg.Node.JoinWAN = []string{wanAddr(0, 0)}
			cfg.Node.WANGossip = GossipConfig()
			cfg.Node.FederationInterval = time.Hour
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient { return ptPeers{p, r, i} }
		}
	}
	dc1 = New(t, 3, Options{Tune: tune(0, "dc1", r1)})
	dc2 = New(t, 3, Options{Tune: tune(1, "dc2", r2)})
	Eventually(t, Wait(), func() error {
		for _, n := range dc2.Nodes {
			st, err := n.Srv.Node.FederationStatus(context.Background())
			if err != nil {
				return err
			}
			if len(st) != 1 || !st[0].Reachable {
				return fmt.Errorf("%s: federation status %+v", n.ID, st)
			}
		}
		return nil
	})
	// A join wakes the replicator (a one-time wake can read a dc1 node
	// that has not applied the last push yet).
	wake = func() {
		for _, n := range dc2.Nodes {
			n.Srv.Node.FederationJoin(context.Background(), []string{wanAddr(0, 0)})
		}
	}
	return dc1, dc2, r2, wake
}

func unbound(c *Cluster, name string) error {
	for _, n := range c.Nodes {
		if d, _, ok := n.Srv.Node.FSM().Binding(name); ok {
			return fmt.Errorf("%s: %s is bound to %s", n.ID, name, d)
		}
	}
	return nil
}

// A GET on a dc2 node of a name only dc1 holds streams dc1's bytes and
// binds the name in dc2 with origin dc1 and dc1's metadata; concurrent
// GETs make one fetch; a HEAD stores nothing; replication later finds the
// name bound to the same bytes and copies nothing; a name bound or deleted
// in dc2 is never pulled; a remote's wrong bytes cut the response short
// and bind nothing.
func TestPullThroughFromAnotherDatacenter(t *testing.T) {
	dc1, dc2, r2, wake := pullThroughPair(t)
	big := bytes.Repeat([]byte("pulled through "), 40000) // 600 KB: erasure-coded
	const name = "pt/app-3.0.jar"
	fedPut(t, dc1.Nodes[0].URL, name, big, http.Header{
		"X-Pier-Version": {"3.0"}, "X-Pier-Commit": {"feed01"}, "X-Pier-Label": {"team=edge"}, "X-Pier-Tag": {"production-ready"}})
	if err := unbound(dc2, name); err != nil {
		t.Fatalf("replicated before the pull: %v", err)
	}

	// The pulls go to the two followers of dc2: its leader's replicator
	// also fetches (when a leader change wakes it), and is not counted.
	lead := dc2.Leader()
	hn, gn := (lead+1)%3, (lead+2)%3

	// HEAD: the metadata, nothing fetched or stored.
	h := Do(t, http.MethodHead, dc2.Nodes[hn].URL+"/artifacts/"+name, nil, nil)
	if h.Status != http.StatusOK || h.Header.Get("ETag") != `"`+Digest(big)+`"` || h.Header.Get("Content-Length") != fmt.Sprint(len(big)) {
		t.Fatalf("HEAD: %d %v", h.Status, h.Header)
	}
	if err := unbound(dc2, name); err != nil || r2.fetches[hn].Load() != 0 {
		t.Fatalf("after HEAD: %v, %d fetches", err, r2.fetches[hn].Load())
	}

	// Two GETs on one node while the fetch is held: one fetch, both
	// answers whole.
	gate := make(chan struct{})
	r2.mu.Lock()
	r2.gate = gate
	r2.mu.Unlock()
	var wg sync.WaitGroup
	got := make([]Response, 2)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = Do(t, http.MethodGet, dc2.Nodes[gn].URL+"/artifacts/"+name, nil, nil)
		}()
		if i == 0 {
			Eventually(t, Wait(), func() error {
				if r2.fetches[gn].Load() == 0 {
					return fmt.Errorf("no fetch yet")
				}
				return nil
			})
		}
	}
	close(gate)
	wg.Wait()
	r2.mu.Lock()
	r2.gate = nil
	r2.mu.Unlock()
	for i, r := range got {
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, big) {
			t.Fatalf("GET %d: %d, %d bytes", i, r.Status, len(r.Body))
		}
	}
	if n := r2.fetches[gn].Load(); n != 1 {
		t.Fatalf("%d fetches for two pulls on one node", n)
	}
	// Bound in dc2 now, every node serves it, with dc1's metadata.
	src, _ := dc1.Nodes[0].Srv.Node.FSM().Get(name)
	Eventually(t, Wait(), func() error { return pulled(t, dc2, name, big) })
	for _, n := range dc2.Nodes {
		f := n.Srv.Node.FSM()
		a, ok := f.Get(name)
		if !ok || a.Digest != src.Digest || a.Version != "3.0" || a.Commit != "feed01" || a.Labels["team"] != "edge" ||
			!a.HasTag("production-ready") || !a.Created.Equal(src.Created) || f.Origin(name) != "dc1" {
			t.Fatalf("%s: %+v origin %q, source %+v", n.ID, a, f.Origin(name), src)
		}
	}
	var info struct {
		Origin string `json:"origin"`
	}
	if r := Do(t, http.MethodGet, dc2.Nodes[0].URL+"/api/v1/artifacts/"+name, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("info: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &info); info.Origin != "dc1" {
		t.Fatalf("info origin %q: %s", info.Origin, r.Body)
	}
	if n := r2.fetches[gn].Load() + r2.fetches[hn].Load(); n != 1 {
		t.Fatalf("%d fetches after pulls from every node", n)
	}

	// A name bound in dc2 to other bytes, and one deleted in dc2: dc2's
	// answer stands.
	fedPut(t, dc1.Nodes[0].URL, "pt/clash.bin", []byte("dc1's clash"), nil)
	fedPut(t, dc2.Nodes[0].URL, "pt/clash.bin", []byte("dc2's clash"), nil)
	fedPut(t, dc1.Nodes[0].URL, "pt/gone.bin", []byte("deleted in dc2"), nil)
	fedPut(t, dc2.Nodes[0].URL, "pt/gone.bin", []byte("deleted in dc2"), nil)
	if r := Do(t, http.MethodDelete, dc2.Nodes[0].URL+"/artifacts/pt/gone.bin", nil, nil); r.Status >= 300 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := Do(t, http.MethodGet, dc2.Nodes[1].URL+"/artifacts/pt/clash.bin", nil, nil); string(r.Body) != "dc2's clash" {
		t.Fatalf("clash: %d %q", r.Status, r.Body)
	}
	// (A node may serve the bytes until it has applied the deletion; then
	// never again, since pull-through does not bring a deleted name back.)
	Eventually(t, Wait(), func() error {
		if r := Do(t, http.MethodGet, dc2.Nodes[1].URL+"/artifacts/pt/gone.bin", nil, nil); r.Status != http.StatusNotFound {
			return fmt.Errorf("deleted here: %d %q", r.Status, r.Body)
		}
		return nil
	})
	if r := Do(t, http.MethodGet, dc2.Nodes[1].URL+"/artifacts/pt/nowhere.bin", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("held nowhere: %d %q", r.Status, r.Body)
	}

	// Wrong bytes from dc1: the client gets less than Content-Length,
	// nothing is bound; once the remote is right again the pull works.
	bad := bytes.Repeat([]byte("wrong on the wire "), 30000)
	fedPut(t, dc1.Nodes[1].URL, "pt/bad.bin", bad, nil)
	r2.corrupt.Store(true)
	resp, err := http.Get(dc2.Nodes[0].URL + "/artifacts/pt/bad.bin")
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || rerr == nil || len(body) >= len(bad) {
		t.Fatalf("corrupt pull-through: %d, %d of %d bytes, read error %v", resp.StatusCode, len(body), len(bad), rerr)
	}
	t.Logf("corrupt remote: client got %d of %d bytes, then: %v", len(body), len(bad), rerr)
	if err := unbound(dc2, "pt/bad.bin"); err != nil {
		t.Fatal(err)
	}
	r2.corrupt.Store(false)
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "pt/bad.bin", bad) })

	// Replication, woken by a rule, finds the pulled names bound to the
	// same bytes: it copies only what was not pulled.
	fedPut(t, dc1.Nodes[2].URL, "pt/later.bin", []byte("pushed after the pulls"), nil)
	rule := fsm.ReplicationRule{From: "dc1", To: "dc2", Prefix: "pt/"}
	leader := dc2.Nodes[dc2.Leader()].Srv.Node
	if err := leader.SetReplicationRule(context.Background(), rule, true, "test"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, Wait(), func() error {
		wake()
		st, err := leader.FederationStatus(context.Background())
		if err != nil || len(st) != 1 || st[0].Head == 0 || st[0].Checkpoint != st[0].Head {
			return fmt.Errorf("status %+v %v", st, err)
		}
		return nil
	})
	if d, live, ok := leader.FSM().Binding("pt/later.bin"); !ok || !live || d != Digest([]byte("pushed after the pulls")) {
		t.Fatalf("pt/later.bin not replicated: %s %v %v", d, live, ok)
	}
	st, _ := leader.FederationStatus(context.Background())
	if st[0].Copied != 1 || len(st[0].Conflicts) != 1 || st[0].Conflicts[0].Name != "pt/clash.bin" {
		t.Fatalf("replication after pull-through: copied %d, conflicts %+v", st[0].Copied, st[0].Conflicts)
	}
	if a, _ := dc2.Nodes[0].Srv.Node.FSM().Get(name); a.Digest != Digest(big) {
		t.Fatalf("%s rebound to %s", name, a.Digest)
	}
}
