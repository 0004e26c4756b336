package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

func bigBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func put(t *testing.T, base, name string, body []byte, wantStatus ...int) Response {
	t.Helper()
	r := Do(t, "PUT", base+"/artifacts/"+name, bytes.NewReader(body), nil)
	if len(wantStatus) == 0 {
		wantStatus = []int{http.StatusCreated}
	}
	if !slices.Contains(wantStatus, r.Status) {
		t.Fatalf("PUT %s: %d %s, want %v", name, r.Status, r.Body, wantStatus)
	}
	return r
}

// putScheme pushes body as name through node 0 and returns its object,
// failing the test unless it was stored as k+m.
func putScheme(t *testing.T, c *Cluster, name string, body []byte, k, m int) fsm.Object {
	t.Helper()
	put(t, c.Nodes[0].URL, name, body)
	o := object(t, c, name)
	if o.K != k || o.M != m {
		t.Fatalf("%s stored as %d+%d, want %d+%d", name, o.K, o.M, k, m)
	}
	return o
}

// object returns the stored object behind an artifact, read from a node's
// state.
func object(t *testing.T, c *Cluster, name string) fsm.Object {
	t.Helper()
	n := c.Nodes[c.Running()[0]].Srv.Node
	a, err := n.Stat(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := n.FSM().Object(a.Digest)
	if !ok {
		t.Fatalf("no object for %s", name)
	}
	return o
}

func shardBytes(c *Cluster) (total int64) {
	for _, i := range c.Running() {
		_, b, _ := c.Nodes[i].Srv.Node.Shards().Usage()
		total += b
	}
	return total
}

func nodeIndex(c *Cluster, id string) int {
	for i, n := range c.Nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// waitDown waits until every running node's gossip sees node i as not
// alive, which is when pushes stop placing shards on it.
func waitDown(t *testing.T, c *Cluster, i int) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		for _, j := range c.Running() {
			_, ms := c.Nodes[j].Srv.Node.Members()
			for _, m := range ms {
				if m.ID == c.Nodes[i].ID && m.State == "alive" {
					return fmt.Errorf("%s still sees %s alive", c.Nodes[j].ID, m.ID)
				}
			}
		}
		return nil
	})
}

func TestStorageOverheadAndLoss(t *testing.T) {
	for _, tc := range []struct {
		nodes, k, m int
	}{{3, 2, 1}, {6, 4, 2}} {
		t.Run(fmt.Sprintf("%d nodes", tc.nodes), func(t *testing.T) {
			c := New(t, tc.nodes, Options{})
			big := bigBytes(uint64(tc.nodes), 64<<20)
			put(t, c.Nodes[0].URL, "big.bin", big)
			o := object(t, c, "big.bin")
			if o.K != tc.k || o.M != tc.m || len(o.Missing) != 0 {
				t.Fatalf("scheme %d+%d missing %v, want %d+%d", o.K, o.M, o.Missing, tc.k, tc.m)
			}
			ratio := float64(shardBytes(c)) / float64(len(big))
			want := float64(tc.k+tc.m) / float64(tc.k)
			t.Logf("%d MiB on %d nodes as %d+%d: %.3fx on disk", len(big)>>20, tc.nodes, tc.k, tc.m, ratio)
			if ratio < want || ratio > want*1.01 {
				t.Fatalf("disk use %.3fx, want about %.2fx", ratio, want)
			}

			small := map[string][]byte{}
			for i := range 5 {
				name := fmt.Sprintf("small-%d.txt", i)
				small[name] = bigBytes(uint64(100+i), 1000*i)
				put(t, c.Nodes[i%tc.nodes].URL, name, small[name])
			}
			mid := bigBytes(7, 5<<20+3)
			// The scheme follows the nodes alive at push time: a node that
			// gossip briefly calls suspect under -race would give mid.bin
			// less parity than the kills below need (seen once in a dozen
			// runs: stored as 2+x, then 0 of its 2 needed shards left).
			c.WaitReady()
			put(t, c.Nodes[1].URL, "mid.bin", mid)
			if mo := object(t, c, "mid.bin"); mo.K != tc.k || mo.M != tc.m {
				t.Fatalf("mid.bin stored as %d+%d, want %d+%d", mo.K, mo.M, tc.k, tc.m)
			}

			// A push is acknowledged with K+1 shards durable; one that lost
			// a stream (seen under -race with a loaded machine: mid.bin with
			// 3 of 6 shards left after the kills) is whole again only after
			// repair, and only then survives the loss of M nodes.
			waitFullRedundancy(t, c)
			// Kill the nodes holding the first data shards of the big object,
			// which forces every stripe to be rebuilt from parity, then pull
			// everything from every survivor.
			var victims []int
			for _, id := range o.Placement[:tc.m] {
				victims = append(victims, nodeIndex(c, id))
			}
			for _, v := range victims {
				c.Kill(v)
			}
			pullEverywhere(t, c, "big.bin", big)
			pullEverywhere(t, c, "mid.bin", mid)
			for name, b := range small {
				pullEverywhere(t, c, name, b)
			}
		})
	}
}

