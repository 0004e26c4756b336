// Command intruder attacks a Pier cluster from a host on its network that
// does not hold the cluster key (issue 13): it speaks raft's protocol to
// every node, in the clear and over TLS without a certificate or with one
// of another key; calls the peer service (/internal/v1/...) over plain
// HTTP with the credential header earlier builds sent (computed from
// guessed keys) and over TLS without the key; and tries to join gossip
// without a key and with wrong ones. Every attack must be refused.
//
// It prints a JSON Report on standard output: each attempt, whether the
// protected service answered at all (it should not get past the key check)
// and whether the call was accepted. Controls check that the intruder
// reaches every node's public ports, so that refusals mean something.
//
// The chaos suite runs it in a container on the cluster's compose network
// (scenario "intruder") and diffs the nodes' public state around it. It
// sends nothing but the attacks below; every call is bounded by -call-timeout
// and the whole run by -timeout.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/fsm"
	"github.com/pier-registry/pier/transport/clustertls"
)

// Attempt is one attack, or one control.
type Attempt struct {
	Channel string `json:"channel"` // raft, peer, gossip, control
	Target  string `json:"target"`  // host:port
	Via     string `json:"via"`     // how the intruder spoke: "tcp", "tls, another key's certificate", ...
	Call    string `json:"call"`    // what it asked for
	// Answered: the protected service answered, that is the call got past
	// the key check (for a control: the port was reached, as it must be).
	Answered bool `json:"answered"`
	// Accepted: the service did what was asked (append, vote, 2xx, join).
	Accepted bool   `json:"accepted"`
	Detail   string `json:"detail"`
}

// Report is what the intruder prints.
type Report struct {
	Attempts []Attempt `json:"attempts"`
	Controls []Attempt `json:"controls"`
	// Listed holds every sighting of one of the intruder's gossip
	// identities in a node's GET /api/v1/cluster/members.
	Listed   []string `json:"listed"`
	Answered int      `json:"answered"`
	Accepted int      `json:"accepted"`
	Seconds  float64  `json:"seconds"`
	// Unfinished is set when the run hit -timeout before every attack ran.
	Unfinished bool `json:"unfinished,omitempty"`
}

type config struct {
	nodes       []string
	httpPort    string
	raftPort    string
	gossipPort  string
	targets     []string
	wrongKey    string
	guesses     []string
	callTimeout time.Duration
	watch       time.Duration
	log         *progress
}

func main() {
	var (
		nodes       = flag.String("nodes", "pier1,pier2,pier3,pier4,pier5", "comma-separated node hostnames")
		httpPort    = flag.Int("http-port", 8081, "nodes' HTTP port (public API and peer service)")
		raftPort    = flag.Int("raft-port", 8300, "nodes' raft port")
		gossipPort  = flag.Int("gossip-port", 7946, "nodes' gossip port")
		targets     = flag.String("targets", "", "comma-separated names of existing artifacts to forge tags on")
		wrongKey    = flag.String("wrong-key", "wrong key", "the key to attack with, not the cluster's (the chaos suite hands over the real one only to plant a leak)")
		guesses     = flag.String("guess-keys", "compose-dev-key,pier-insecure-well-known-cluster-key", "keys an attacker would guess (comma-separated)")
		callTimeout = flag.Duration("call-timeout", 3*time.Second, "bound of every single call")
		watch       = flag.Duration("watch", 4*time.Second, "how long to watch the member lists for the intruder's gossip identities")
		timeout     = flag.Duration("timeout", 45*time.Second, "bound of the whole run")
	)
	flag.Parse()
	cfg := config{
		nodes: split(*nodes), httpPort: strconv.Itoa(*httpPort), raftPort: strconv.Itoa(*raftPort),
		gossipPort: strconv.Itoa(*gossipPort), targets: split(*targets), wrongKey: *wrongKey,
		guesses: split(*guesses), callTimeout: *callTimeout, watch: *watch, log: &progress{start: time.Now()},
	}
	if len(cfg.nodes) == 0 {
		fmt.Fprintln(os.Stderr, "intruder: no -nodes")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep := attack(ctx, cfg)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "intruder:", err)
		os.Exit(1)
	}
}

// progress goes to standard error; standard output holds only the report.
type progress struct{ start time.Time }

func (l *progress) printf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// recorder collects attempts from concurrent attacks.
type recorder struct {
	mu  sync.Mutex
	rep Report
}

