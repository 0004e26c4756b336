package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/server"
)

// packedOn reports whether node i holds shard index of object id as a
// packed record rather than a file.
func packedOn(c *Cluster, i int, id string, index int) bool {
	packed := false
	_ = c.Nodes[i].Srv.Node.Shards().Walk(func(si chunk.ShardInfo) error {
		if si.ID == id && si.Index == index && si.Path == "" {
			packed = true
		}
		return nil
	})
	return packed
}

// tryPut pushes body without a testing.T, for goroutines.
func tryPut(url string, body []byte) error {
	req, err := http.NewRequest("PUT", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%d %s", resp.StatusCode, msg)
	}
	return nil
}

// Each copy of a small push is a record in its node's packs, written before
// the push is acknowledged: no shard file is written. Concurrent pushes
// through every node all commit, each copy is packed where the placement
// says, and every node serves the right bytes.
func TestSmallPushesArePacked(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	bodies := map[string][]byte{}
	for i := range 24 {
		bodies[fmt.Sprintf("inl-%02d.bin", i)] = bigBytes(uint64(40+i), i*700) // 0 B to 16 KiB
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	i := 0
	for name, body := range bodies {
		base := c.Nodes[i%3].URL
		i++
		wg.Go(func() {
			if err := tryPut(base+"/artifacts/"+name, body); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("pushes failed: %v", failed)
	}
	for name, body := range bodies {
		o := object(t, c, name)
		if o.K != 1 || o.M != 1 || len(o.Missing) != 0 {
			t.Fatalf("%s stored as %d+%d missing %v", name, o.K, o.M, o.Missing)
		}
		for idx, node := range o.Placement {
			if !packedOn(c, nodeIndex(c, node), o.ID, idx) {
				t.Fatalf("%s: copy %d not packed on %s once the push was acknowledged", name, idx, node)
			}
		}
		pullEverywhere(t, c, name, body)
	}
	for _, n := range c.Nodes {
		if st := n.Srv.Node.Stats(); st.PackFailures != 0 {
			t.Fatalf("%s: %d pack failures", n.ID, st.PackFailures)
		}
	}
}

// A packed copy whose bytes rot reads as missing: pulls are served from the
// other copy, the scrubber reports it, and repair rebuilds it as a shard
// file that replaces the record.
func TestCorruptPackedCopyIsRebuilt(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	body := bigBytes(91, 9000)
	put(t, c.Nodes[0].URL, "rot-small.bin", body)
	o := object(t, c, "rot-small.bin")
	holder := nodeIndex(c, o.Placement[1])
	if !packedOn(c, holder, o.ID, 1) {
		t.Fatalf("copy 1 is not packed on %s", o.Placement[1])
	}
	corruptShard(t, c, o, 1, 2000)
	pullEverywhere(t, c, "rot-small.bin", body)
	waitScrubFound(t, c, holder)
	waitFullRedundancy(t, c)
	Eventually(t, Wait(), func() error {
		o := object(t, c, "rot-small.bin")
		i := nodeIndex(c, o.Placement[1])
		if packedOn(c, i, o.ID, 1) || !c.Nodes[i].Srv.Node.Shards().Has(o.ID, 1) {
			return fmt.Errorf("copy 1 not rebuilt as a file on %s", o.Placement[1])
		}
		return nil
	})
	// With the rebuilt copy, the object survives losing the other holder.
	c.Kill(nodeIndex(c, o.Placement[0]))
	pullEverywhere(t, c, "rot-small.bin", body)
}

// A follower answers a push that binds a new name before it has applied
// it; every read on that follower right after must still see the write, as
// must reads after a tag change and a delete made through it.
func TestWritesThroughAFollowerAreReadThere(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	f := (c.Leader() + 1) % 3
	u := c.Nodes[f].URL
	for i := range 10 {
		name := fmt.Sprintf("f-%02d.bin", i)
		body := bigBytes(uint64(200+i), 500+i*4000) // inlined and erasure-coded sizes
		put(t, u, name, body)
		if r := Do(t, "GET", u+"/artifacts/"+name, nil, nil); r.Status != 200 || !bytes.Equal(r.Body, body) {
			t.Fatalf("GET %s right after its push on the same follower: %d, %d bytes", name, r.Status, len(r.Body))
		}
		if r := Do(t, "PUT", u+"/api/v1/tags/prod?name="+name, nil, nil); r.Status != 200 {
			t.Fatalf("tag %s: %d %s", name, r.Status, r.Body)
		}
		var a artifact
		Do(t, "GET", u+"/api/v1/artifacts/"+name, nil, nil).JSON(t, &a)
		if len(a.Tags) != 1 || a.Tags[0] != "prod" {
			t.Fatalf("%s read back on the follower with tags %v", name, a.Tags)
		}
		if r := Do(t, "DELETE", u+"/artifacts/"+name, nil, nil); r.Status >= 300 {
			t.Fatalf("delete %s: %d %s", name, r.Status, r.Body)
		}
		if r := Do(t, "GET", u+"/artifacts/"+name, nil, nil); r.Status != http.StatusNotFound {
			t.Fatalf("GET %s right after its delete on the same follower: %d", name, r.Status)
		}
	}
}

// A node restored from a snapshot checks at once that it holds every copy
// the state places on it, without waiting for the scrubber: here the copies
// are lost with the node's packs and the node restarts from its own
// snapshot; it must find them absent and have repair rebuild them (the
// scrubber is off, and nothing reads them).
func TestRestoreFindsAbsentCopies(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.ScrubInterval = time.Hour
		cfg.Node.CacheSize = -1
	}})
	const holder = 2
	type copyOf struct {
		id    string
		index int
	}
	var placed []copyOf
	var covered uint64
	for i := range 90 {
		name := fmt.Sprintf("restore-%02d.bin", i)
		put(t, c.Nodes[0].URL, name, bigBytes(uint64(400+i), 2000+i))
		if i >= 20 {
			continue
		}
		o := object(t, c, name)
		for idx, node := range o.Placement {
			if node == c.Nodes[holder].ID {
				placed = append(placed, copyOf{o.ID, idx})
			}
		}
		if i == 19 {
			covered, _ = strconv.ParseUint(c.Nodes[0].Srv.Node.RaftStats()["commit_index"], 10, 64)
		}
	}
	if len(placed) == 0 {
		t.Fatal("no object placed a copy on the chosen node")
	}
	Eventually(t, Wait(), func() error {
		snap, _ := strconv.ParseUint(c.Nodes[holder].Srv.Node.RaftStats()["last_snapshot_index"], 10, 64)
		if snap < covered {
			return fmt.Errorf("%s snapshotted up to %d, want %d", c.Nodes[holder].ID, snap, covered)
		}
		return nil
	})
	c.Stop(holder)
	if err := os.RemoveAll(filepath.Join(c.Nodes[holder].cfg.Node.DataDir, "data", "packs")); err != nil {
		t.Fatal(err)
	}
	c.Restart(holder)
	c.WaitReady()
	// Rebuilt in place or moved: either way every copy is held where the
	// placement now says.
	Eventually(t, Wait(), func() error {
		for _, p := range placed {
			o, ok := c.Nodes[0].Srv.Node.FSM().ObjectByID(p.id)
			if !ok {
				return fmt.Errorf("object %s gone", p.id)
			}
			at := o.Placement[p.index]
			if len(o.Missing) > 0 || !c.Nodes[nodeIndex(c, at)].Srv.Node.Shards().Has(p.id, p.index) {
				return fmt.Errorf("copy %s.%d not rebuilt (on %s, missing %v)", p.id, p.index, at, o.Missing)
			}
		}
		return nil
	})
}

