package clustertest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

// plantShard replaces shard index of obj, on the node holding it, with
// the same shard of other content: a file whose block checksums all pass
// but whose bytes are not the object's. Only a hash of the whole object
// tells. It returns the planted image.
func plantShard(t *testing.T, c *Cluster, obj fsm.Object, index int, other []byte) []byte {
	t.Helper()
	var id [32]byte
	if _, err := hex.Decode(id[:], []byte(obj.ID)); err != nil {
		t.Fatal(err)
	}
	h := erasure.Header{Object: id, Index: index, Layout: erasure.Layout{
		Scheme: erasure.Scheme{K: obj.K, M: obj.M}, BlockSize: obj.BlockSize, Size: obj.Size}}
	img, err := erasure.ShardImage(h, other)
	if err != nil {
		t.Fatal(err)
	}
	path, off, size, err := c.Nodes[nodeIndex(c, obj.Placement[index])].Srv.Node.Shards().Locate(obj.ID, index)
	if err != nil {
		t.Fatal(err)
	}
	if off != 0 || size != int64(len(img)) {
		t.Fatalf("shard %d of %s: %d bytes at %d in %s, want a file of %d", index, obj.ID, size, off, path, len(img))
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

type statusView struct {
	Redundancy map[string]int `json:"redundancy"`
}

// Every copy of an object holds other bytes, each block with a valid
// checksum: reads would serve them as the artifact. The scrubber hashes
// the whole object, finds it does not match its digest, and marks it
// corrupt through raft: no node serves it (a 503 that says so), status
// counts it unavailable. A push of the real bytes, even one that names
// the digest in advance (which used to be deduplicated onto the stored
// object without writing anything), stores new shards and the object
// heals.
func TestScrubMarksACorruptObjectAndAPushHealsIt(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	real := bigBytes(21, 100_000) // two full copies in shard files
	other := bigBytes(22, len(real))
	put(t, c.Nodes[0].URL, "app.jar", real)
	obj := object(t, c, "app.jar")
	if obj.K != 1 || obj.M != 1 {
		t.Fatalf("stored as %d+%d", obj.K, obj.M)
	}
	for i := range obj.Placement {
		plantShard(t, c, obj, i, other)
	}
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			if o, _ := n.Srv.Node.FSM().Object(obj.Digest); o.Corrupt == "" {
				return fmt.Errorf("%s does not know the object is corrupt", n.ID)
			}
		}
		return nil
	})
	o, _ := c.Nodes[0].Srv.Node.FSM().Object(obj.Digest)
	if o.ID != obj.ID || !strings.Contains(o.Corrupt, Digest(other)) {
		t.Fatalf("marked %+v, want the reason to name what the bytes hash to (%s)", o, Digest(other))
	}
	for _, n := range c.Nodes {
		r := Do(t, http.MethodGet, n.URL+"/artifacts/app.jar", nil, nil)
		if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "corrupt") {
			t.Fatalf("pull of a corrupt object from %s: %d %.300s", n.ID, r.Status, r.Body)
		}
		var st statusView
		Do(t, http.MethodGet, n.URL+"/api/v1/status", nil, nil).JSON(t, &st)
		if st.Redundancy["unavailable"] != 1 {
			t.Fatalf("status on %s: %v", n.ID, st.Redundancy)
		}
	}

	// The digest given up front took the shortcut that stores nothing.
	r := Do(t, http.MethodPut, c.Nodes[1].URL+"/artifacts/again.jar", bytes.NewReader(real),
		http.Header{"X-Checksum-Sha256": {strings.TrimPrefix(obj.Digest, fsm.DigestPrefix)}})
	if r.Status != http.StatusCreated {
		t.Fatalf("push of the real bytes: %d %s", r.Status, r.Body)
	}
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			o, _ := n.Srv.Node.FSM().Object(obj.Digest)
			if o.Corrupt != "" || o.ID == obj.ID || o.Refs != 2 {
				return fmt.Errorf("%s: object %+v", n.ID, o)
			}
		}
		return nil
	})
	for _, n := range c.Nodes {
		for _, name := range []string{"app.jar", "again.jar"} {
			if r := Do(t, http.MethodGet, n.URL+"/artifacts/"+name, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, real) {
				t.Fatalf("pull %s from %s after the heal: %d %.200s", name, n.ID, r.Status, r.Body)
			}
		}
	}
	Eventually(t, Wait(), func() error {
		var st statusView
		Do(t, http.MethodGet, c.Nodes[2].URL+"/api/v1/status", nil, nil).JSON(t, &st)
		if st.Redundancy["unavailable"] != 0 || st.Redundancy["full"] != 1 {
			return fmt.Errorf("status after the heal: %v", st.Redundancy)
		}
		return nil
	})
}

