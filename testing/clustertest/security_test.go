package clustertest

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/clustertls"
)

// The attacks of issue 13, each from an outsider on the network who does
// not hold the cluster key. Each must change nothing.

// raftAddr is node i's raft address.
func (c *Cluster) raftAddr(i int) string {
	return c.Nodes[i].cfg.RaftBind
}

// An outsider that speaks raft's own protocol, in the clear or over TLS
// with a certificate of another key, gets no answer from any node, so it
// can neither learn the log's position nor append an entry.
func TestOutsiderCannotSpeakRaft(t *testing.T) {
	c := New(t, 3, Options{})
	if r := Upload(t, c.Nodes[0].URL, "before.txt", []byte("before")); r.Status != http.StatusCreated {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	waitArtifacts(t, c, 1)
	before := snapshotState(t, c)
	leader := c.Leader()
	follower := (leader + 1) % 3
	target := raft.ServerAddress(c.raftAddr(follower))

	cmd, err := fsm.Command{Op: fsm.OpTag, Time: time.Now(), Actor: "intruder",
		Tag: &fsm.TagChange{Name: "before.txt", Tag: "production-ready"}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	forge := func(tr raft.Transport) error {
		// A heartbeat first, as an attacker would, to read the follower's
		// term and last index; then one entry a term ahead.
		var resp raft.AppendEntriesResponse
		hb := raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("intruder")}, Term: 1}
		if err := tr.AppendEntries("x", target, &hb, &resp); err != nil {
			return err
		}
		st := c.Nodes[follower].Srv.Node.Status()
		req := raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("intruder")},
			Term:      resp.Term + 1, PrevLogEntry: resp.LastLog, PrevLogTerm: st.Term,
			Entries:           []*raft.Log{{Index: resp.LastLog + 1, Term: resp.Term + 1, Type: raft.LogCommand, Data: fsm.EncodeBatch([]fsm.Entry{{Command: cmd}})}},
			LeaderCommitIndex: resp.LastLog + 1,
		}
		var r2 raft.AppendEntriesResponse
		if err := tr.AppendEntries("x", target, &req, &r2); err != nil {
			return err
		}
		return fmt.Errorf("follower answered the forged append: success=%v", r2.Success)
	}

	plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := forge(plain); err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("plain raft from an outsider: %v", err)
	}

	other, err := clustertls.New("intruder", "not the cluster key")
	if err != nil {
		t.Fatal(err)
	}
	tlsTr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &tlsDialer{cfg: other.Client()}, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: hclog.NewNullLogger(),
	})
	defer tlsTr.Close()
	if err := forge(tlsTr); err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("raft over TLS with another key: %v", err)
	}

	c.WaitReady()
	if after := snapshotState(t, c); after != before {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	for _, i := range c.Running() {
		if leader, members := c.Nodes[i].Srv.Node.Members(); leader == "intruder" || len(members) != 3 {
			t.Fatalf("%s: leader %q, members %+v", c.Nodes[i].ID, leader, members)
		}
	}
}

// waitArtifacts waits until every running node has applied n artifacts, so
// that a snapshot of the state compares like with like.
func waitArtifacts(t *testing.T, c *Cluster, n int) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		for _, i := range c.Running() {
			if got := c.Nodes[i].Srv.Node.Counts().Artifacts; got != n {
				return fmt.Errorf("%s has %d artifacts, want %d", c.Nodes[i].ID, got, n)
			}
		}
		return nil
	})
}

// tlsDialer is a raft stream layer that only dials, with cfg.
type tlsDialer struct {
	net.Listener
	cfg *tls.Config
}

func (d *tlsDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.cfg)
}

func (d *tlsDialer) Accept() (net.Conn, error) { select {} }
func (d *tlsDialer) Close() error              { return nil }
func (d *tlsDialer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// The peer service is not on the public plain-HTTP side of the port, not
// even for a caller that replays the credential header earlier builds
// sent with every peer call; over TLS it needs a certificate of the key.
func TestPeerServiceClosedToOutsiders(t *testing.T) {
	c := New(t, 3, Options{})
	content := bytes.Repeat([]byte("shard me "), 100_000) // shard files, not packs
	if r := Upload(t, c.Nodes[0].URL, "big.bin", content); r.Status != http.StatusCreated {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	waitArtifacts(t, c, 1)
	obj, ok := c.Nodes[0].Srv.Node.FSM().Object(Digest(content))
	if !ok {
		t.Fatal("object not found")
	}
	before := snapshotState(t, c)

	// What a request of the old peer protocol carried: anyone who saw one
	// could replay it forever.
	h := sha256.Sum256([]byte("pier-peer:" + c.Nodes[0].cfg.Node.ClusterKey))
	replayed := http.Header{"X-Pier-Cluster-Key": {fmt.Sprintf("%x", h)}}
	cmd, err := fsm.Command{Op: fsm.OpTag, Time: time.Now(), Actor: "intruder",
		Tag: &fsm.TagChange{Name: "big.bin", Tag: "production-ready"}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	forged := fsm.EncodeBatch([]fsm.Entry{{Command: cmd}})
	for _, n := range c.Nodes {
		for _, req := range []struct{ method, path string }{
			{http.MethodPost, "/internal/v1/apply"},
			{http.MethodDelete, fmt.Sprintf("/internal/v1/shards/%s/0", obj.ID)},
			{http.MethodGet, fmt.Sprintf("/internal/v1/shards/%s/0?off=0&n=64", obj.ID)},
			{http.MethodGet, "/internal/v1/stats"},
		} {
			r := Do(t, req.method, n.URL+req.path, bytes.NewReader(forged), replayed)
			if r.Status != http.StatusForbidden {
				t.Errorf("%s %s%s with a replayed credential: %d %s", req.method, n.ID, req.path, r.Status, r.Body)
			}
		}
	}

	// Over TLS: without a certificate, and with one of another key.
	other, err := clustertls.New("intruder", "not the cluster key")
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate": {InsecureSkipVerify: true},
		"another key":    other.Client(),
		"another key, no server check": func() *tls.Config {
			cc := other.Client()
			cc.InsecureSkipVerify = true
			return cc
		}(),
	} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		for _, n := range c.Nodes {
			url := "https://" + strings.TrimPrefix(n.URL, "http://") + "/internal/v1/apply"
			resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(forged))
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: %s answered %d", name, n.ID, resp.StatusCode)
			}
		}
	}

	if after := snapshotState(t, c); after != before {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	if r := Do(t, http.MethodGet, c.Nodes[2].URL+"/artifacts/big.bin", nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, content) {
		t.Fatalf("pull after the attacks: %d, %d bytes", r.Status, len(r.Body))
	}
	var st struct{ Redundancy map[string]int }
	Do(t, http.MethodGet, c.Nodes[1].URL+"/api/v1/status", nil, nil).JSON(t, &st)
	if st.Redundancy["full"] != 1 {
		t.Fatalf("redundancy after the attacks: %v", st.Redundancy)
	}
}

