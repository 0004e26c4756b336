package clustertest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/chunk"
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

// Small pushes travel in the raft log, batched, and each copy is packed on
// its node: no shard file is written. Concurrent pushes through every node
// all commit, each copy is packed where the placement says, and every node
// serves the right bytes.
func TestInlinedPushesArePacked(t *testing.T) {
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
			ni := nodeIndex(c, node)
			Eventually(t, Wait(), func() error {
				if !packedOn(c, ni, o.ID, idx) {
					return fmt.Errorf("%s: shard %d not packed on %s", name, idx, node)
				}
				return nil
			})
		}
		pullEverywhere(t, c, name, body)
	}
	for _, n := range c.Nodes {
		if st := n.Srv.Node.Stats(); st.PackFailures != 0 {
			t.Fatalf("%s: %d pack failures", n.ID, st.PackFailures)
		}
	}
}

// A packed copy lives without an fsync until the next snapshot; until
// then the raft log holds its bytes. Copies lost from a node's packs (as in
// a crash before the pack was synced) come back when the node restarts and
// replays its log.
func TestInlinedCopiesReplayFromTheLog(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		rc := RaftConfig()
		rc.SnapshotThreshold = 1 << 20
		rc.TrailingLogs = 1 << 20
		rc.SnapshotInterval = time.Hour
		cfg.Node.Raft = rc
	}})
	const holder = 2
	type copyOf struct {
		id    string
		index int
	}
	var lost []copyOf
	for i := range 12 {
		name := fmt.Sprintf("replay-%02d.bin", i)
		put(t, c.Nodes[i%3].URL, name, bigBytes(uint64(70+i), 3000+i))
		o := object(t, c, name)
		for idx, node := range o.Placement {
			if node == c.Nodes[holder].ID {
				lost = append(lost, copyOf{o.ID, idx})
			}
		}
	}
	if len(lost) == 0 {
		t.Fatal("no object placed a copy on the chosen node")
	}
	// Drop the copies while the node is down, so its scrubber cannot see
	// them missing first and have repair rebuild them as files.
	c.Stop(holder)
	store, err := chunk.OpenShardStore(filepath.Join(c.Nodes[holder].cfg.Node.DataDir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lost {
		if err := store.Remove(l.id, l.index); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	c.Restart(holder)
	c.WaitReady()
	shards := c.Nodes[holder].Srv.Node.Shards()
	Eventually(t, Wait(), func() error {
		for _, l := range lost {
			// Packed again, not rebuilt by repair (which writes files).
			if !shards.Has(l.id, l.index) || !packedOn(c, holder, l.id, l.index) {
				return fmt.Errorf("copy %s.%d not replayed", l.id, l.index)
			}
		}
		return nil
	})
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
	// The holder packs its copy when it applies the push, which a follower
	// may do after the push was acknowledged.
	Eventually(t, Wait(), func() error {
		if !packedOn(c, holder, o.ID, 1) {
			return fmt.Errorf("copy 1 is not packed on %s", o.Placement[1])
		}
		return nil
	})
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

// Raft's snapshot trigger counts entries, and an entry is a batch carrying
// inlined bytes: each node also snapshots once the inlined bytes it applied
// pass InlineSnapshotBytes, so raft can drop the entries holding them.
func TestInlinedBytesTriggerSnapshots(t *testing.T) {
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		rc := RaftConfig()
		rc.SnapshotThreshold = 1 << 20
		rc.SnapshotInterval = time.Hour
		cfg.Node.Raft = rc
		cfg.Node.InlineSnapshotBytes = 40 << 10
	}})
	for i := range 8 {
		put(t, c.Nodes[i%3].URL, fmt.Sprintf("snap-%d.bin", i), bigBytes(uint64(300+i), 10<<10))
	}
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			if idx := n.Srv.Node.RaftStats()["last_snapshot_index"]; idx == "" || idx == "0" {
				return fmt.Errorf("%s has not snapshotted (last_snapshot_index %q)", n.ID, idx)
			}
		}
		return nil
	})
}

// A node restored from a snapshot never applied the entries that carried
// the inlined copies the snapshot places on it. Here the copies are lost
// with the node's packs and the node restarts from its own snapshot: it
// must find them absent at once and have repair rebuild them (the scrubber
// is off, and nothing reads them).
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
