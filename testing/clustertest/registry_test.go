package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/transport/server"
)

type artifact struct {
	Name    string            `json:"name"`
	Size    int64             `json:"size"`
	Digest  string            `json:"digest"`
	Version string            `json:"version"`
	Commit  string            `json:"commit"`
	Created string            `json:"created"`
	Labels  map[string]string `json:"labels"`
	Tags    []string          `json:"tags"`
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// pullEverywhere checks that every running node serves name as want.
func pullEverywhere(t *testing.T, c *Cluster, name string, want []byte) {
	t.Helper()
	for _, i := range c.Running() {
		r := Do(t, "GET", c.Nodes[i].URL+"/artifacts/"+name, nil, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s from %s: %d %s", name, c.Nodes[i].ID, r.Status, r.Body)
		}
		if !bytes.Equal(r.Body, want) {
			t.Fatalf("GET %s from %s: %d bytes (want %d bytes, digest %s, got %s)",
				name, c.Nodes[i].ID, len(r.Body), len(want), Digest(want), Digest(r.Body))
		}
	}
}

func TestPushAnyNodePullAnyNode(t *testing.T) {
	c := New(t, 3, Options{})
	body := randomBytes(1, 3<<20+17)

	// The mission's curl line: curl -X POST -F "file=@myapp-v1.2.3.jar" http://NODE/upload
	r := Upload(t, c.Nodes[0].URL, "myapp-v1.2.3.jar", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var a artifact
	r.JSON(t, &a)
	if a.Name != "myapp-v1.2.3.jar" || a.Digest != Digest(body) || a.Size != int64(len(body)) {
		t.Fatalf("metadata %+v", a)
	}

	// curl -O http://OTHER-NODE/artifacts/myapp-v1.2.3.jar
	pullEverywhere(t, c, "myapp-v1.2.3.jar", body)
	g := Do(t, "GET", c.Nodes[2].URL+"/artifacts/myapp-v1.2.3.jar", nil, nil)
	for h, want := range map[string]string{
		"ETag":                `"` + Digest(body) + `"`,
		"Content-Length":      fmt.Sprint(len(body)),
		"Accept-Ranges":       "bytes",
		"Content-Disposition": `attachment; filename=myapp-v1.2.3.jar`,
	} {
		if got := g.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if g.Header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}

	// Range, HEAD and If-None-Match, served by a node without a copy.
	rg := Do(t, "GET", c.Nodes[1].URL+"/artifacts/myapp-v1.2.3.jar", nil, http.Header{"Range": {"bytes=1000000-1000099"}})
	if rg.Status != http.StatusPartialContent || !bytes.Equal(rg.Body, body[1000000:1000100]) {
		t.Fatalf("range: %d, %d bytes", rg.Status, len(rg.Body))
	}
	hd := Do(t, "HEAD", c.Nodes[1].URL+"/artifacts/myapp-v1.2.3.jar", nil, nil)
	if hd.Status != 200 || hd.Header.Get("Content-Length") != fmt.Sprint(len(body)) || len(hd.Body) != 0 {
		t.Fatalf("head: %d %v", hd.Status, hd.Header)
	}
	nm := Do(t, "GET", c.Nodes[1].URL+"/artifacts/myapp-v1.2.3.jar", nil, http.Header{"If-None-Match": {`"` + Digest(body) + `"`}})
	if nm.Status != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", nm.Status)
	}

	// PUT with metadata headers and a path name, pulled elsewhere.
	small := []byte("hello pier")
	p := Do(t, "PUT", c.Nodes[1].URL+"/artifacts/team/myapp/1.2.3/app.jar", bytes.NewReader(small), http.Header{
		"X-Pier-Version": {"1.2.3"}, "X-Pier-Commit": {"abc123"}, "X-Pier-Label": {"os=linux", "arch=amd64"},
		"X-Pier-Tag": {"staging-validated"}, "X-Checksum-Sha256": {strings.TrimPrefix(Digest(small), "sha256:")},
	})
	if p.Status != http.StatusCreated {
		t.Fatalf("put: %d %s", p.Status, p.Body)
	}
	pullEverywhere(t, c, "team/myapp/1.2.3/app.jar", small)
	var meta artifact
	Do(t, "GET", c.Nodes[2].URL+"/api/v1/artifacts/team/myapp/1.2.3/app.jar", nil, nil).JSON(t, &meta)
	if meta.Version != "1.2.3" || meta.Commit != "abc123" || meta.Labels["os"] != "linux" ||
		meta.Labels["arch"] != "amd64" || !slices.Equal(meta.Tags, []string{"staging-validated"}) || meta.Created == "" {
		t.Fatalf("metadata %+v", meta)
	}
}

func TestImmutableNames(t *testing.T) {
	c := New(t, 3, Options{})
	v1, v2 := []byte("version one"), []byte("version two")
	if r := Upload(t, c.Nodes[0].URL, "app.jar", v1); r.Status != 201 {
		t.Fatalf("first push %d %s", r.Status, r.Body)
	}
	for _, i := range c.Running() {
		if r := Upload(t, c.Nodes[i].URL, "app.jar", v2); r.Status != http.StatusConflict {
			t.Fatalf("other bytes via %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
		}
		if r := Do(t, "PUT", c.Nodes[i].URL+"/artifacts/app.jar", bytes.NewReader(v2), nil); r.Status != http.StatusConflict {
			t.Fatalf("PUT other bytes via %s: %d", c.Nodes[i].ID, r.Status)
		}
		if r := Upload(t, c.Nodes[i].URL, "app.jar", v1); r.Status != http.StatusOK {
			t.Fatalf("same bytes via %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
		}
	}
	pullEverywhere(t, c, "app.jar", v1)
	// The refused content left no shard behind on any node: only the
	// first push's object is stored.
	Eventually(t, Wait(), func() error {
		for _, i := range c.Running() {
			if files, _, _ := c.Nodes[i].Srv.Node.Shards().Usage(); files > 1 {
				return fmt.Errorf("%s holds %d shard files, want at most 1", c.Nodes[i].ID, files)
			}
		}
		return nil
	})

	// Deleting keeps the name bound to its digest.
	if r := Do(t, "DELETE", c.Nodes[1].URL+"/api/v1/artifacts/app.jar", nil, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	// Reads of existing names come from each node's local state, so a
	// delete reaches the other nodes one raft round later.
	Eventually(t, Wait(), func() error {
		if r := Do(t, "GET", c.Nodes[2].URL+"/artifacts/app.jar", nil, nil); r.Status != 404 {
			return fmt.Errorf("deleted artifact still served: %d", r.Status)
		}
		return nil
	})
	if r := Upload(t, c.Nodes[2].URL, "app.jar", v2); r.Status != http.StatusConflict {
		t.Fatalf("rebinding a deleted name: %d %s", r.Status, r.Body)
	}
	if r := Upload(t, c.Nodes[2].URL, "app.jar", v1); r.Status != http.StatusCreated {
		t.Fatalf("re-push of the deleted name's own bytes: %d %s", r.Status, r.Body)
	}
	pullEverywhere(t, c, "app.jar", v1)
}

func TestReadAfterWriteOnEveryNode(t *testing.T) {
	c := New(t, 3, Options{})
	for i := range 200 {
		name := fmt.Sprintf("raw/%03d.bin", i)
		body := []byte(name)
		if r := Do(t, "PUT", c.Nodes[0].URL+"/artifacts/"+name, bytes.NewReader(body), nil); r.Status != 201 {
			t.Fatalf("push %d: %d %s", i, r.Status, r.Body)
		}
		r := Do(t, "GET", c.Nodes[2].URL+"/artifacts/"+name, nil, nil)
		if r.Status != 200 || !bytes.Equal(r.Body, body) {
			t.Fatalf("pull %d right after push: %d %q", i, r.Status, r.Body)
		}
	}
}

func TestLeaderLossAndCatchUp(t *testing.T) {
	c := New(t, 3, Options{})
	leader := c.Leader()
	before := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("before-%d.bin", i)
		before[name] = randomBytes(uint64(i), 1000+i)
		// Pushed through the leader, so the leader holds these bytes.
		if r := Do(t, "PUT", c.Nodes[leader].URL+"/artifacts/"+name, bytes.NewReader(before[name]), nil); r.Status != 201 {
			t.Fatalf("push: %d %s", r.Status, r.Body)
		}
	}
	c.Kill(leader)
	newLeader := c.Leader()
	if newLeader == leader {
		t.Fatal("killed node still leads")
	}
	after := map[string][]byte{}
	for k, i := range c.Running() {
		name := fmt.Sprintf("after-%d.bin", k)
		after[name] = randomBytes(uint64(100+k), 2000)
		var r Response
		Eventually(t, Wait(), func() error {
			r = Do(t, "PUT", c.Nodes[i].URL+"/artifacts/"+name, bytes.NewReader(after[name]), nil)
			if r.Status != 201 && r.Status != 200 {
				return fmt.Errorf("push via %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
			}
			return nil
		})
	}
	c.Restart(leader)
	c.WaitReady()
	// The old leader catches up on metadata it missed and serves all of it:
	// its own bytes locally, the rest from the nodes holding them.
	Eventually(t, Wait(), func() error {
		if got := c.Nodes[leader].Srv.Node.Counts().Artifacts; got != 5+len(after) {
			return fmt.Errorf("restarted node knows %d artifacts", got)
		}
		return nil
	})
	for name, b := range before {
		pullEverywhere(t, c, name, b)
	}
	for name, b := range after {
		pullEverywhere(t, c, name, b)
	}
}

func TestFullRestartKeepsEverything(t *testing.T) {
	c := New(t, 3, Options{})
	for i := range 3 {
		r := Upload(t, c.Nodes[i].URL, fmt.Sprintf("svc-%d.tgz", i), []byte(fmt.Sprintf("svc %d", i)),
			[2]string{"version", fmt.Sprint(i)}, [2]string{"label", "team=infra"}, [2]string{"tag", "built"})
		if r.Status != 201 {
			t.Fatalf("push: %d %s", r.Status, r.Body)
		}
	}
	if r := Do(t, "PUT", c.Nodes[1].URL+"/api/v1/tags/production-ready?name=svc-1.tgz", nil, nil); r.Status != 200 {
		t.Fatalf("tag: %d %s", r.Status, r.Body)
	}
	for i := range c.Nodes {
		c.Stop(i)
	}
	for _, i := range []int{2, 0, 1} {
		c.Restart(i)
	}
	c.WaitReady()
	for i := range 3 {
		name := fmt.Sprintf("svc-%d.tgz", i)
		pullEverywhere(t, c, name, []byte(fmt.Sprintf("svc %d", i)))
		for _, n := range c.Running() {
			var a artifact
			Do(t, "GET", c.Nodes[n].URL+"/api/v1/artifacts/"+name, nil, nil).JSON(t, &a)
			wantTags := []string{"built"}
			if i == 1 {
				wantTags = []string{"built", "production-ready"}
			}
			if a.Version != fmt.Sprint(i) || a.Labels["team"] != "infra" || !slices.Equal(a.Tags, wantTags) {
				t.Fatalf("after restart %s on %s: %+v", name, c.Nodes[n].ID, a)
			}
		}
	}
}

func TestLatestProductionReady(t *testing.T) {
	c := New(t, 3, Options{})
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("myapp-1.%d.0.jar", i)
		if r := Upload(t, c.Nodes[0].URL, name, []byte(name)); r.Status != 201 {
			t.Fatalf("push: %d", r.Status)
		}
	}
	if r := Do(t, "GET", c.Nodes[2].URL+"/api/v1/latest?prefix=myapp-&tag=production-ready", nil, nil); r.Status != 404 {
		t.Fatalf("latest with no tagged artifact: %d", r.Status)
	}
	for _, name := range []string{"myapp-1.1.0.jar", "myapp-1.2.0.jar"} {
		if r := Do(t, "PUT", c.Nodes[1].URL+"/api/v1/tags/production-ready?name="+name, nil, nil); r.Status != 200 {
			t.Fatalf("tag %s: %d %s", name, r.Status, r.Body)
		}
	}
	r := Do(t, "GET", c.Nodes[2].URL+"/api/v1/latest?prefix=myapp-&tag=production-ready", nil, nil)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/artifacts/myapp-1.2.0.jar" {
		t.Fatalf("latest: %d Location %q", r.Status, r.Header.Get("Location"))
	}
	// What curl -LOJ does: follow, and name the file from Content-Disposition.
	resp, err := http.Get(c.Nodes[2].URL + "/api/v1/latest?prefix=myapp-&tag=production-ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); resp.StatusCode != 200 || cd != "attachment; filename=myapp-1.2.0.jar" {
		t.Fatalf("followed latest: %d %q", resp.StatusCode, cd)
	}
	// Demotion is seen at once by the other nodes, and recorded.
	if r := Do(t, "DELETE", c.Nodes[0].URL+"/api/v1/tags/production-ready?name=myapp-1.2.0.jar", nil, nil); r.Status != 200 {
		t.Fatalf("untag: %d", r.Status)
	}
	r = Do(t, "GET", c.Nodes[1].URL+"/api/v1/latest?prefix=myapp-&tag=production-ready", nil, nil)
	if r.Header.Get("Location") != "/artifacts/myapp-1.1.0.jar" {
		t.Fatalf("latest after untag: %q", r.Header.Get("Location"))
	}
	var h struct {
		TagHistory []struct{ Tag, Action, Actor string } `json:"tag_history"`
	}
	Do(t, "GET", c.Nodes[2].URL+"/api/v1/artifacts/myapp-1.2.0.jar?history=true", nil, nil).JSON(t, &h)
	if len(h.TagHistory) != 2 || h.TagHistory[0].Action != "add" || h.TagHistory[1].Action != "remove" || h.TagHistory[0].Actor == "" {
		t.Fatalf("history %+v", h.TagHistory)
	}
	var list struct{ Artifacts []artifact }
	Do(t, "GET", c.Nodes[2].URL+"/api/v1/artifacts?prefix=myapp-", nil, nil).JSON(t, &list)
	if len(list.Artifacts) != 3 || list.Artifacts[0].Name != "myapp-1.3.0.jar" {
		t.Fatalf("list newest first: %+v", list.Artifacts)
	}
}

func TestMembersAndSingleNode(t *testing.T) {
	c := New(t, 3, Options{})
	var m struct {
		Leader  string
		Members []struct {
			ID, Datacenter, State, Role string
			HTTPAddr                    string `json:"http_addr"`
		}
	}
	Eventually(t, Wait(), func() error {
		m.Members = nil
		Do(t, "GET", c.Nodes[1].URL+"/api/v1/cluster/members", nil, nil).JSON(t, &m)
		roles := map[string]int{}
		for _, x := range m.Members {
			if x.State != "alive" || x.Datacenter != "dc1" || x.HTTPAddr == "" {
				return fmt.Errorf("member %+v", x)
			}
			roles[x.Role]++
		}
		if len(m.Members) != 3 || roles["leader"] != 1 || roles["voter"] != 2 || m.Leader == "" {
			return fmt.Errorf("members %+v", m)
		}
		return nil
	})

	solo := New(t, 1, Options{})
	if r := Upload(t, solo.Nodes[0].URL, "alone.txt", []byte("x")); r.Status != 201 {
		t.Fatalf("single node push: %d %s", r.Status, r.Body)
	}
}

// hangingLeader answers read-index calls only when the caller gives up, as
// a leader that was paused (SIGSTOP) does: the connection is taken, no
// answer comes.
type hangingLeader struct {
	cluster.PeerClient
	hang atomic.Bool
}

func (h *hangingLeader) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	if h.hang.Load() {
		<-ctx.Done()
		return 0, fmt.Errorf("read index from %s: %w", addr, ctx.Err())
	}
	return h.PeerClient.ReadIndex(ctx, addr)
}

// A read that needs a barrier the leader never answers is a retryable 503,
// not a 500 (seen in the chaos suite's pause scenario).
func TestBarrierOnSilentLeaderIs503(t *testing.T) {
	hl := make([]*hangingLeader, 3)
	c := New(t, 3, Options{Tune: func(i int, cfg *server.Config) {
		cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient {
			hl[i] = &hangingLeader{PeerClient: p}
			return hl[i]
		}
	}})
	f := (c.Leader() + 1) % 3
	base := c.Nodes[f].URL
	put(t, base, "before.txt", []byte("pushed before the leader went quiet"))
	hl[f].hang.Store(true)
	for _, path := range []string{"/api/v1/artifacts?prefix=before", "/artifacts/never-pushed.txt"} {
		r := Do(t, http.MethodGet, base+path, nil, nil)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("GET %s with a silent leader: %d %q (Retry-After %q), want 503 with Retry-After",
				path, r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	hl[f].hang.Store(false)
	if r := Do(t, http.MethodGet, base+"/api/v1/artifacts?prefix=before", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("listing after the leader answers again: %d %q", r.Status, r.Body)
	}
}
