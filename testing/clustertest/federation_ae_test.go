package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/fsm"
)

// Summary lets anti-entropy through the test WAN, which it cuts like the
// feed.
func (p cuttablePeers) Summary(ctx context.Context, addr string, req federation.SummaryRequest) (federation.Summary, error) {
	if p.link.cut.Load() {
		return federation.Summary{}, fmt.Errorf("%w: WAN cut", cluster.ErrPeerUnreachable)
	}
	return p.PeerClient.(federation.SummaryRemote).Summary(ctx, addr, req)
}

// applyOnLeader commits c through c's leader, as a hand edit would.
func applyOnLeader(t *testing.T, c *Cluster, cmd fsm.Command) fsm.Result {
	t.Helper()
	cmd.Time = time.Now().UTC()
	b, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Nodes[c.Leader()].Srv.Node.ApplyForwarded(context.Background(), fsm.EncodeBatch([]fsm.Entry{{Command: b}}))
	if err != nil || len(res) != 1 {
		t.Fatalf("apply %s: %v %v", cmd.Op, res, err)
	}
	return res[0]
}

// What the feed can no longer bring (dc2's checkpoint moved by hand past
// a push and a deletion in dc1 while the WAN was cut) is repaired by
// anti-entropy over the real peer service once the link is back, with no
// manual step, and federation status says so.
func TestFederationAntiEntropyRepairsSkippedFeed(t *testing.T) {
	dc1, dc2, link := federated(t)
	gone := []byte("copied, then deleted at the source")
	fedPut(t, dc1.Nodes[0].URL, "ae/gone.bin", gone, nil)
	Eventually(t, Wait(), func() error { return pulled(t, dc2, "ae/gone.bin", gone) })

	link.cut.Store(true)
	skipped := []byte("pushed while cut; the feed will never bring it")
	fedPut(t, dc1.Nodes[1].URL, "ae/skipped.bin", skipped, nil)
	if r := Do(t, http.MethodDelete, dc1.Nodes[2].URL+"/api/v1/artifacts/ae/gone.bin", nil, nil); r.Status >= 300 {
		t.Fatalf("delete at the source: %d %s", r.Status, r.Body)
	}
	head := dc1.Nodes[dc1.Leader()].Srv.Node.FSM().FeedLag(0).Head
	res := applyOnLeader(t, dc2, fsm.Command{Op: fsm.OpFedCheckpoint,
		Fed: &fsm.FedChange{Checkpoint: &fsm.Checkpoint{Datacenter: "dc1", Index: head}}})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	// dc2's replicator has seen the outage: anti-entropy runs when the
	// link is back, not at its next interval (10 min).
	Eventually(t, Wait(), func() error {
		st, _ := dc2.Nodes[dc2.Leader()].Srv.Node.FederationStatus(context.Background())
		if len(st) != 1 || st[0].Errors == 0 {
			return fmt.Errorf("dc2 leader's status while cut: %+v", st)
		}
		return nil
	})
	link.cut.Store(false)

	Eventually(t, Wait(), func() error { return pulled(t, dc2, "ae/skipped.bin", skipped) })
	Eventually(t, Wait(), func() error {
		for _, n := range dc2.Nodes {
			if r := Do(t, http.MethodGet, n.URL+"/artifacts/ae/gone.bin", nil, nil); r.Status != http.StatusNotFound && r.Status != http.StatusGone {
				return fmt.Errorf("%s serves a name deleted at the source: %d", n.ID, r.Status)
			}
		}
		return nil
	})
	Eventually(t, Wait(), func() error {
		st, err := dc2.Nodes[dc2.Leader()].Srv.Node.FederationStatus(context.Background())
		if err != nil {
			return err
		}
		if len(st) != 1 || st[0].AntiEntropy == nil || st[0].AntiEntropy.RepairedTotal < 2 {
			return fmt.Errorf("dc2 leader's status: %+v", st)
		}
		return nil
	})
	// The feed did not bring them: its checkpoint was past both.
	if cp, _ := dc2.Nodes[0].Srv.Node.FSM().Checkpoint("dc1"); cp.Index < head {
		t.Fatalf("checkpoint %d went back before %d", cp.Index, head)
	}
}