func TestThreeNodesSurviveAnyOne(t *testing.T) {
	c := New(t, 3, Options{})
	data := map[string][]byte{
		"empty.bin": {},
		"tiny.txt":  []byte("x"),
		"small.bin": bigBytes(1, 200<<10),
		"multi.bin": bigBytes(2, 3<<20+5),
	}
	for name, b := range data {
		put(t, c.Nodes[0].URL, name, b)
	}
	for victim := range c.Nodes {
		c.Kill(victim)
		for name, b := range data {
			pullEverywhere(t, c, name, b)
		}
		// Ranges are served from the covering stripes, degraded too.
		r := Do(t, "GET", c.Nodes[(victim+1)%3].URL+"/artifacts/multi.bin", nil, http.Header{"Range": {"bytes=2097000-2097300"}})
		if r.Status != 206 || !bytes.Equal(r.Body, data["multi.bin"][2097000:2097301]) {
			t.Fatalf("range with %s down: %d, %d bytes", c.Nodes[victim].ID, r.Status, len(r.Body))
		}
		c.Restart(victim)
		c.WaitReady()
	}
}

func TestPushesWithANodeDown(t *testing.T) {
	c := New(t, 3, Options{})
	// Pushes right after the kill, before gossip has noticed, succeed too:
	// the pushing node finds the dead node unreachable and places around it.
	c.Kill(2)
	data := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("down-%d.bin", i)
		data[name] = bigBytes(uint64(i), []int{10, 300 << 10, 2<<20 + 1}[i%3])
		put(t, c.Nodes[i%2].URL, name, data[name])
		if o := object(t, c, name); o.K+o.M != 2 {
			t.Fatalf("%s stored as %d+%d with 2 nodes alive", name, o.K, o.M)
		}
	}
	waitDown(t, c, 2)
	c.Restart(2)
	c.WaitReady()
	for name, b := range data {
		pullEverywhere(t, c, name, b)
	}
}

// corruptMetric takes any number: client_golang writes large counts in
// exponent form (1.048576e+06).
var corruptMetric = regexp.MustCompile(`(?m)^pier_corrupt_blocks_total (\S+)$`)

func TestCorruptShardIsRebuiltAndCounted(t *testing.T) {
	c := New(t, 3, Options{})
	body := bigBytes(3, 3<<20)
	put(t, c.Nodes[0].URL, "rot.bin", body)
	o := object(t, c, "rot.bin")
	corruptShard(t, c, o, 0, 100, 1<<20, -10)
	pullEverywhere(t, c, "rot.bin", body)
	var corrupt int
	for _, i := range c.Running() {
		m := corruptMetric.FindSubmatch(Do(t, "GET", c.Nodes[i].URL+"/metrics", nil, nil).Body)
		if m == nil {
			t.Fatal("no pier_corrupt_blocks_total metric")
		}
		n, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatalf("pier_corrupt_blocks_total: %v", err)
		}
		corrupt += int(n)
	}
	if corrupt == 0 {
		t.Fatal("corruption was not counted")
	}
}

