package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

// wanLink is the WAN between two test datacenters as the replicators see
// it: while cut, every feed read and content fetch fails, both ways, as
// when the link between the sites is down (gossip inside each site goes
// on).
type wanLink struct {
	cut atomic.Bool
	// onFetch, when set, wraps each content fetch's body (a test stalls a
	// copy with it).
	onFetch atomic.Pointer[func(ctx context.Context, name string, body io.ReadCloser) io.ReadCloser]
}

// cuttablePeers is a node's peer client whose calls to other datacenters
// (feed and content) fail while the link is cut.
type cuttablePeers struct {
	cluster.PeerClient
	link *wanLink
}

func (p cuttablePeers) Feed(ctx context.Context, addr string, after uint64, limit int) (federation.FeedPage, error) {
	if p.link.cut.Load() {
		return federation.FeedPage{}, fmt.Errorf("%w: WAN cut", cluster.ErrPeerUnreachable)
	}
	return p.PeerClient.(federation.Remote).Feed(ctx, addr, after, limit)
}

func (p cuttablePeers) Fetch(ctx context.Context, addr, name string) (io.ReadCloser, error) {
	if p.link.cut.Load() {
		return nil, fmt.Errorf("%w: WAN cut", cluster.ErrPeerUnreachable)
	}
	rc, err := p.PeerClient.(federation.Remote).Fetch(ctx, addr, name)
	if h := p.link.onFetch.Load(); h != nil && err == nil {
		return (*h)(ctx, name, rc), nil
	}
	return rc, err
}

// federated starts two 3-node clusters, dc1 and dc2, linked over WAN
// gossip on 127.0.0.1.
func federated(t *testing.T) (dc1, dc2 *Cluster, link *wanLink) {
	t.Helper()
	link = &wanLink{}
	wanPorts := freePorts(t, 6)
	wanAddr := func(dc, i int) string { return fmt.Sprintf("127.0.0.1:%d", wanPorts[dc*3+i]) }
	tune := func(dc int, name string) func(int, *server.Config) {
		return func(i int, cfg *server.Config) {
			cfg.Node.Datacenter = name
			cfg.Node.WANBind = wanAddr(dc, i)
			cfg.Node.JoinWAN = []string{wanAddr(0, 0)}
			cfg.Node.WANGossip = GossipConfig()
			cfg.Node.FederationInterval = 100 * time.Millisecond
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient { return cuttablePeers{p, link} }
		}
	}
	dc1 = New(t, 3, Options{Tune: tune(0, "dc1")})
	dc2 = New(t, 3, Options{Tune: tune(1, "dc2")})
	// Each cluster sees the other in the WAN pool.
	Eventually(t, Wait(), func() error {
		for _, c := range []*Cluster{dc1, dc2} {
			for _, n := range c.Nodes {
				st, err := n.Srv.Node.FederationStatus(context.Background())
				if err != nil {
					return err
				}
				if len(st) != 1 || !st[0].Reachable {
					return fmt.Errorf("%s of %s: federation status %+v", n.ID, n.Srv.Node.Datacenter(), st)
				}
			}
		}
		return nil
	})
	return dc1, dc2, link
}

func fedPut(t *testing.T, base, name string, body []byte, header http.Header) {
	t.Helper()
	r := Do(t, http.MethodPut, base+"/artifacts/"+name, bytes.NewReader(body), header)
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		t.Fatalf("push %s to %s: %d %s", name, base, r.Status, r.Body)
	}
}

// pulled reports whether every node of c serves name with exactly body.
func pulled(t *testing.T, c *Cluster, name string, body []byte) error {
	t.Helper()
	for _, n := range c.Nodes {
		r := Do(t, http.MethodGet, n.URL+"/artifacts/"+name, nil, nil)
		if r.Status != http.StatusOK {
			return fmt.Errorf("%s: GET %s: %d %s", n.ID, name, r.Status, r.Body)
		}
		if !bytes.Equal(r.Body, body) {
			return fmt.Errorf("%s: GET %s: %d bytes, not the pushed ones", n.ID, name, len(r.Body))
		}
	}
	return nil
}