func (r *recorder) add(a Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.Channel == "control" {
		r.rep.Controls = append(r.rep.Controls, a)
		return
	}
	r.rep.Attempts = append(r.rep.Attempts, a)
	if a.Answered {
		r.rep.Answered++
	}
	if a.Accepted {
		r.rep.Accepted++
	}
}

func attack(ctx context.Context, cfg config) Report {
	start := time.Now()
	rec := &recorder{}
	controls(ctx, cfg, rec)
	cfg.log.printf("controls done: %d", len(rec.rep.Controls))
	for _, phase := range []struct {
		name string
		run  func(context.Context, config, *recorder)
	}{{"raft", attackRaft}, {"peer service", attackPeer}, {"gossip", attackGossip}} {
		if ctx.Err() != nil {
			break
		}
		phase.run(ctx, cfg, rec)
		cfg.log.printf("%s done: %d attempts so far", phase.name, len(rec.rep.Attempts))
	}
	rep := rec.rep
	rep.Unfinished = ctx.Err() != nil
	rep.Seconds = time.Since(start).Seconds()
	return rep
}

// controls checks that every node's ports are reachable from here: the
// public API answers, and the raft and gossip ports take TCP connections.
// Refusals of the attacks below mean nothing without them.
func controls(ctx context.Context, cfg config, rec *recorder) {
	hc := &http.Client{Timeout: cfg.callTimeout}
	for _, n := range cfg.nodes {
		a := Attempt{Channel: "control", Target: net.JoinHostPort(n, cfg.httpPort), Via: "http", Call: "GET /readyz"}
		if resp, err := get(ctx, hc, "http://"+a.Target+"/readyz"); err != nil {
			a.Detail = err.Error()
		} else {
			a.Answered, a.Accepted, a.Detail = true, resp.StatusCode == http.StatusOK, resp.Status
		}
		rec.add(a)
		for _, port := range []string{cfg.raftPort, cfg.gossipPort} {
			a := Attempt{Channel: "control", Target: net.JoinHostPort(n, port), Via: "tcp", Call: "connect"}
			d := net.Dialer{Timeout: cfg.callTimeout}
			if c, err := d.DialContext(ctx, "tcp", a.Target); err != nil {
				a.Detail = err.Error()
			} else {
				c.Close()
				a.Answered, a.Accepted, a.Detail = true, true, "connected"
			}
			rec.add(a)
		}
	}
}

func get(ctx context.Context, hc *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}

// forgedBatch is what a leader would replicate to tag the targets
// production-ready and bind a new name: one batch entry, as
// cluster.Node proposes them, with the planted artifact's bytes inline.
func forgedBatch(cfg config) []byte {
	now := time.Now().UTC()
	var entries []fsm.Entry
	for _, t := range cfg.targets {
		cmd, err := fsm.Command{Op: fsm.OpTag, Time: now, Actor: "intruder",
			Tag: &fsm.TagChange{Name: t, Tag: "production-ready"}}.Encode()
		if err == nil {
			entries = append(entries, fsm.Entry{Command: cmd})
		}
	}
	blob := []byte("planted by the intruder\n")
	sum := sha256.Sum256(blob)
	cmd, err := fsm.Command{Op: fsm.OpPutArtifact, Time: now, Actor: "intruder", Put: &fsm.PutArtifact{
		Name: "intruder/planted.txt", Digest: fsm.DigestPrefix + hex.EncodeToString(sum[:]), Size: int64(len(blob)),
		Tags:   []string{"production-ready"},
		Object: fsm.ObjectRef{ID: madeUpID, K: 1, M: 0, BlockSize: 1 << 20, Placement: []string{cfg.nodes[0]}},
	}}.Encode()
	if err == nil {
		entries = append(entries, fsm.Entry{Command: cmd, Blob: blob})
	}
	return fsm.EncodeBatch(entries)
}

// madeUpID is an object ID the intruder invents: it cannot learn real ones.
var madeUpID = strings.Repeat("5eed", 16)

// ---- raft ----

