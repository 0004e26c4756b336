// Package raftnet carries raft's RPCs between nodes over TCP.
package raftnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pier-registry/pier/transport/clustertls"
)

// maxPool is the number of idle connections kept per peer; raft pipelines
// appends on one and uses the others for heartbeats, votes and snapshots.
// Each new connection costs a TLS handshake, so a few more stay warm.
const maxPool = 5

// Dialer opens the TCP connection under a raft connection's TLS.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Option adjusts a Transport.
type Option func(*streamLayer)

// WithDialer makes the transport dial through d instead of net.Dialer, so
// in-process tests can partition nodes below TLS (testing/netsplit).
func WithDialer(d Dialer) Option { return func(l *streamLayer) { l.dial = d } }

// New listens on bind and advertises advertise (host:port; empty means bind)
// to the other servers. Every connection is mutual TLS under creds: a peer
// without a certificate signed under the cluster key cannot complete a
// handshake, so it never reaches raft (no append, no vote, no snapshot).
func New(bind, advertise string, timeout time.Duration, creds *clustertls.Credentials, logger hclog.Logger, opts ...Option) (*Transport, error) {
	if advertise == "" {
		advertise = bind
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	if advertise == bind {
		// A bind to port 0 advertises the port it got.
		if _, port, _ := net.SplitHostPort(bind); port == "0" {
			advertise = ln.Addr().String()
		}
	}
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("resolve raft advertise address %q: %w", advertise, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft advertise address %q is not a routable IP: set --advertise", advertise)
	}
	log := logger.Named("tls")
	layer := &streamLayer{
		Listener: clustertls.Listener(ln, creds.Server(), func(addr net.Addr, err error) {
			log.Warn("refused a raft connection without the cluster key", "remote", addr, "error", err)
		}),
		adv:    adv,
		client: creds.Client(),
	}
	for _, o := range opts {
		o(layer)
	}
	t := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: maxPool,
		Timeout: timeout,
		Logger:  logger,
	})
	return &Transport{NetworkTransport: t, pipes: map[raft.ServerID]pipe{}}, nil
}

// streamLayer is raft's network over mutual TLS.
type streamLayer struct {
	net.Listener
	adv    net.Addr
	client *tls.Config
	dial   Dialer // nil: net.Dialer
}

// Dial implements raft.StreamLayer.
func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if l.dial == nil {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.client}
		return d.DialContext(ctx, "tcp", string(address))
	}
	raw, err := l.dial(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	// The client config names the server (clustertls.ServerName), so
	// nothing is derived from the address as tls.Dialer would.
	conn := tls.Client(raw, l.client)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("raft TLS handshake with %s: %w", address, err)
	}
	return conn, nil
}

// Addr implements net.Listener: the advertised address, which raft hands
// to its peers.
func (l *streamLayer) Addr() net.Addr { return l.adv }

// Transport is raft's TCP transport with one fix. A leader streams appends
// to a follower over a pipeline that lives until it fails; when raft learns
// a new address for that follower it dials the new one only for new
// connections. Nodes restarted together can trade addresses, and the
// pipeline then keeps feeding one node's log stream to the other while the
// real follower hears nothing. Raft sends every other RPC (heartbeats
// included) to the current address, so an RPC to a server at an address
// other than its pipeline's closes that pipeline; raft reopens it at the
// new one.
type Transport struct {
	*raft.NetworkTransport
	mu    sync.Mutex
	pipes map[raft.ServerID]pipe
}

type pipe struct {
	p      raft.AppendPipeline
	target raft.ServerAddress
}

// AppendEntriesPipeline implements raft.Transport. The pipeline it returns
// is guarded (see guardedPipeline) against raft's own pipeline deadlock.
func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	inner, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	p := guard(inner)
	t.mu.Lock()
	t.pipes[id] = pipe{p, target}
	t.mu.Unlock()
	return p, nil
}

// AppendEntries implements raft.Transport.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	t.closeStale(id, target)
	return t.NetworkTransport.AppendEntries(id, target, args, resp)
}

// InstallSnapshot implements raft.Transport.
func (t *Transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	t.closeStale(id, target)
	return t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
}

func (t *Transport) closeStale(id raft.ServerID, target raft.ServerAddress) {
	t.mu.Lock()
	p, ok := t.pipes[id]
	stale := ok && p.target != target
	if stale {
		delete(t.pipes, id)
	}
	t.mu.Unlock()
	if stale {
		p.p.Close()
	}
}

// guardedPipeline closes a pipeline as soon as raft stops reading it.
//
// Raft's leader runs two goroutines per pipelined follower: a sender and a
// decoder that reads the pipeline's responses. The decoder returns at the
// first response that failed (Success false, or a newer term), and the
// sender only notices at its next turn of the loop; until then it may send
// again. raft.NetworkTransport's pipeline channels are unbuffered at the
// default MaxRPCsInFlight, so that send parks on the transport's decode
// goroutine, which parks handing the answer to the decoder that has gone.
// The Close that would free both is deferred in the parked sender: the
// follower then gets heartbeats but never another entry, until the leader
// restarts, and raft's Shutdown waits forever (a CI run hung there;
// grafana/pyroscope#5518 found the same in production).
//
// The guard reads the pipeline's responses itself and hands each one on.
// After handing on a response that ends raft's decoder, it closes the
// pipeline: the parked sends fail with raft.ErrPipelineShutdown, the
// sender ends, and raft falls back to plain AppendEntries and reopens a
// pipeline once the follower has caught up, as on any pipeline failure.
// The test for the decoder's stop must match raft's pipelineDecode.
type guardedPipeline struct {
	inner raft.AppendPipeline
	out   chan raft.AppendFuture
	done  chan struct{}
	once  sync.Once
}

func guard(inner raft.AppendPipeline) *guardedPipeline {
	g := &guardedPipeline{inner: inner, out: make(chan raft.AppendFuture), done: make(chan struct{})}
	go g.forward()
	return g
}

func (g *guardedPipeline) forward() {
	in := g.inner.Consumer()
	for {
		var f raft.AppendFuture
		select {
		case f = <-in:
		case <-g.done:
			return
		}
		select {
		case g.out <- f:
		case <-g.done:
			return
		}
		if resp := f.Response(); !resp.Success || resp.Term > f.Request().Term {
			g.Close()
			return
		}
	}
}

// AppendEntries implements raft.AppendPipeline.
func (g *guardedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	return g.inner.AppendEntries(args, resp)
}

// Consumer implements raft.AppendPipeline.
func (g *guardedPipeline) Consumer() <-chan raft.AppendFuture { return g.out }

// Close implements raft.AppendPipeline.
func (g *guardedPipeline) Close() error {
	g.once.Do(func() { close(g.done) })
	return g.inner.Close()
}