// A push to dc1 pulls identical from every dc2 node, with its origin,
// created time and metadata; tag changes and deletions follow.
func TestFederationReplicatesPushTagsAndDeletes(t *testing.T) {
	dc1, dc2, _ := federated(t)
	body := bytes.Repeat([]byte("federated bytes "), 20000) // 320 KB: erasure-coded
	start := time.Now()
	fedPut(t, dc1.Nodes[1].URL, "team/app-1.0.jar", body, http.Header{
		"X-Pier-Version": {"1.0"}, "X-Pier-Commit": {"abc123"}, "X-Pier-Label": {"team=core"}, "X-Pier-Tag": {"staging"}})
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "team/app-1.0.jar", body) })
	t.Logf("replication lag dc1 -> every dc2 node: %s", time.Since(start).Round(time.Millisecond))

	src, _ := dc1.Nodes[0].Srv.Node.FSM().Get("team/app-1.0.jar")
	for _, n := range dc2.Nodes {
		f := n.Srv.Node.FSM()
		a, ok := f.Get("team/app-1.0.jar")
		if !ok || a.Digest != Digest(body) || a.Version != "1.0" || a.Commit != "abc123" ||
			a.Labels["team"] != "core" || !a.HasTag("staging") || !a.Created.Equal(src.Created) {
			t.Fatalf("%s: replicated %+v, source %+v", n.ID, a, src)
		}
		if o := f.Origin("team/app-1.0.jar"); o != "dc1" {
			t.Fatalf("%s: origin %q", n.ID, o)
		}
	}

	// A tag added in dc1 shows in dc2, one removed there goes too.
	Do(t, http.MethodPut, dc1.Nodes[0].URL+"/api/v1/tags/production-ready?name=team/app-1.0.jar", nil, nil)
	Do(t, http.MethodDelete, dc1.Nodes[2].URL+"/api/v1/tags/staging?name=team/app-1.0.jar", nil, nil)
	Eventually(t, Wait(), func() error {
		for _, n := range dc2.Nodes {
			a, _ := n.Srv.Node.FSM().Get("team/app-1.0.jar")
			if !a.HasTag("production-ready") || a.HasTag("staging") {
				return fmt.Errorf("%s: tags %v", n.ID, a.Tags)
			}
		}
		return nil
	})
	// And a tag added in dc2 shows in dc1.
	Do(t, http.MethodPut, dc2.Nodes[0].URL+"/api/v1/tags/verified-dc2?name=team/app-1.0.jar", nil, nil)
	Eventually(t, Wait(), func() error {
		a, _ := dc1.Nodes[0].Srv.Node.FSM().Get("team/app-1.0.jar")
		if !a.HasTag("verified-dc2") || !a.HasTag("production-ready") {
			return fmt.Errorf("dc1 tags %v", a.Tags)
		}
		return nil
	})

	// A deletion in dc1 is a tombstone in dc2, which keeps the binding.
	if r := Do(t, http.MethodDelete, dc1.Nodes[0].URL+"/api/v1/artifacts/team/app-1.0.jar", nil, nil); r.Status >= 300 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	Eventually(t, Wait(), func() error {
		for _, n := range dc2.Nodes {
			d, live, ok := n.Srv.Node.FSM().Binding("team/app-1.0.jar")
			if !ok || live || d != Digest(body) {
				return fmt.Errorf("%s: binding %s live=%v ok=%v", n.ID, d, live, ok)
			}
		}
		return nil
	})
	if r := Do(t, http.MethodPut, dc2.Nodes[1].URL+"/artifacts/team/app-1.0.jar", bytes.NewReader([]byte("other")), nil); r.Status != http.StatusConflict {
		t.Fatalf("rebinding a replicated tombstone: %d %s", r.Status, r.Body)
	}
}

// While the WAN is cut both sides take pushes and serve their own; after
// it heals both hold everything, and a name pushed with other bytes on
// each side is kept as it is on both and listed as a conflict on both.
func TestFederationCutHealAndConflict(t *testing.T) {
	dc1, dc2, link := federated(t)
	link.cut.Store(true)
	const each = 10
	bodies := map[string][]byte{}
	for i := range each {
		for dc, c := range []*Cluster{dc1, dc2} {
			name := fmt.Sprintf("cut/dc%d-%02d.bin", dc+1, i)
			bodies[name] = []byte(fmt.Sprintf("%s pushed while the WAN was cut", name))
			fedPut(t, c.Nodes[i%3].URL, name, bodies[name], nil)
		}
	}
	mine, theirs := []byte("dc1's bytes of the same name"), []byte("dc2's bytes of the same name")
	fedPut(t, dc1.Nodes[0].URL, "clash.bin", mine, nil)
	fedPut(t, dc2.Nodes[0].URL, "clash.bin", theirs, nil)
	// Each side serves its own meanwhile.
	if err := pulled(t, dc1, "cut/dc1-00.bin", bodies["cut/dc1-00.bin"]); err != nil {
		t.Fatal(err)
	}
	if err := pulled(t, dc2, "cut/dc2-00.bin", bodies["cut/dc2-00.bin"]); err != nil {
		t.Fatal(err)
	}
	Eventually(t, Wait(), func() error {
		st, _ := dc2.Nodes[0].Srv.Node.FederationStatus(context.Background())
		if len(st) != 1 || st[0].Reachable || (dc2.Nodes[0].Srv.Node.IsLeader() && st[0].Errors == 0) {
			return fmt.Errorf("dc2 status while cut: %+v", st)
		}
		return nil
	})

	healed := time.Now()
	link.cut.Store(false)
	for name, body := range bodies {
		Eventually(t, Wait(), func() error {
			if err := pulled(t, dc1, name, body); err != nil {
				return err
			}
			return pulled(t, dc2, name, body)
		})
	}
	t.Logf("after the heal both sides held all %d artifacts in %s", len(bodies), time.Since(healed).Round(time.Millisecond))
	if err := pulled(t, dc1, "clash.bin", mine); err != nil {
		t.Fatal(err)
	}
	if err := pulled(t, dc2, "clash.bin", theirs); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		c             *Cluster
		local, remote []byte
	}{{dc1, mine, theirs}, {dc2, theirs, mine}} {
		Eventually(t, Wait(), func() error {
			for _, n := range side.c.Nodes {
				st, err := n.Srv.Node.FederationStatus(context.Background())
				if err != nil {
					return err
				}
				if len(st) != 1 || len(st[0].Conflicts) != 1 {
					return fmt.Errorf("%s: status %+v", n.ID, st)
				}
				cf := st[0].Conflicts[0]
				if cf.Name != "clash.bin" || cf.LocalDigest != Digest(side.local) || cf.RemoteDigest != Digest(side.remote) {
					return fmt.Errorf("%s: conflict %+v", n.ID, cf)
				}
				if !st[0].Reachable || st[0].LagArtifacts != 0 {
					return fmt.Errorf("%s: not caught up: %+v", n.ID, st[0])
				}
			}
			return nil
		})
	}
}