// A node holding another key (here the public insecure one) cannot join: it
// is not let into gossip, so it never becomes a member or a raft server,
// and receives no shards.
func TestNodeWithoutTheKeyCannotJoin(t *testing.T) {
	c := New(t, 3, Options{})
	cfg := c.nodeConfig("intruder", Options{ClusterKey: "pier-insecure-well-known-cluster-key"})
	cfg.Node.BootstrapExpect = 0
	cfg.Node.Join = []string{c.GossipAddr(0), c.GossipAddr(1)}
	n := &Node{ID: cfg.Node.ID, cfg: cfg, URL: "http://" + cfg.HTTPBind}
	c.Nodes = append(c.Nodes, n)
	c.start(n)
	for i := range 5 {
		if r := Upload(t, c.Nodes[i%3].URL, fmt.Sprintf("a%d.bin", i), bytes.Repeat([]byte{byte(i)}, 300_000)); r.Status != http.StatusCreated {
			t.Fatalf("push: %d %s", r.Status, r.Body)
		}
	}
	// Watch for a while (30 reconcile rounds): the intruder must never show.
	deadline := time.Now().Add(30 * c.Nodes[0].cfg.Node.ReconcileInterval)
	for time.Now().Before(deadline) {
		for i := range 3 {
			_, members := c.Nodes[i].Srv.Node.Members()
			for _, m := range members {
				if m.ID == "intruder" {
					t.Fatalf("%s lists the intruder: %+v", c.Nodes[i].ID, m)
				}
			}
		}
		if objs, _, _ := n.Srv.Node.Shards().Usage(); objs > 0 {
			t.Fatalf("the intruder received %d shard files", objs)
		}
		time.Sleep(50 * time.Millisecond) // a polling interval, not a wait for an invariants.Outcome
	}
	if n.Srv.Node.IsLeader() || len(n.Srv.Node.FSM().Objects()) > 0 {
		t.Fatal("the intruder has cluster state")
	}
}

// The key rotates with rolling restarts (README: Running nodes): install
// the new key as accepted, send with it, then drop the old one. After
// every single restart the cluster takes pushes and serves every artifact
// from every node.
func TestKeyRotationByRollingRestart(t *testing.T) {
	c := New(t, 3, Options{ClusterKey: "old key"})
	var pushed [][]byte
	check := func(step string) {
		t.Helper()
		c.WaitReady()
		content := bytes.Repeat([]byte(step), 40_000)
		name := fmt.Sprintf("a%d.bin", len(pushed))
		if r := Upload(t, c.Nodes[len(pushed)%3].URL, name, content); r.Status != http.StatusCreated {
			t.Fatalf("%s: push: %d %s", step, r.Status, r.Body)
		}
		pushed = append(pushed, content)
		for i, want := range pushed {
			for _, n := range c.Nodes {
				r := Do(t, http.MethodGet, fmt.Sprintf("%s/artifacts/a%d.bin", n.URL, i), nil, nil)
				if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
					t.Fatalf("%s: a%d.bin from %s: %d %s", step, i, n.ID, r.Status, r.Body[:min(len(r.Body), 200)])
				}
			}
		}
	}
	check("start")
	for _, phase := range []struct {
		send   string
		accept []string
	}{
		{"old key", []string{"new key"}},
		{"new key", []string{"old key"}},
		{"new key", nil},
	} {
		for i := range c.Nodes {
			c.Stop(i)
			c.Nodes[i].cfg.Node.ClusterKey, c.Nodes[i].cfg.Node.AcceptKeys = phase.send, phase.accept
			c.Restart(i)
			check(fmt.Sprintf("%s: send %q accept %q", c.Nodes[i].ID, phase.send, phase.accept))
		}
	}
	// The old key is useless now.
	old, err := clustertls.New("intruder", "old key")
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := tls.Dial("tcp", c.raftAddr(0), old.Client()); err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a client holding only the retired key is still served: %v", err)
		}
		conn.Close()
	}
}
