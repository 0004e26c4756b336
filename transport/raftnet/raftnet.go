// Package raftnet carries raft's RPCs between nodes over TCP.
package raftnet

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// maxPool is the number of idle connections kept per peer; raft pipelines
// appends on one and uses the others for votes and snapshots.
const maxPool = 3

// New listens on bind and advertises advertise (host:port; empty means bind)
// to the other servers.
func New(bind, advertise string, timeout time.Duration, logger hclog.Logger) (*raft.NetworkTransport, error) {
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
	return t, nil
}
