package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
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

// held reports whether every running node of c binds name to body's
// digest and serves body: a copy held here, not a pull served through
// from the other datacenter.
func held(t *testing.T, c *Cluster, name string, body []byte) error {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Srv == nil {
			continue
		}
		if d, live, ok := n.Srv.Node.FSM().Binding(name); !ok || !live || d != Digest(body) {
			return fmt.Errorf("%s: %s bound %v, live %v, to %s", n.ID, name, ok, live, d)
		}
		r := Do(t, http.MethodGet, n.URL+"/artifacts/"+name, nil, nil)
		if r.Status != http.StatusOK || !bytes.Equal(r.Body, body) {
			return fmt.Errorf("%s: GET %s: %d, %d bytes", n.ID, name, r.Status, len(r.Body))
		}
	}
	return nil
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

	Eventually(t, Wait(), func() error { return held(t, dc2, "ae/skipped.bin", skipped) })
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

// stallAt returns a body that passes its first at bytes, tells stalled,
// and then blocks until ctx ends (the node holding it is killed) or 30 s
// pass.
type stallAt struct {
	io.ReadCloser
	ctx     context.Context
	left    int64
	stalled chan<- struct{}
}

func (s *stallAt) Read(p []byte) (int, error) {
	if s.left <= 0 {
		close(s.stalled)
		select {
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		case <-time.After(30 * time.Second):
			return 0, errors.New("stalled copy: not killed within 30s")
		}
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.ReadCloser.Read(p)
	s.left -= int64(n)
	return n, err
}

// Acceptance 5 in process: dc2's leader is killed halfway through copying
// an erasure-coded artifact (its fetch stalls there until the kill); the
// new leader copies it again from dc2's checkpoint, which the interrupted
// copy never advanced, and every dc2 node, the killed one restarted too,
// serves exactly the pushed bytes. The copy starts the object over: the
// bytes the killed leader stored are orphans for GC.
func TestFederationLeaderKilledMidCopy(t *testing.T) {
	dc1, dc2, link := federated(t)
	body := make([]byte, 12<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>13)
	}
	stalled := make(chan struct{})
	var once atomic.Bool
	hook := func(ctx context.Context, name string, rc io.ReadCloser) io.ReadCloser {
		if name != "big/mid-copy.bin" || !once.CompareAndSwap(false, true) {
			return rc
		}
		return &stallAt{ReadCloser: rc, ctx: ctx, left: int64(len(body) / 2), stalled: stalled}
	}
	link.onFetch.Store(&hook)
	fedPut(t, dc1.Nodes[0].URL, "big/mid-copy.bin", body, nil)
	select {
	case <-stalled:
	case <-time.After(Wait()):
		t.Fatal("dc2's leader never started copying")
	}
	leader := dc2.Leader()
	cp, _ := dc2.Nodes[leader].Srv.Node.FSM().Checkpoint("dc1")
	t.Logf("killing dc2's leader %s halfway through the copy (checkpoint %d)", dc2.Nodes[leader].ID, cp.Index)
	killed := time.Now()
	dc2.Kill(leader)
	Eventually(t, Wait(), func() error { return held(t, dc2, "big/mid-copy.bin", body) })
	t.Logf("the new leader's copy is served, verified, %s after the kill", time.Since(killed).Round(time.Millisecond))
	dc2.Restart(leader)
	Eventually(t, Wait(), func() error { return held(t, dc2, "big/mid-copy.bin", body) })
	if !once.Load() {
		t.Fatal("the hook never ran")
	}
}
