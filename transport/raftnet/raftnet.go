// Package raftnet carries raft's RPCs between nodes over TCP.
package raftnet

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// maxPool is the number of idle connections kept per peer; raft pipelines
// appends on one and uses the others for votes and snapshots.
const maxPool = 3

// New listens on bind and advertises advertise (host:port; empty means bind)
// to the other servers.
func New(bind, advertise string, timeout time.Duration, logger hclog.Logger) (*Transport, error) {
	if advertise == "" {
		advertise = bind
	}
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %q: %w", advertise, err)
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %q is not a routable IP: set --advertise", advertise)
	}
	t, err := raft.NewTCPTransportWithLogger(bind, adv, maxPool, timeout, logger)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	return &Transport{NetworkTransport: t, pipes: map[raft.ServerID]pipe{}}, nil
}

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

// AppendEntriesPipeline implements raft.Transport.
func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
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
