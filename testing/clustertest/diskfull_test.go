package clustertest

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pier-registry/pier/transport/server"
)

// TestFullDiskRefusesCleanlyAndRecovers fills the leader's disk (as its
// free-space probe sees it): pushes and tag changes sent to it get a 507
// naming the reserve, leadership moves away, pushes through the others
// succeed with no shard placed on the full node, and once space returns
// the node takes pushes again and serves everything.
func TestFullDiskRefusesCleanlyAndRecovers(t *testing.T) {
	var full [4]atomic.Bool
	c := New(t, 4, Options{Tune: func(i int, cfg *server.Config) {
		cfg.Node.FreeSpace = func(string) (int64, error) {
			if full[i].Load() {
				return 1 << 20, nil
			}
			return 1 << 40, nil
		}
	}})
	put(t, c.Nodes[0].URL, "before.bin", []byte("before"))
	l := c.Leader()
	ln := c.Nodes[l]
	full[l].Store(true)

	// The node measures its free space a few times a second.
	Eventually(t, Wait(), func() error {
		r := Do(t, "PUT", ln.URL+"/artifacts/refused.bin", bytes.NewReader(bigBytes(1, 300<<10)), nil)
		if r.Status != http.StatusInsufficientStorage || !strings.Contains(string(r.Body), "reserve") {
			return fmt.Errorf("push to a full node: %d %s, want 507 naming the reserve", r.Status, r.Body)
		}
		return nil
	})
	r := Do(t, "PUT", ln.URL+"/api/v1/tags/blocked?name=before.bin", nil, nil)
	if r.Status != http.StatusInsufficientStorage {
		t.Fatalf("tag through a full node: %d %s, want 507", r.Status, r.Body)
	}
	Eventually(t, Wait(), func() error {
		if ln.Srv.Node.IsLeader() {
			return fmt.Errorf("%s still leads with a full disk", ln.ID)
		}
		return nil
	})

	other := c.Nodes[(l+1)%len(c.Nodes)]
	data := map[string][]byte{}
	// Gossip tells the others within a probe or two that the node is full;
	// from then on no push places a shard on it.
	Eventually(t, Wait(), func() error {
		name := fmt.Sprintf("during-%d.bin", len(data))
		data[name] = bigBytes(uint64(len(data)+2), 300<<10)
		put(t, other.URL, name, data[name])
		// The full node's own state may lag (it answers 503 then), so ask
		// the node that took the push.
		a, err := other.Srv.Node.Stat(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := other.Srv.Node.FSM().Object(a.Digest)
		if slices.Contains(o.Placement, ln.ID) {
			return fmt.Errorf("%s placed a shard on the full node %s", name, ln.ID)
		}
		return nil
	})

	full[l].Store(false)
	Eventually(t, Wait(), func() error {
		r := Do(t, "PUT", ln.URL+"/artifacts/after.bin", bytes.NewReader([]byte("after")), nil)
		if r.Status != http.StatusCreated {
			return fmt.Errorf("push after space returned: %d %s", r.Status, r.Body)
		}
		return nil
	})
	data["after.bin"] = []byte("after")
	data["before.bin"] = []byte("before")
	for name, want := range data {
		pullEverywhere(t, c, name, want)
	}
}