// attackRaft speaks raft's network protocol to every node's raft port over
// each transport an outsider can build.
func attackRaft(ctx context.Context, cfg config, rec *recorder) {
	other, err := clustertls.New("intruder", cfg.wrongKey)
	if err != nil {
		cfg.log.printf("raft: credentials of another key: %v", err)
		return
	}
	noServerCheck := other.Client()
	noServerCheck.InsecureSkipVerify = true
	transports := []struct {
		via  string
		make func() (raft.Transport, error)
	}{
		{"tcp (no TLS)", func() (raft.Transport, error) {
			return raft.NewTCPTransportWithLogger("0.0.0.0:0", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, 1, cfg.callTimeout, hclog.NewNullLogger())
		}},
		{"tls, no certificate", func() (raft.Transport, error) {
			return tlsTransport(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, cfg.callTimeout), nil
		}},
		{"tls, another key's certificate", func() (raft.Transport, error) { return tlsTransport(other.Client(), cfg.callTimeout), nil }},
		{"tls, another key's certificate, server unchecked", func() (raft.Transport, error) {
			return tlsTransport(noServerCheck, cfg.callTimeout), nil
		}},
	}
	data := forgedBatch(cfg)
	for _, tr := range transports {
		t, err := tr.make()
		if err != nil {
			cfg.log.printf("raft: %s: %v", tr.via, err)
			continue
		}
		for _, n := range cfg.nodes {
			if ctx.Err() != nil {
				break
			}
			raftRPCs(raft.ServerAddress(net.JoinHostPort(n, cfg.raftPort)), tr.via, t, data, rec)
		}
		if c, ok := t.(io.Closer); ok {
			c.Close()
		}
	}
}

// raftRPCs sends a heartbeat (to learn the term and last index), a forged
// entry a term ahead, a vote request with a high term and a TimeoutNow
// (which makes a follower start an election) to target.
func raftRPCs(target raft.ServerAddress, via string, t raft.Transport, data []byte, rec *recorder) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("intruder:8300")}
	a := Attempt{Channel: "raft", Target: string(target), Via: via, Call: "AppendEntries heartbeat"}
	var hb raft.AppendEntriesResponse
	term, last := uint64(1000), uint64(1_000_000) // guesses, when the heartbeat gets nothing
	if err := t.AppendEntries("x", target, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 1}, &hb); err != nil {
		a.Detail = err.Error()
	} else {
		a.Answered, a.Accepted = true, hb.Success
		a.Detail = fmt.Sprintf("term %d, last log %d, success %v", hb.Term, hb.LastLog, hb.Success)
		term, last = hb.Term, hb.LastLog
	}
	rec.add(a)

	a = Attempt{Channel: "raft", Target: string(target), Via: via, Call: fmt.Sprintf("AppendEntries forged batch at term %d index %d", term+1, last+1)}
	var ae raft.AppendEntriesResponse
	req := raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: term + 1, PrevLogEntry: last, PrevLogTerm: term,
		Entries:           []*raft.Log{{Index: last + 1, Term: term + 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}},
		LeaderCommitIndex: last + 1,
	}
	if err := t.AppendEntries("x", target, &req, &ae); err != nil {
		a.Detail = err.Error()
	} else {
		a.Answered, a.Accepted = true, ae.Success
		a.Detail = fmt.Sprintf("term %d, last log %d, success %v", ae.Term, ae.LastLog, ae.Success)
	}
	rec.add(a)

	a = Attempt{Channel: "raft", Target: string(target), Via: via, Call: fmt.Sprintf("RequestVote at term %d", term+100)}
	var rv raft.RequestVoteResponse
	vote := raft.RequestVoteRequest{RPCHeader: hdr, Term: term + 100, LastLogIndex: last + 1_000_000, LastLogTerm: term + 99}
	if err := t.RequestVote("x", target, &vote, &rv); err != nil {
		a.Detail = err.Error()
	} else {
		a.Answered, a.Accepted = true, rv.Granted
		a.Detail = fmt.Sprintf("term %d, granted %v", rv.Term, rv.Granted)
	}
	rec.add(a)

	a = Attempt{Channel: "raft", Target: string(target), Via: via, Call: "TimeoutNow"}
	var tn raft.TimeoutNowResponse
	if err := t.TimeoutNow("x", target, &raft.TimeoutNowRequest{RPCHeader: hdr}, &tn); err != nil {
		a.Detail = err.Error()
	} else {
		// A TimeoutNow answered is one obeyed: the node starts an election.
		a.Answered, a.Accepted = true, true
		a.Detail = fmt.Sprintf("answered by %s", tn.ID)
	}
	rec.add(a)
}

func tlsTransport(cfg *tls.Config, timeout time.Duration) raft.Transport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &tlsDialer{cfg: cfg, done: make(chan struct{})}, MaxPool: 1, Timeout: timeout,
		Logger: hclog.NewNullLogger(),
	})
}

// tlsDialer is a raft stream layer that only dials, over TLS with cfg.
type tlsDialer struct {
	cfg  *tls.Config
	once sync.Once
	done chan struct{}
}

func (d *tlsDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.cfg)
}