// A big object whose first stripe cannot be rebuilt gets a retryable 503,
// not a 200 with a body that ends before it starts: nothing is sent before
// the first stripe is read and verified.
func TestUnreadableFirstStripeIs503(t *testing.T) {
	c := New(t, 3, Options{})
	lose := func(name string) []byte {
		body := bigBytes(5, 3<<20)
		body[0] = name[0] // distinct digests: no dedup
		o := putScheme(t, c, name, body, 2, 1)
		// Two of three blocks of stripe 0 bad: fewer than K intact.
		// Stripe 1 stays readable.
		corruptShard(t, c, o, 0, 100)
		corruptShard(t, c, o, 1, 100)
		return body
	}
	lose("whole.bin")
	ranged := lose("ranged.bin")
	get := func(i int, name, rng string) Response {
		var h http.Header
		if rng != "" {
			h = http.Header{"Range": {rng}}
		}
		return Do(t, "GET", c.Nodes[i].URL+"/artifacts/"+name, nil, h)
	}
	// Before any read has reported the bad blocks (which marks both
	// shards missing for the whole object), stripe 1 still reads.
	if r := get(2, "ranged.bin", "bytes=3000000-3000099"); r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, ranged[3000000:3000100]) {
		t.Fatalf("range in the intact stripe 1: %d, %d bytes, want 206 and its bytes", r.Status, len(r.Body))
	}
	// The first read of each object meets the bad stripe itself; later
	// ones may be refused up front once the reports are applied.
	// A range goes through http.ServeContent, a whole GET does not.
	for _, i := range c.Running() {
		for _, q := range []struct{ name, rng string }{{"whole.bin", ""}, {"ranged.bin", "bytes=10-20"}} {
			r := get(i, q.name, q.rng)
			if r.Status != http.StatusServiceUnavailable {
				t.Fatalf("node %d: GET %s %q with stripe 0 lost: %d (%d bytes), want 503", i, q.name, q.rng, r.Status, len(r.Body))
			}
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("node %d: 503 without Retry-After", i)
			}
		}
	}
}

func TestDedupStoresNoNewShards(t *testing.T) {
	c := New(t, 3, Options{})
	body := bigBytes(4, 2<<20)
	put(t, c.Nodes[0].URL, "a.bin", body)
	before := shardBytes(c)
	put(t, c.Nodes[1].URL, "b.bin", body)
	Do(t, "PUT", c.Nodes[2].URL+"/artifacts/c.bin", bytes.NewReader(body),
		http.Header{"X-Checksum-Sha256": {Digest(body)[len("sha256:"):]}})
	Eventually(t, Wait(), func() error {
		if after := shardBytes(c); after != before {
			return fmt.Errorf("shard bytes %d after re-pushing the same content, %d before", after, before)
		}
		return nil
	})
	o := object(t, c, "c.bin")
	if o.Refs != 3 {
		t.Fatalf("refs %d, want 3", o.Refs)
	}
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		pullEverywhere(t, c, name, body)
	}
}

// gatedDeletes holds shard deletions until the gate opens.
type gatedDeletes struct {
	cluster.PeerClient
	gate          chan struct{}
	waiting, done atomic.Int32
}

func (g *gatedDeletes) DeleteShard(ctx context.Context, addr, id string, index int) error {
	g.waiting.Add(1)
	defer g.done.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.PeerClient.DeleteShard(ctx, addr, id, index)
}

// A push of bytes stored already answers before the shards it wrote are
// deleted again: the cleanup is the node's business, not the client's.
func TestDedupPushDoesNotWaitForCleanup(t *testing.T) {
	g := &gatedDeletes{gate: make(chan struct{})}
	c := New(t, 3, Options{Tune: func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient {
				g.PeerClient = p
				return g
			}
		}
	}})
	body := bigBytes(6, 3<<20)
	put(t, c.Nodes[1].URL, "first.bin", body)
	before := shardBytes(c)
	// Through node 0, whose deletions wait at the gate.
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(mustRequest(t, "PUT", c.Nodes[0].URL+"/artifacts/second.bin", body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("second push: %v", err)
		}
		if n := g.done.Load(); n > 0 {
			// Its deletions gave up (their deadline) before it answered.
			t.Fatalf("the second push answered only after %d shard deletions ended", n)
		}
	case <-time.After(Wait()):
		close(g.gate)
		t.Fatal("the second push did not answer while the deletion of its shards waited")
	}
	if n := c.Nodes[0].Srv.Node.Stats().Cleanups; n != 1 {
		t.Fatalf("%d cleanups running while the deletion waits, want 1", n)
	}
	Eventually(t, Wait(), func() error {
		if g.waiting.Load() == 0 {
			return fmt.Errorf("no deletion started")
		}
		return nil
	})
	close(g.gate)
	Eventually(t, Wait(), func() error {
		if n := c.Nodes[0].Srv.Node.Stats().Cleanups; n != 0 {
			return fmt.Errorf("%d cleanups still running", n)
		}
		return nil
	})
	Eventually(t, Wait(), func() error {
		if after := shardBytes(c); after != before {
			return fmt.Errorf("shard bytes %d, %d before the second push", after, before)
		}
		return nil
	})
	pullEverywhere(t, c, "second.bin", body)
}