// A small push whose copy to one node fails still succeeds when K+1 copies
// are durable, records the copy missing and has repair rebuild it; with
// fewer it fails cleanly and leaves no copy behind.
func TestSmallPushWithCopiesLost(t *testing.T) {
	var fp *failingPeers
	// Four nodes store small objects as 1+2: three copies, two needed.
	c := New(t, 4, Options{Tune: func(i int, cfg *server.Config) {
		cfg.Node.CacheSize = -1
		if i == 0 {
			cfg.WrapPeers = func(p cluster.PeerClient) cluster.PeerClient {
				fp = &failingPeers{PeerClient: p, fail: map[string]bool{}}
				return fp
			}
		}
	}})
	fp.c = c
	fp.set("node2", true)
	var body []byte
	var o fsm.Object
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no push in 20 placed a copy on node2")
		}
		name := fmt.Sprintf("lost-copy-%02d.bin", i)
		body = bigBytes(uint64(500+i), 4000)
		put(t, c.Nodes[0].URL, name, body)
		if o = object(t, c, name); slices.Contains(o.Placement, "node2") {
			break
		}
		if len(o.Missing) != 0 {
			t.Fatalf("%s on %v: missing %v", name, o.Placement, o.Missing)
		}
	}
	if o.K != 1 || o.M != 2 || len(o.Missing) != 1 || o.Placement[o.Missing[0]] != "node2" {
		t.Fatalf("%d+%d on %v missing %v, want node2's copy missing", o.K, o.M, o.Placement, o.Missing)
	}
	fp.set("node2", false)
	waitFullRedundancy(t, c)

	fp.set("node2", true)
	fp.set("node3", true)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no push in 20 placed copies on both node2 and node3")
		}
		name := fmt.Sprintf("two-lost-%02d.bin", i)
		before := settledShardBytes(t, c)
		r := Do(t, "PUT", c.Nodes[0].URL+"/artifacts/"+name, bytes.NewReader(bigBytes(uint64(600+i), 4000)), nil)
		if r.Status == http.StatusCreated {
			continue
		}
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("push with two copies lost: %d %s", r.Status, r.Body)
		}
		waitNothingLeft(t, c, before, name)
		break
	}
}

// packBytes sums the pack files of every node's data dir.
func packBytes(t *testing.T, c *Cluster) int64 {
	t.Helper()
	var total int64
	for _, n := range c.Nodes {
		dir := filepath.Join(n.cfg.Node.DataDir, "data", "packs")
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if info, err := e.Info(); err == nil && !e.IsDir() {
				total += info.Size()
			}
		}
	}
	return total
}