func (d *tlsDialer) Accept() (net.Conn, error) {
	<-d.done
	return nil, net.ErrClosed
}

func (d *tlsDialer) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

func (d *tlsDialer) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// ---- peer service ----

type peerCall struct {
	method, path string
	body         []byte
}

func peerCalls(cfg config) []peerCall {
	batch := forgedBatch(cfg)
	shard := "/internal/v1/shards/" + madeUpID + "/0"
	return []peerCall{
		{http.MethodPost, "/internal/v1/apply", batch},
		{http.MethodPost, "/internal/v1/readindex", nil},
		{http.MethodGet, "/internal/v1/stats", nil},
		{http.MethodGet, "/internal/v1/ping", nil},
		{http.MethodGet, shard + "?off=0&n=64", nil},
		{http.MethodPut, shard, bytes.Repeat([]byte("intruder shard "), 64)},
		{http.MethodDelete, shard, nil},
		{http.MethodPost, "/internal/v1/packed", []byte("intruder pack")},
	}
}

// oldHeader is the credential every peer call of earlier builds carried.
func oldHeader(key string) string {
	h := sha256.Sum256([]byte("pier-peer:" + key))
	return hex.EncodeToString(h[:])
}

// attackPeer calls the peer service on every node's HTTP port: in plain
// HTTP (where /internal/ must get the 403 refusal whatever the headers)
// and over TLS without the key (where the handshake must fail).
func attackPeer(ctx context.Context, cfg config, rec *recorder) {
	calls := peerCalls(cfg)
	plain := &http.Client{Timeout: cfg.callTimeout}
	headers := []struct{ via, value string }{{"http, no credential", ""}}
	for _, k := range append(slices.Clone(cfg.guesses), cfg.wrongKey) {
		headers = append(headers, struct{ via, value string }{fmt.Sprintf("http, X-Pier-Cluster-Key of key %q", k), oldHeader(k)})
	}
	for _, n := range cfg.nodes {
		for _, h := range headers {
			for _, c := range calls {
				if ctx.Err() != nil {
					return
				}
				a := Attempt{Channel: "peer", Target: net.JoinHostPort(n, cfg.httpPort), Via: h.via, Call: c.method + " " + c.path}
				resp, body, err := do(ctx, plain, c, "http://"+a.Target, h.value)
				switch {
				case err != nil:
					a.Detail = err.Error()
				case resp.StatusCode == http.StatusForbidden:
					a.Detail = "refused: " + resp.Status
				default:
					// Anything but the refusal came from past it.
					a.Answered, a.Accepted = true, resp.StatusCode < 300
					a.Detail = resp.Status + ": " + body
				}
				rec.add(a)
			}
		}
	}

	other, err := clustertls.New("intruder", cfg.wrongKey)
	if err != nil {
		cfg.log.printf("peer: credentials of another key: %v", err)
		return
	}
	noServerCheck := other.Client()
	noServerCheck.InsecureSkipVerify = true
	for _, t := range []struct {
		via string
		cfg *tls.Config
	}{
		{"https, no certificate", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}},
		{"https, another key's certificate", other.Client()},
		{"https, another key's certificate, server unchecked", noServerCheck},
	} {
		hc := &http.Client{Timeout: cfg.callTimeout, Transport: &http.Transport{TLSClientConfig: t.cfg, DisableKeepAlives: true}}
		for _, n := range cfg.nodes {
			for _, c := range calls {
				if ctx.Err() != nil {
					return
				}
				a := Attempt{Channel: "peer", Target: net.JoinHostPort(n, cfg.httpPort), Via: t.via, Call: c.method + " " + c.path}
				resp, body, err := do(ctx, hc, c, "https://"+a.Target, oldHeader(cfg.wrongKey))
				if err != nil {
					a.Detail = err.Error()
				} else {
					// Any HTTP answer means the TLS handshake succeeded.
					a.Answered, a.Accepted = true, resp.StatusCode < 300
					a.Detail = resp.Status + ": " + body
				}
				rec.add(a)
			}
		}
	}
}

func do(ctx context.Context, hc *http.Client, c peerCall, base, cred string) (*http.Response, string, error) {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, body)
	if err != nil {
		return nil, "", err
	}
	if cred != "" {
		req.Header.Set("X-Pier-Cluster-Key", cred)
	}
	req.Header.Set("User-Agent", "pier-intruder")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp, strings.TrimSpace(string(b)), nil
}

// ---- gossip ----

// gossipMeta is what a Pier node gossips about itself (cluster/membership.go
// nodeMeta): the intruder poses as a node of dc1 so that a leader that let
// it in would also make it a raft server.
type gossipMeta struct{ meta []byte }