// failingPeers breaks shard uploads to chosen nodes part way through.
// waitNothingLeft checks that a failed push of name left no shard bytes
// beyond before and is not visible.
func waitNothingLeft(t *testing.T, c *Cluster, before int64, name string) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		if after := shardBytes(c); after != before {
			return fmt.Errorf("failed push left %d shard bytes", after-before)
		}
		return nil
	})
	if r := Do(t, "GET", c.Nodes[1].URL+"/artifacts/"+name, nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("failed push of %s is visible: %d", name, r.Status)
	}
}

type failingPeers struct {
	cluster.PeerClient
	c     *Cluster
	mu    sync.Mutex
	fail  map[string]bool // node ids
	after int64
}

func (f *failingPeers) set(id string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[id] = fail
}

// failing reports whether calls to the node at addr are to fail.
func (f *failingPeers) failing(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.c.Nodes {
		if f.fail[n.ID] && "127.0.0.1:"+addrPort(n.URL) == addr {
			return true
		}
	}
	return false
}

func (f *failingPeers) PutPacked(ctx context.Context, addr string, shards []cluster.PackedShard) error {
	if f.failing(addr) {
		return errPlanted
	}
	return f.PeerClient.PutPacked(ctx, addr, shards)
}

var errPlanted = errors.New("planted failure")

func (f *failingPeers) PutShard(ctx context.Context, addr, id string, index int, parity bool, body io.Reader) error {
	if f.failing(addr) {
		body = io.MultiReader(io.LimitReader(body, f.after), errReader{})
	}
	return f.PeerClient.PutShard(ctx, addr, id, index, parity, body)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errPlanted }

func addrPort(url string) string { return url[len("http://127.0.0.1:"):] }

func TestPeerDiesMidPush(t *testing.T) {
	var fp *failingPeers
	c := New(t, 6, Options{Tune: func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient {
				fp = &failingPeers{PeerClient: p, fail: map[string]bool{}, after: 1 << 20}
				return fp
			}
		}
	}})
	fp.c = c

	// One stream breaks: 5 of 6 shards is K+1, so the push succeeds and
	// records the missing shard.
	fp.set("node2", true)
	body := bigBytes(5, 12<<20)
	put(t, c.Nodes[0].URL, "one-lost.bin", body)
	o := object(t, c, "one-lost.bin")
	if len(o.Missing) != 1 || o.Placement[o.Missing[0]] != "node2" {
		t.Fatalf("missing %v placement %v, want node2's shard missing", o.Missing, o.Placement)
	}
	pullEverywhere(t, c, "one-lost.bin", body)
	// Repair rebuilds the missing shard.
	waitFullRedundancy(t, c)

	// node2 is now left out of placements for a while (it failed a stream),
	// so the next push is 3+2 over the other five. Two more streams break:
	// fewer than K+1 durable, so the push fails cleanly and leaves no shards
	// behind.
	fp.set("node3", true)
	fp.set("node4", true)
	before := settledShardBytes(t, c)
	r := Do(t, "PUT", c.Nodes[0].URL+"/artifacts/two-lost.bin", bytes.NewReader(bigBytes(6, 12<<20)), nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("push with two streams lost: %d %s", r.Status, r.Body)
	}
	waitNothingLeft(t, c, before, "two-lost.bin")
}