// Deleting most small artifacts leaves their packed copies dead; GC drops
// them and compacts the sealed packs, which rewrites the live records they
// still hold. Every artifact left pulls from every node, also from a
// restarted one, whose pack index comes from the rewritten files.
func TestPackCompactionKeepsLiveCopies(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.PackSize = 64 << 10 // about six copies a pack
		cfg.Node.CacheSize = -1
	}})
	keep, gone := map[string][]byte{}, []string{}
	for i := range 48 {
		name := fmt.Sprintf("compact/%02d.bin", i)
		body := randomBytes(uint64(500+i), 10<<10)
		put(t, c.Nodes[i%3].URL, name, body)
		if i%4 == 0 {
			keep[name] = body
		} else {
			gone = append(gone, name)
		}
	}
	before := packBytes(t, c)
	for i, name := range gone {
		if r := Do(t, "DELETE", c.Nodes[i%3].URL+"/artifacts/"+name, nil, nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", name, r.Status, r.Body)
		}
	}
	Eventually(t, Wait(), func() error {
		if after := packBytes(t, c); after > before/2 {
			return fmt.Errorf("packs hold %d bytes, %d before deleting 3/4 of the artifacts", after, before)
		}
		return nil
	})
	// Every copy of what is kept is still a record on its node, bytes
	// intact: a pull alone would hide one lost copy behind the other.
	for name, body := range keep {
		o := object(t, c, name)
		for idx, id := range o.Placement {
			path, base, size, err := c.Nodes[nodeIndex(c, id)].Srv.Node.Shards().Locate(o.ID, idx)
			if err != nil {
				t.Fatalf("%s: copy %d on %s: %v", name, idx, id, err)
			}
			raw := make([]byte, size)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.ReadAt(raw, base)
			f.Close()
			if err != nil || !bytes.Contains(raw, body) {
				t.Fatalf("%s: copy %d on %s does not hold the pushed bytes (%v)", name, idx, id, err)
			}
		}
		pullEverywhere(t, c, name, body)
	}
	if r := Do(t, "GET", c.Nodes[0].URL+"/artifacts/"+gone[0], nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET of deleted %s: %d, want 404", gone[0], r.Status)
	}
	c.Kill(1)
	c.Restart(1)
	c.WaitReady()
	for name, body := range keep {
		pullEverywhere(t, c, name, body)
	}
}

// Small pushes once carried their bytes in the raft entry (fsm.Entry.Blob),
// and each node in the placement packed its copy when it applied the entry;
// logs written then must still apply. Such an entry, committed through the
// leader: each placed node packs its copy and every node serves the bytes.
// A placed node that loses its packs while down has its copy back after a
// restart, from the entry it replays or, once a snapshot covers the entry,
// from repair.
func TestOldBlobEntriesStillApply(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) { cfg.Node.CacheSize = -1 }})
	body := bigBytes(77, 3000)
	sum := sha256.Sum256(body)
	id := hex.EncodeToString(bigBytes(78, 32))
	placement := []string{c.Nodes[1].ID, c.Nodes[2].ID}
	cmd := fsm.Command{Op: fsm.OpPutArtifact, Time: time.Now().UTC(), Put: &fsm.PutArtifact{
		Name: "old/blob.bin", Digest: fsm.DigestPrefix + hex.EncodeToString(sum[:]), Size: int64(len(body)),
		Object: fsm.ObjectRef{ID: id, K: 1, M: 1, BlockSize: len(body), Placement: placement},
	}}
	b, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Nodes[c.Leader()].Srv.Node.ApplyForwarded(t.Context(), fsm.EncodeBatch([]fsm.Entry{{Command: b, Blob: body}}))
	if err != nil || len(res) != 1 || res[0].Status != fsm.StatusCreated {
		t.Fatalf("apply an entry with a blob: %v %+v", err, res)
	}
	Eventually(t, Wait(), func() error {
		for idx, node := range placement {
			if !packedOn(c, nodeIndex(c, node), id, idx) {
				return fmt.Errorf("copy %d not packed on %s", idx, node)
			}
		}
		return nil
	})
	pullEverywhere(t, c, "old/blob.bin", body)

	c.Kill(2)
	if err := os.RemoveAll(filepath.Join(c.Nodes[2].cfg.Node.DataDir, "data", "packs")); err != nil {
		t.Fatal(err)
	}
	c.Restart(2)
	c.WaitReady()
	Eventually(t, Wait(), func() error {
		o, ok := c.Nodes[0].Srv.Node.FSM().ObjectByID(id)
		if !ok {
			return fmt.Errorf("object %s gone", id)
		}
		for idx, node := range o.Placement {
			if !c.Nodes[nodeIndex(c, node)].Srv.Node.Shards().Has(id, idx) {
				return fmt.Errorf("copy %d not on %s (missing %v)", idx, node, o.Missing)
			}
		}
		return nil
	})
	pullEverywhere(t, c, "old/blob.bin", body)
}