// A rule with a tag copies only artifacts carrying it, and one as soon as
// it gets the tag.
func TestFederationTagRule(t *testing.T) {
	dc1, dc2, _ := federated(t)
	rule := fsm.ReplicationRule{From: "dc1", To: "dc2", Tag: "production-ready"}
	if err := dc2.Nodes[0].Srv.Node.SetReplicationRule(context.Background(), rule, true, "test"); err != nil {
		t.Fatal(err)
	}
	plain, tagged := []byte("not promoted"), []byte("promoted at push")
	fedPut(t, dc1.Nodes[0].URL, "r/plain.bin", plain, nil)
	fedPut(t, dc1.Nodes[0].URL, "r/tagged.bin", tagged, http.Header{"X-Pier-Tag": {"production-ready"}})
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "r/tagged.bin", tagged) })
	// The feed is read in order: once the tagged one is here and the
	// checkpoint is past both, the plain one was passed over.
	Eventually(t, Wait(), func() error {
		cp, _ := dc2.Nodes[0].Srv.Node.FSM().Checkpoint("dc1")
		a, _ := dc1.Nodes[0].Srv.Node.FSM().Get("r/tagged.bin")
		if cp.Index < a.Seq {
			return fmt.Errorf("checkpoint %d, tagged at %d", cp.Index, a.Seq)
		}
		return nil
	})
	for _, n := range dc2.Nodes {
		if _, _, ok := n.Srv.Node.FSM().Binding("r/plain.bin"); ok {
			t.Fatalf("%s holds the untagged artifact", n.ID)
		}
	}
	Do(t, http.MethodPut, dc1.Nodes[1].URL+"/api/v1/tags/production-ready?name=r/plain.bin", nil, nil)
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "r/plain.bin", plain) })
}

// When the replicating leader goes, the new one continues from the
// checkpoint in raft: nothing copied twice as a new object, nothing
// skipped.
func TestFederationNewLeaderContinues(t *testing.T) {
	dc1, dc2, _ := federated(t)
	first := []byte("before the leader goes")
	fedPut(t, dc1.Nodes[0].URL, "lead/first.bin", first, nil)
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "lead/first.bin", first) })
	leader := dc2.Leader()
	before, _ := dc2.Nodes[leader].Srv.Node.FSM().Checkpoint("dc1")
	dc2.Kill(leader)
	var rest []int
	for i := range dc2.Nodes {
		if i != leader {
			rest = append(rest, i)
		}
	}
	second := []byte("after the leader went")
	fedPut(t, dc1.Nodes[1].URL, "lead/second.bin", second, nil)
	Eventually(t, Wait(), func() error {
		for _, i := range rest {
			r := Do(t, http.MethodGet, dc2.Nodes[i].URL+"/artifacts/lead/second.bin", nil, nil)
			if r.Status != http.StatusOK || !bytes.Equal(r.Body, second) {
				return fmt.Errorf("%s: %d", dc2.Nodes[i].ID, r.Status)
			}
		}
		return nil
	})
	// The checkpoint moves in a raft entry of its own after the copy's:
	// a follower may serve the copy before it applies that one.
	Eventually(t, Wait(), func() error {
		after, _ := dc2.Nodes[rest[0]].Srv.Node.FSM().Checkpoint("dc1")
		if after.Index <= before.Index {
			return fmt.Errorf("checkpoint %d after the new leader copied, %d before", after.Index, before.Index)
		}
		return nil
	})
	a, _ := dc2.Nodes[rest[0]].Srv.Node.FSM().Get("lead/first.bin")
	if a.Seq == 0 {
		t.Fatal("first artifact lost")
	}
}