// A node holding a full copy of a small object serves it from that copy; a
// corrupt local copy falls back to the others without a wrong byte.
func TestSmallObjectLocalCopy(t *testing.T) {
	// Without the cache, which would answer the later reads from memory.
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	body := bigBytes(12, 10<<10)
	o := putScheme(t, c, "small.bin", body, 1, 1)
	copyHolder := nodeIndex(c, o.Placement[1])
	pullEverywhere(t, c, "small.bin", body)
	before := c.Nodes[copyHolder].Srv.Node.Stats().DegradedReads
	r := Do(t, "GET", c.Nodes[copyHolder].URL+"/artifacts/small.bin", nil, nil)
	if !bytes.Equal(r.Body, body) || c.Nodes[copyHolder].Srv.Node.Stats().DegradedReads != before {
		t.Fatal("local copy read was wrong or degraded")
	}
	corruptShard(t, c, o, 1, 100)
	pullEverywhere(t, c, "small.bin", body)
}

// Small objects read once are served from memory afterwards, whole or in
// ranges, with the same bytes.
func TestSmallObjectCache(t *testing.T) {
	c := New(t, 3, Options{})
	body := bigBytes(13, 10<<10)
	put(t, c.Nodes[0].URL, "cached.bin", body)
	n := c.Nodes[2].Srv.Node
	pullEverywhere(t, c, "cached.bin", body)
	hits := n.Stats().CacheHits
	if got := Do(t, "GET", c.Nodes[2].URL+"/artifacts/cached.bin", nil, nil); !bytes.Equal(got.Body, body) {
		t.Fatal("cached read returned other bytes")
	}
	r := Do(t, "GET", c.Nodes[2].URL+"/artifacts/cached.bin", nil, http.Header{"Range": {"bytes=100-199"}})
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, body[100:200]) {
		t.Fatalf("cached range read: %d, %d bytes", r.Status, len(r.Body))
	}
	if st := n.Stats(); st.CacheHits != hits+2 || st.CacheBytes != int64(len(body)) {
		t.Fatalf("cache hits %d -> %d, %d bytes cached; want 2 more hits and %d bytes", hits, st.CacheHits, st.CacheBytes, len(body))
	}
}

// corruptShard flips a byte of shard index of obj at each offset (negative:
// from the end) on the node holding it, and returns the file's path and its
// corrupted content.
func corruptShard(t *testing.T, c *Cluster, obj fsm.Object, index int, offsets ...int) (string, []byte) {
	t.Helper()
	shards := c.Nodes[nodeIndex(c, obj.Placement[index])].Srv.Node.Shards()
	// A shard is its own file or a record in a pack file.
	path, base, size, err := shards.Locate(obj.ID, index)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, base); err != nil {
		t.Fatal(err)
	}
	for _, off := range offsets {
		if off < 0 {
			off += len(raw)
		}
		raw[off] ^= 0x40
	}
	if _, err := f.WriteAt(raw, base); err != nil {
		t.Fatal(err)
	}
	return path, raw
}

// A node that reaches fewer than a majority of the cluster refuses pushes
// instead of storing them without redundancy, though raft itself is fine.
func TestPushNeedsAMajority(t *testing.T) {
	var np *noPing
	c := New(t, 5, Options{Tune: func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient {
				np = &noPing{PeerClient: p}
				return np
			}
		}
	}})
	np.down.Store(true)
	r := Do(t, "PUT", c.Nodes[0].URL+"/artifacts/minority.bin", bytes.NewReader([]byte("x")), nil)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("push from a node that reaches 1 of 5: %d %s", r.Status, r.Body)
	}
	np.down.Store(false)
	// Once its peers answer again (the unreachable mark lasts 10s), it
	// pushes again; through another node at once.
	put(t, c.Nodes[1].URL, "majority.bin", []byte("y"))
}

// noPing makes every peer look unreachable to the pushing node's ping.
type noPing struct {
	cluster.PeerClient
	down atomic.Bool
}

func (p *noPing) Ping(ctx context.Context, addr string) error {
	if p.down.Load() {
		return fmt.Errorf("%w: planted", cluster.ErrPeerUnreachable)
	}
	return p.PeerClient.Ping(ctx, addr)
}

func mustRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}
