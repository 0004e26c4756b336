package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
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