func (g gossipMeta) NodeMeta(limit int) []byte {
	if len(g.meta) > limit {
		return nil
	}
	return g.meta
}
func (gossipMeta) NotifyMsg([]byte)                           {}
func (gossipMeta) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipMeta) LocalState(join bool) []byte                { return nil }
func (gossipMeta) MergeRemoteState(buf []byte, join bool)     {}

// attackGossip starts a memberlist per key (none, the wrong one, the
// guessed ones), joins the nodes' gossip ports with each, and watches
// every node's member list for the intruder's names while they run.
func attackGossip(ctx context.Context, cfg config, rec *recorder) {
	host, _ := os.Hostname()
	meta, _ := json.Marshal(map[string]string{"dc": "dc1", "http": net.JoinHostPort(host, cfg.httpPort), "raft": net.JoinHostPort(host, cfg.raftPort)})
	type variant struct {
		name, via string
		key       []byte
	}
	variants := []variant{{"intruder-nokey", "memberlist, no key", nil}}
	for i, k := range append([]string{cfg.wrongKey}, cfg.guesses...) {
		sum := sha256.Sum256([]byte("pier-gossip:" + k))
		variants = append(variants, variant{fmt.Sprintf("intruder-key%d", i), fmt.Sprintf("memberlist, keyring of key %q", k), sum[:]})
	}
	var joins []string
	for _, n := range cfg.nodes {
		joins = append(joins, net.JoinHostPort(n, cfg.gossipPort))
	}
	var lists []*memberlist.Memberlist
	defer func() {
		for _, ml := range lists {
			_ = ml.Shutdown()
		}
	}()
	for _, v := range variants {
		if ctx.Err() != nil {
			return
		}
		mc := memberlist.DefaultLANConfig()
		mc.Name = v.name
		mc.BindAddr, mc.BindPort = "0.0.0.0", 0
		mc.TCPTimeout = cfg.callTimeout
		mc.LogOutput = io.Discard
		mc.Delegate = gossipMeta{meta}
		if v.key != nil {
			ring, err := memberlist.NewKeyring(nil, v.key)
			if err != nil {
				cfg.log.printf("gossip: keyring: %v", err)
				continue
			}
			mc.Keyring = ring
		}
		ml, err := memberlist.Create(mc)
		if err != nil {
			cfg.log.printf("gossip: %s: %v", v.name, err)
			continue
		}
		lists = append(lists, ml)
		// One join per node, so each refusal is an attempt of its own.
		for _, j := range joins {
			a := Attempt{Channel: "gossip", Target: j, Via: v.via, Call: "join as " + v.name}
			n, err := ml.Join([]string{j})
			a.Answered, a.Accepted = n > 0, n > 0
			switch {
			case err != nil:
				a.Detail = err.Error()
			default:
				a.Detail = fmt.Sprintf("joined through %d node(s)", n)
			}
			rec.add(a)
		}
		if others := ml.NumMembers() - 1; others > 0 {
			rec.add(Attempt{Channel: "gossip", Target: "*", Via: v.via, Call: "member list of " + v.name,
				Answered: true, Accepted: true, Detail: fmt.Sprintf("%d other members known", others)})
		}
	}

	// Watch the nodes' member lists while the intruder's memberlists run:
	// none may list them, in any state.
	hc := &http.Client{Timeout: cfg.callTimeout}
	seen := map[string]bool{}
	deadline := time.Now().Add(cfg.watch)
	for round := 0; round < 100 && ctx.Err() == nil; round++ {
		for _, n := range cfg.nodes {
			for _, id := range listedIntruders(ctx, hc, "http://"+net.JoinHostPort(n, cfg.httpPort)) {
				if s := n + " lists " + id; !seen[s] {
					seen[s] = true
					rec.mu.Lock()
					rec.rep.Listed = append(rec.rep.Listed, s)
					rec.mu.Unlock()
				}
			}
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// listedIntruders returns the members of a node's public member list whose
// ID is one of the intruder's, with their state.
func listedIntruders(ctx context.Context, hc *http.Client, base string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/cluster/members", nil)
	if err != nil {
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m struct {
		Members []struct{ ID, State, Role string }
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&m); err != nil {
		return nil
	}
	var out []string
	for _, x := range m.Members {
		if strings.HasPrefix(x.ID, "intruder") {
			out = append(out, fmt.Sprintf("%s (%s, %s)", x.ID, x.State, x.Role))
		}
	}
	return out
}
