package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/apiclient"
	"github.com/pier-registry/pier/transport/server"
)

// lastLogIndex is the index of the last entry in node i's raft log.
func lastLogIndex(t *testing.T, c *Cluster, i int) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(c.Nodes[i].Srv.Node.RaftStats()["last_log_index"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func encode(t *testing.T, c fsm.Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A peer that sends the leader commands no node would propose (a hostile
// or broken one: the peer service is the one door into the log besides
// raft itself) is refused before anything reaches raft: the log does not
// grow and the state does not change. The same holds for a node's own
// writes.
func TestForgedCommandsNeverReachTheLog(t *testing.T) {
	c := New(t, 3, Options{})
	real := bytes.Repeat([]byte("real bytes "), 100)
	if r := Upload(t, c.Nodes[0].URL, "app.jar", real); r.Status != http.StatusCreated {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	waitArtifacts(t, c, 1)
	obj := object(t, c, "app.jar")
	before := snapshotState(t, c)
	leader := c.Leader()
	last := lastLogIndex(t, c, leader)

	forged := []byte("forged bytes, same length as nothing else")
	sum := sha256.Sum256(real)
	realDigest := fsm.DigestPrefix + hex.EncodeToString(sum[:])
	id := hex.EncodeToString(bigBytes(5, 32))
	nodes := []string{c.Nodes[0].ID, c.Nodes[1].ID}
	put := func(mod func(*fsm.PutArtifact)) []byte {
		p := &fsm.PutArtifact{Name: "evil.jar", Digest: realDigest, Size: int64(len(forged)),
			Object: fsm.ObjectRef{ID: id, K: 1, M: 1, BlockSize: len(forged), Placement: nodes}}
		mod(p)
		return encode(t, fsm.Command{Op: fsm.OpPutArtifact, Time: time.Now().UTC(), Put: p})
	}
	for name, e := range map[string]fsm.Entry{
		"inline bytes that are not the digest's": {Command: put(func(*fsm.PutArtifact) {}), Blob: forged},
		"object id that is a path": {Command: put(func(p *fsm.PutArtifact) {
			p.Digest, p.Size, p.Object.ID = fsm.DigestPrefix+hex.EncodeToString(bigBytes(6, 32)), 10, "../../../etc"
		})},
		"64 MiB blocks and more": {Command: put(func(p *fsm.PutArtifact) {
			p.Digest, p.Object.BlockSize = fsm.DigestPrefix+hex.EncodeToString(bigBytes(7, 32)), 1<<30
		})},
		"mark_missing without a shard": {Command: encode(t, fsm.Command{Op: fsm.OpMarkMissing, Time: time.Now().UTC(),
			Shards: &fsm.ShardChange{Digest: obj.Digest, ObjectID: obj.ID}})},
		"tag of a bad name": {Command: encode(t, fsm.Command{Op: fsm.OpTag, Time: time.Now().UTC(),
			Tag: &fsm.TagChange{Name: "../x", Tag: "prod"}})},
		"newer version":  {Command: []byte(`{"v":99,"op":"put_artifact"}`)},
		"unknown op":     {Command: []byte(`{"v":1,"op":"drop_everything"}`)},
		"not json":       {Command: []byte(`{garbage`)},
		"node state nil": {Command: []byte(`{"v":1,"op":"set_node_state"}`)},
	} {
		for _, batch := range [][]fsm.Entry{{e}, {{Command: encode(t, fsm.Command{Op: fsm.OpTag, Time: time.Now().UTC(),
			Tag: &fsm.TagChange{Name: "app.jar", Tag: "innocent"}})}, e}} {
			res, err := c.Nodes[leader].Srv.Node.ApplyForwarded(t.Context(), fsm.EncodeBatch(batch))
			if !errors.Is(err, fsm.ErrInvalid) {
				t.Errorf("%s (batch of %d): %v %+v, want ErrInvalid", name, len(batch), err, res)
			}
		}
	}
	// The node's own writes pass the same check.
	follower := (leader + 1) % 3
	for _, i := range []int{leader, follower} {
		if _, err := c.Nodes[i].Srv.Node.Tag(t.Context(), "app.jar", "bad tag", "me", true); !errors.Is(err, fsm.ErrInvalid) {
			t.Errorf("%s: own bad tag: %v", c.Nodes[i].ID, err)
		}
	}
	if got := lastLogIndex(t, c, leader); got != last {
		t.Fatalf("the leader's log grew from %d to %d", last, got)
	}
	if after := snapshotState(t, c); after != before {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	if r := Do(t, http.MethodGet, c.Nodes[2].URL+"/artifacts/app.jar", nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, real) {
		t.Fatalf("pull: %d %q", r.Status, r.Body)
	}
}

// appendToRaftLog appends an entry carrying data to the raft log of the
// stopped node i, on disk, after its last entry and in that entry's term:
// what a bug or an intruder with the raft channel could leave in every
// node's log. It returns the new entry's index.
func appendToRaftLog(t *testing.T, c *Cluster, i int, data []byte) uint64 {
	t.Helper()
	if c.Nodes[i].Srv != nil {
		t.Fatalf("%s is running", c.Nodes[i].ID)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(c.Nodes[i].cfg.Node.DataDir, "raft", "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	last, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var prev raft.Log
	if err := store.GetLog(last, &prev); err != nil {
		t.Fatal(err)
	}
	entry := raft.Log{Index: last + 1, Term: prev.Term, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
	if err := store.StoreLog(&entry); err != nil {
		t.Fatal(err)
	}
	return entry.Index
}

// An entry no node can read, in every node's log, halts every node's state
// machine at that entry instead of crashing the nodes (they panicked on it,
// and again on every restart). The cluster goes on serving what it holds,
// refuses writes with a 503 that says why, and reports the halt in its
// status.
func TestUnreadableEntryHaltsTheClusterButReadsGoOn(t *testing.T) {
	// Without GC's and the scrubber's read barriers, each an entry, the
	// logs stop growing once the writes below are done. Raft tries to
	// snapshot after every few entries: were it to succeed once halted, it
	// would compact the planted entry away and a restart would not halt.
	c := New(t, 3, Options{Tune: func(_ int, cfg *server.Config) {
		cfg.Node.GCInterval, cfg.Node.ScrubInterval = time.Hour, time.Hour
		cfg.Node.Raft.SnapshotThreshold, cfg.Node.Raft.TrailingLogs = 4, 4
	}})
	small := []byte("a small artifact")
	large := bigBytes(11, 300_000)
	put(t, c.Nodes[0].URL, "small.bin", small)
	put(t, c.Nodes[1].URL, "large.bin", large)
	if r := Do(t, http.MethodPut, c.Nodes[2].URL+"/api/v1/tags/stable?name=small.bin", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("tag: %d %s", r.Status, r.Body)
	}
	// Every log must end at the same entry, or the planted entries would
	// differ at one index.
	Eventually(t, Wait(), func() error {
		want := lastLogIndex(t, c, 0)
		for i := range c.Nodes {
			st := c.Nodes[i].Srv.Node.Status()
			if got := lastLogIndex(t, c, i); got != want || st.CommitIndex != got {
				return fmt.Errorf("%s: last index %d (node1 %d), commit index %d", c.Nodes[i].ID, got, want, st.CommitIndex)
			}
		}
		return nil
	})
	// Followers first: a leader stopped first leaves two nodes that
	// elect another and append to their logs.
	leader := c.Leader()
	for i := range c.Nodes {
		if i != leader {
			c.Stop(i)
		}
	}
	c.Stop(leader)
	var at uint64
	for i := range c.Nodes {
		idx := appendToRaftLog(t, c, i, []byte(`{"v":99,"op":"put_artifact"}`))
		if at != 0 && idx != at {
			t.Fatalf("planted at %d on %s, %d elsewhere", idx, c.Nodes[i].ID, at)
		}
		at = idx
	}
	for i := range c.Nodes {
		c.Restart(i)
	}
	want := fmt.Sprintf("entry %d: ", at)
	halted := func() error {
		for _, i := range c.Running() {
			var st struct {
				Halted string `json:"halted"`
			}
			r := Do(t, http.MethodGet, c.Nodes[i].URL+"/api/v1/status", nil, nil)
			if r.Status != http.StatusOK {
				return fmt.Errorf("%s status: %d %s", c.Nodes[i].ID, r.Status, r.Body)
			}
			r.JSON(t, &st)
			if !strings.HasPrefix(st.Halted, want) || !strings.Contains(st.Halted, "unsupported version 99") {
				return fmt.Errorf("%s: halted %q, want %q...", c.Nodes[i].ID, st.Halted, want)
			}
		}
		return nil
	}
	check := func(step string) {
		t.Helper()
		Eventually(t, Wait(), halted)
		for _, n := range c.Nodes {
			if r := Do(t, http.MethodGet, n.URL+"/metrics", nil, nil); !strings.Contains(string(r.Body), "\npier_fsm_halted 1\n") {
				t.Fatalf("%s: metrics of %s do not say halted", step, n.ID)
			}
			client, err := apiclient.New([]string{strings.TrimPrefix(n.URL, "http://")})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := client.Status(t.Context()); err != nil || !strings.HasPrefix(st.Halted, want) {
				t.Fatalf("%s: pier status on %s: %v %+v", step, n.ID, err, st)
			}
			for name, body := range map[string][]byte{"small.bin": small, "large.bin": large} {
				if r := Do(t, http.MethodGet, n.URL+"/artifacts/"+name, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
					t.Fatalf("%s: pull %s from %s: %d %.200s", step, name, n.ID, r.Status, r.Body)
				}
			}
			// Reads that need a barrier work too: listings, tags, 404s.
			var list struct{ Artifacts []fsm.Artifact }
			r := Do(t, http.MethodGet, n.URL+"/api/v1/artifacts?tag=stable", nil, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("%s: list on %s: %d %s", step, n.ID, r.Status, r.Body)
			}
			r.JSON(t, &list)
			if len(list.Artifacts) != 1 || list.Artifacts[0].Name != "small.bin" {
				t.Fatalf("%s: list on %s: %s", step, n.ID, r.Body)
			}
			if r := Do(t, http.MethodGet, n.URL+"/artifacts/never-pushed.bin", nil, nil); r.Status != http.StatusNotFound {
				t.Fatalf("%s: pull of an unknown name from %s: %d %s", step, n.ID, r.Status, r.Body)
			}
			// Writes are refused, retryably, saying why.
			for _, w := range []struct{ method, path string }{
				{http.MethodPut, "/artifacts/new.bin"},
				{http.MethodPut, "/api/v1/tags/prod?name=small.bin"},
				{http.MethodDelete, "/artifacts/small.bin"},
			} {
				r := Do(t, w.method, n.URL+w.path, bytes.NewReader([]byte("new bytes")), nil)
				if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "halted") || !strings.Contains(string(r.Body), want) {
					t.Fatalf("%s: %s %s on %s: %d %s", step, w.method, w.path, n.ID, r.Status, r.Body)
				}
			}
		}
	}
	check("after the restart")
	// And it stays so: no crash loop, no compaction past the entry. Each
	// listing takes a read barrier, an entry: enough for a few snapshots.
	Eventually(t, Wait(), func() error {
		Do(t, http.MethodGet, c.Nodes[0].URL+"/api/v1/artifacts", nil, nil)
		if got := lastLogIndex(t, c, c.Leader()); got < at+12 {
			return fmt.Errorf("last index %d", got)
		}
		return nil
	})
	time.Sleep(2 * RaftConfig().SnapshotInterval) // raft's snapshot timer: time for it to try
	for i := range c.Nodes {
		c.Stop(i)
	}
	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitReady()
	check("after restarting every node")
}