// One data shard of an erasure-coded object holds other bytes with valid
// checksums. The scrubber's hash of the object fails, the same read
// without that shard (from parity) matches, so the shard is reported and
// rebuilt, and the object is never marked corrupt.
func TestScrubRebuildsAShardOnlyTheDigestCatches(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	real := bigBytes(31, 700_000)
	obj := putScheme(t, c, "big.bin", real, 2, 1)
	planted := plantShard(t, c, obj, 1, bigBytes(32, len(real)))
	holder := c.Nodes[nodeIndex(c, obj.Placement[1])].Srv.Node
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			if o, _ := n.Srv.Node.FSM().Object(obj.Digest); o.Corrupt != "" {
				t.Fatalf("%s marked the object corrupt: %s", n.ID, o.Corrupt)
			}
		}
		path, _, _, err := holder.Shards().Locate(obj.ID, 1)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Equal(b, planted) {
			return fmt.Errorf("shard 1 not rebuilt yet")
		}
		if o, _ := holder.FSM().Object(obj.Digest); len(o.Missing) > 0 || o.ID != obj.ID {
			return fmt.Errorf("object %+v", o.ObjectRef)
		}
		return nil
	})
	found := int64(0)
	for _, n := range c.Nodes {
		found += n.Srv.Node.Stats().ScrubCorrupt
	}
	if found == 0 {
		t.Error("no scrubber counted the bad shard")
	}
	for _, n := range c.Nodes {
		if r := Do(t, http.MethodGet, n.URL+"/artifacts/big.bin", nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, real) {
			t.Fatalf("pull from %s: %d, %d bytes %.300s", n.ID, r.Status, len(r.Body), r.Body)
		}
	}
}

// A small object read whole is cached only if it hashes to its digest: a
// copy with valid checksums but other bytes, read before the scrubber
// found it, must not outlive its repair in a node's cache (the repair
// rebuilds it in place, under the same object ID the cache goes by).
func TestCacheHoldsOnlyBytesThatMatchTheDigest(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.ScrubInterval = 2 * time.Second }})
	real := bigBytes(41, 50_000)
	put(t, c.Nodes[0].URL, "cached.bin", real)
	obj := object(t, c, "cached.bin")
	reader := slices.IndexFunc(c.Nodes, func(n *Node) bool { return !slices.Contains(obj.Placement, n.ID) })
	if obj.K != 1 || len(obj.Placement) != 2 || reader < 0 {
		t.Fatalf("object %+v", obj.ObjectRef)
	}
	planted := plantShard(t, c, obj, 0, bigBytes(42, len(real)))
	// Read at once, before the scrubber looks: copy 0 is read first.
	Do(t, http.MethodGet, c.Nodes[reader].URL+"/artifacts/cached.bin", nil, nil)
	holder := c.Nodes[nodeIndex(c, obj.Placement[0])].Srv.Node
	Eventually(t, Wait(), func() error {
		path, _, _, err := holder.Shards().Locate(obj.ID, 0)
		if err != nil {
			return err
		}
		if b, err := os.ReadFile(path); err != nil || bytes.Equal(b, planted) {
			return fmt.Errorf("copy 0 not rebuilt yet (%v)", err)
		}
		return nil
	})
	for _, n := range c.Nodes {
		if r := Do(t, http.MethodGet, n.URL+"/artifacts/cached.bin", nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, real) {
			t.Fatalf("pull from %s after the repair: %d, %d bytes, right bytes %v", n.ID, r.Status, len(r.Body), bytes.Equal(r.Body, real))
		}
	}
}
